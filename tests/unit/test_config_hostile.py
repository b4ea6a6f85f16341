"""Bad security options and broker addresses fail at construction (issue 15, defects 6 and 7).

Before: a ``bytes`` or ``int`` ``sasl_plain_password`` passed construction and
crashed the I/O thread at the first connect (``AttributeError``); a port
outside 1..65535 was refused without naming ``bootstrap_servers``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kproto.client import ClientConfig
from kproto.errors import KafkaConfigurationError

SECRET = "hunter2-do-not-echo"


def _sync_producer(**kw: Any) -> Any:
    from transports.sync import KafkaProducer

    return KafkaProducer(**kw)


def _sync_consumer(**kw: Any) -> Any:
    from transports.sync import KafkaConsumer

    return KafkaConsumer(**kw)


def _asyncio_producer(**kw: Any) -> Any:
    from transports.asyncio import KafkaProducer

    return KafkaProducer(**kw)


def _asyncio_consumer(**kw: Any) -> Any:
    from transports.asyncio import KafkaConsumer

    async def make() -> Any:
        return KafkaConsumer(**kw)

    return asyncio.run(make())


def _trio_producer(**kw: Any) -> Any:
    from transports.trio import KafkaProducer

    return KafkaProducer(**kw)


FACADES = [_sync_producer, _sync_consumer, _asyncio_producer, _asyncio_consumer, _trio_producer]

PLAIN = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}


class _NoToken:
    """An OAUTHBEARER provider with no token() method (and not callable)."""

    secret = SECRET


BAD_SECRETS = [
    ("sasl_plain_password", dict(PLAIN, sasl_plain_username="u", sasl_plain_password=SECRET.encode()), "str"),
    ("sasl_plain_password", dict(PLAIN, sasl_plain_username="u", sasl_plain_password=12345678), "str"),
    ("sasl_plain_username", dict(PLAIN, sasl_plain_username=SECRET.encode(), sasl_plain_password="p"), "str"),
    ("sasl_plain_password", {"sasl_plain_password": SECRET.encode()}, "str"),  # even unused (PLAINTEXT)
    (
        "sasl_oauth_token_provider",
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": _NoToken()},
        "token()",
    ),
    ("ssl_password", {"security_protocol": "SSL", "ssl_password": 12345678}, "str, bytes"),
    ("ssl_cafile", {"security_protocol": "SSL", "ssl_cafile": SECRET.encode()}, "str"),
    ("sasl_mechanism", {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": b"PLAIN"}, "str"),
]


@pytest.mark.parametrize("facade", FACADES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize(("option", "configs", "allowed"), BAD_SECRETS, ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(BAD_SECRETS)])
def test_wrong_typed_secret_fails_at_construction(facade: Any, option: str, configs: dict[str, Any], allowed: str) -> None:
    with pytest.raises(KafkaConfigurationError) as info:
        facade(bootstrap_servers="127.0.0.1:9", **configs)
    message = str(info.value)
    assert option in message and allowed in message
    assert SECRET not in message and "12345678" not in message


def test_core_client_config_refuses_wrong_typed_credentials() -> None:
    """Embedders building the core's ClientConfig themselves get the same check."""
    with pytest.raises(KafkaConfigurationError, match="sasl_plain_password must be a str"):
        ClientConfig(**PLAIN, sasl_plain_username="u", sasl_plain_password=SECRET.encode())  # type: ignore[arg-type]


def test_right_typed_secrets_still_accepted() -> None:
    class Provider:
        def token(self) -> str:
            return "t"

    for configs in (
        dict(PLAIN, sasl_plain_username="u", sasl_plain_password="p"),
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": Provider()},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": lambda: "t"},
    ):
        _sync_producer(bootstrap_servers="127.0.0.1:9", **configs).close(0)


@pytest.mark.parametrize("facade", FACADES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("servers", ["h:70000", "h:0", "h:", "h:x", "[::1]:99999", ["h:9092", "h:65536"]])
def test_bootstrap_port_outside_range_fails_at_construction(facade: Any, servers: Any) -> None:
    with pytest.raises(KafkaConfigurationError, match=r"bootstrap_servers.*1\.\.65535"):
        facade(bootstrap_servers=servers)

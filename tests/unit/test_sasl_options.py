"""The security options at the facades: validation, SASL wiring into the core, async token providers."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kproto.errors import AuthenticationFailedError, KafkaConfigurationError
from kproto.producer.config import ProducerConfig
from kproto.sasl import OAuthBearer, Scram, config_authenticator
from transports._common import make_core, split_configs
from transports._tls import AsyncTokenCache, security_from_configs

SECRET = "pa55-word-never-shown"


def test_sasl_options_reach_the_core_client_and_stay_hidden(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    options, config = split_configs(
        {
            "bootstrap_servers": "b1:9092",
            "security_protocol": "sasl_plaintext",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "alice",
            "sasl_plain_password": SECRET,
        }
    )
    assert isinstance(config, ProducerConfig)
    assert options.security is not None and options.security.ssl_context is None
    core = make_core(config, 0.0, **options.core_kwargs())
    client = core._client
    assert client.config.security_protocol == "SASL_PLAINTEXT"
    auth = config_authenticator(client.config, "b1", client._rng)
    assert isinstance(auth._mechanism, Scram) and auth._mechanism.name == "SCRAM-SHA-512"
    # two nonces differ (SystemRandom at the facade), and are valid
    n1, n2 = client.config.sasl_nonce_factory(), client.config.sasl_nonce_factory()
    assert n1 != n2 and "," not in n1
    for text in (
        repr(options),
        repr(options.security),
        repr(client.config),
        repr(auth),
        repr(auth._mechanism),
        caplog.text,
    ):
        assert SECRET not in text


def test_plaintext_needs_no_security() -> None:
    options, _ = split_configs({"security_protocol": "PLAINTEXT"})
    assert options.security is None and options.core_kwargs() == {}


@pytest.mark.parametrize(
    ("configs", "match"),
    [
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism must be one of"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u"},
            "sasl_plain_password",
        ),
        ({"security_protocol": "SSL", "ssl_check_hostname": "yes"}, "ssl_check_hostname"),
    ],
)
def test_bad_security_options(configs: dict[str, object], match: str) -> None:
    with pytest.raises(KafkaConfigurationError, match=match):
        security_from_configs(configs, allow_async_provider=False)


def test_async_token_provider_is_resolved_by_the_async_facades() -> None:
    calls = []

    class Provider:
        async def token(self) -> str:
            calls.append(1)
            return f"tok{len(calls)}"

    sec = security_from_configs(
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_provider": Provider(),
        },
        allow_async_provider=True,
    )
    cache = sec.token_cache
    assert isinstance(cache, AsyncTokenCache) and sec.sasl["sasl_oauth_token_provider"] is cache
    mech = OAuthBearer(cache)
    with pytest.raises(AuthenticationFailedError, match="not a non-empty str"):
        mech.initial()  # never refreshed: a clear failure, not a hang
    asyncio.run(cache.refresh())
    assert OAuthBearer(cache).initial() == b"n,,\x01auth=Bearer tok1\x01\x01"
    asyncio.run(cache.refresh())
    assert OAuthBearer(cache).initial() == b"n,,\x01auth=Bearer tok2\x01\x01"
    assert "tok2" not in repr(cache)

    class Broken:
        async def token(self) -> str:
            raise RuntimeError("idp down")

    broken = AsyncTokenCache(Broken())
    asyncio.run(broken.refresh())
    with pytest.raises(AuthenticationFailedError, match="RuntimeError"):
        OAuthBearer(broken).initial()

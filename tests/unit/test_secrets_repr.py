"""No secret in the reprs of the configs (consumer, producer, client), and consumers' SCRAM nonces.

Secrets: ``sasl_plain_password``, ``ssl_password``, and the OAUTHBEARER
token provider (whose repr may hold a token). The consumer facades build
their client with a SCRAM nonce factory drawing from ``random.SystemRandom``,
as the producer facades do.
"""

from __future__ import annotations

import asyncio
import base64
import random

import pytest
import trio

import transports._consumer_asyncio as ca
import transports._consumer_sync as cs
import transports._consumer_trio as ct
from kproto.client import ClientConfig
from kproto.consumer import ConsumerConfig
from kproto.errors import KafkaConfigurationError
from kproto.producer.config import ProducerConfig
from transports._common import split_configs
from transports._tls import AsyncTokenCache

PASSWORD = "sasl-pw-never-shown"
SSL_PASSWORD = "key-pw-never-shown"
TOKEN = "oauth-token-never-shown"


class Provider:
    """A token provider whose repr would leak its token if printed."""

    def __call__(self) -> str:
        return TOKEN

    def __repr__(self) -> str:
        return f"Provider(token={TOKEN!r})"


SECRETS = (PASSWORD, SSL_PASSWORD, TOKEN)


def assert_hidden(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)


def test_consumer_config_repr_hides_secrets() -> None:
    cfg = ConsumerConfig.from_kwargs(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORD,
        ssl_password=SSL_PASSWORD,
        sasl_oauth_token_provider=Provider(),
    )
    assert_hidden(repr(cfg), str(cfg))
    # the values are still there for the client, and the other options still show
    assert cfg.sasl_plain_password == PASSWORD and cfg.ssl_password == SSL_PASSWORD
    assert "security_protocol='SASL_SSL'" in repr(cfg) and "sasl_mechanism='PLAIN'" in repr(cfg)


def test_client_config_repr_hides_secrets() -> None:
    cfg = ClientConfig(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=Provider(),
        sasl_plain_password=PASSWORD,
    )
    assert_hidden(repr(cfg), str(cfg))
    assert "sasl_mechanism='OAUTHBEARER'" in repr(cfg)


def test_producer_config_and_options_repr_hide_secrets() -> None:
    options, config = split_configs(
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "alice",
            "sasl_plain_password": PASSWORD,
            "ssl_password": SSL_PASSWORD,
        }
    )
    assert isinstance(config, ProducerConfig)
    # the security options are shared options (kproto.config.CommonConfig) kept out of reprs
    assert config.sasl_plain_password == PASSWORD and config.ssl_password == SSL_PASSWORD
    assert options.security is not None
    assert_hidden(repr(config), repr(options), repr(options.security))


def _nonce_draws_from_system_random(monkeypatch: pytest.MonkeyPatch, client_config: ClientConfig) -> None:
    factory = client_config.sasl_nonce_factory
    assert factory is not None
    # Distinct nonces from the real generator...
    assert factory() != factory()
    # ...and it is SystemRandom's: make it predictable and see the nonce follow.
    monkeypatch.setattr(random.SystemRandom, "getrandbits", lambda self, k: 7)
    assert base64.b64decode(factory()) == (7).to_bytes(24, "big")


def test_sync_consumer_client_uses_system_random_nonces(monkeypatch: pytest.MonkeyPatch) -> None:
    c = cs.KafkaConsumer(
        bootstrap_servers="127.0.0.1:1",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORD,
    )
    try:
        client = c._core._client
        assert client.config.security_protocol == "SASL_PLAINTEXT"
        assert client.config.sasl_mechanism == "SCRAM-SHA-256"
        assert_hidden(repr(c.config), repr(client.config), repr(c._security))
        _nonce_draws_from_system_random(monkeypatch, client.config)
    finally:
        c.close()


def test_sync_consumer_refuses_an_async_token_provider() -> None:
    async def provider() -> str:
        return TOKEN

    with pytest.raises(KafkaConfigurationError, match="async"):
        cs.KafkaConsumer(
            security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=provider
        )


def test_async_consumers_cache_an_async_token_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    async def provider() -> str:
        return TOKEN

    configs = {
        "bootstrap_servers": "127.0.0.1:1",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": provider,
    }
    seen: list[object] = []

    async def on_asyncio() -> None:
        c = ca.KafkaConsumer(**configs)
        seen.append(c._core._client.config.sasl_oauth_token_provider)
        seen.append(c._driver.token_cache)
        _nonce_draws_from_system_random(monkeypatch, c._core._client.config)
        await c.close()

    async def on_trio() -> None:
        async with ct.KafkaConsumer(**configs) as c:
            seen.append(c._core._client.config.sasl_oauth_token_provider)
            assert c._driver is not None
            seen.append(c._driver.token_cache)

    asyncio.run(on_asyncio())
    monkeypatch.undo()
    trio.run(on_trio)
    cache_a, driver_a, cache_t, driver_t = seen
    assert isinstance(cache_a, AsyncTokenCache) and driver_a is cache_a
    assert isinstance(cache_t, AsyncTokenCache) and driver_t is cache_t
    assert_hidden(repr(cache_a), repr(cache_t))

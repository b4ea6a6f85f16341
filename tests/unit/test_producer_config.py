"""ProducerConfig: every option's default, normalisation and rejection of bad values."""

from __future__ import annotations

from typing import Any

import pytest

from kproto.errors import KafkaConfigurationError
from kproto.producer import DefaultPartitioner, ProducerConfig

DEFAULTS: dict[str, Any] = {
    "bootstrap_servers": "localhost:9092",
    "client_id": "kproto",
    "acks": 1,
    "compression_type": None,
    "retries": 0,
    "batch_size": 16384,
    "linger_ms": 0,
    "partitioner": None,
    "max_in_flight_requests_per_connection": 5,
    "buffer_memory": 33554432,
    "max_block_ms": 60000,
    "max_request_size": 1048576,
    "request_timeout_ms": 30000,
    "delivery_timeout_ms": 120000,
    "retry_backoff_ms": 100,
    "metadata_max_age_ms": 300000,
    "reconnect_backoff_ms": 50,
    "reconnect_backoff_max_ms": 1000,
    "enable_idempotence": False,
    "socket_connection_setup_timeout_ms": 10000,
    "socket_connection_setup_timeout_max_ms": 30000,
    "metadata_recovery_strategy": "rebootstrap",
    "metadata_recovery_rebootstrap_trigger_ms": 300000,
    "transactional_id": None,
    "transaction_timeout_ms": 60000,
    "proxy_url": None,
    "socks5_proxy": None,
}


def test_defaults_are_the_spec() -> None:
    cfg = ProducerConfig.from_kwargs()
    assert {name: getattr(cfg, name) for name in DEFAULTS} == DEFAULTS
    # The shared options (CommonConfig) have their own defaults test
    # (tests/unit/test_kafka_python_options.py); the producer's own are all listed here.
    from kproto.config import CommonConfig

    own = set(ProducerConfig.option_names()) - set(CommonConfig.option_names())
    assert own <= set(DEFAULTS)


@pytest.mark.parametrize(
    ("given", "stored"), [(0, 0), (1, 1), (-1, -1), ("all", -1), ("ALL", -1), ("1", 1), ("0", 0), ("-1", -1)]
)
def test_acks_normalised(given: object, stored: int) -> None:
    assert ProducerConfig.from_kwargs(acks=given).acks == stored


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_codecs(codec: str | None) -> None:
    assert ProducerConfig.from_kwargs(compression_type=codec).compression_type == codec


def test_codec_spelling_normalised() -> None:
    assert ProducerConfig.from_kwargs(compression_type="GZIP").compression_type == "gzip"
    assert ProducerConfig.from_kwargs(compression_type="none").compression_type is None


def test_every_option_accepts_a_good_value() -> None:
    good: dict[str, Any] = {
        "bootstrap_servers": ["a:1", "b:2"],
        "client_id": "me",
        "acks": "all",
        "compression_type": "lz4",
        "retries": 3,
        "batch_size": 0,
        "linger_ms": 5,
        "partitioner": DefaultPartitioner(),
        "max_in_flight_requests_per_connection": 1,
        "buffer_memory": 1 << 20,
        "max_block_ms": 0,
        "max_request_size": 100,
        "request_timeout_ms": 1000,
        "delivery_timeout_ms": 1005,
        "retry_backoff_ms": 0,
        "metadata_max_age_ms": 0,
        "reconnect_backoff_ms": 0,
        "reconnect_backoff_max_ms": 0,
        "enable_idempotence": False,
        "socket_connection_setup_timeout_ms": 500,
        "socket_connection_setup_timeout_max_ms": 0,
        "metadata_recovery_strategy": "none",
        "metadata_recovery_rebootstrap_trigger_ms": 0,
    }
    cfg = ProducerConfig.from_kwargs(**good)
    assert cfg.bootstrap_list == ["a:1", "b:2"]
    assert cfg.acks == -1 and cfg.linger_ms == 5 and cfg.delivery_timeout_ms == 1005


def test_bootstrap_string_list() -> None:
    assert ProducerConfig.from_kwargs(bootstrap_servers="a:1, b:2").bootstrap_list == ["a:1", "b:2"]


BAD: list[tuple[str, object]] = [
    ("bootstrap_servers", ""),
    ("bootstrap_servers", []),
    ("bootstrap_servers", [1]),
    ("client_id", 5),
    ("acks", 2),
    ("acks", "some"),
    ("acks", True),
    ("compression_type", "brotli"),
    ("compression_type", 1),
    ("retries", -1),
    ("retries", 1.5),
    ("batch_size", -1),
    ("linger_ms", -1),
    ("linger_ms", "5"),
    ("partitioner", "murmur"),
    ("max_in_flight_requests_per_connection", 0),
    ("buffer_memory", 0),
    ("max_block_ms", -5),
    ("max_request_size", 0),
    ("request_timeout_ms", 0),
    ("delivery_timeout_ms", 0),
    ("retry_backoff_ms", -1),
    ("metadata_max_age_ms", -1),
    ("reconnect_backoff_ms", -1),
    ("reconnect_backoff_max_ms", None),
    ("enable_idempotence", "yes"),
    ("socket_connection_setup_timeout_ms", -1),
    ("socket_connection_setup_timeout_ms", 1.5),
    ("socket_connection_setup_timeout_max_ms", None),
    ("metadata_recovery_strategy", "always"),
    ("metadata_recovery_strategy", None),
    ("metadata_recovery_rebootstrap_trigger_ms", -1),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_value_names_the_option(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name) as info:
        ProducerConfig.from_kwargs(**{name: value})
    assert isinstance(info.value, KafkaConfigurationError)
    assert "must be" in str(info.value)


@pytest.mark.parametrize(
    ("wrong", "suggestion"),
    [
        ("linger", "linger_ms"),
        ("batchsize", "batch_size"),
        ("ack", "acks"),
        ("compression", "compression_type"),
    ],
)
def test_unknown_option_suggests_closest(wrong: str, suggestion: str) -> None:
    with pytest.raises(TypeError, match=f"{wrong}.*{suggestion}"):
        ProducerConfig.from_kwargs(**{wrong: 1})


def test_unknown_option_without_close_match() -> None:
    with pytest.raises(TypeError, match="zzzzqqq"):
        ProducerConfig.from_kwargs(zzzzqqq=1)


def test_facade_only_options_are_not_core_options() -> None:
    with pytest.raises(TypeError):
        ProducerConfig.from_kwargs(value_serializer=bytes)


def test_delivery_timeout_must_cover_linger_and_request() -> None:
    with pytest.raises(ValueError, match="delivery_timeout_ms"):
        ProducerConfig.from_kwargs(linger_ms=100, request_timeout_ms=30000, delivery_timeout_ms=30050)


def test_idempotence_turns_on_retries_and_acks_all() -> None:
    cfg = ProducerConfig.from_kwargs(enable_idempotence=True)
    assert cfg.acks == -1 and cfg.retries == 2**31 - 1
    cfg = ProducerConfig.from_kwargs(enable_idempotence=True, acks="all", retries=3)
    assert cfg.retries == 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"acks": 1}, "acks"),
        ({"acks": 0}, "acks"),
        ({"retries": 0}, "retries"),
        ({"max_in_flight_requests_per_connection": 6}, "max_in_flight_requests_per_connection"),
    ],
)
def test_idempotence_requirements(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ProducerConfig.from_kwargs(enable_idempotence=True, **kwargs)


def test_frozen() -> None:
    cfg = ProducerConfig.from_kwargs()
    with pytest.raises(AttributeError):
        cfg.acks = 0  # type: ignore[misc]


def test_metadata_recovery_strategy_error_lists_the_allowed_values() -> None:
    with pytest.raises(KafkaConfigurationError, match="metadata_recovery_strategy.*'none' or 'rebootstrap'"):
        ProducerConfig.from_kwargs(metadata_recovery_strategy="sometimes")


def test_client_options_reach_the_client_core() -> None:
    from kproto.client import ClientConfig
    from kproto.producer import ProducerCore

    cfg = ProducerConfig.from_kwargs(
        metadata_recovery_strategy="none",
        metadata_recovery_rebootstrap_trigger_ms=1234,
        socket_connection_setup_timeout_ms=700,
        socket_connection_setup_timeout_max_ms=5000,
    )
    client_config = ProducerCore(cfg, now=0.0)._client.config
    assert isinstance(client_config, ClientConfig)
    assert client_config.metadata_recovery_strategy == "none"
    assert client_config.metadata_recovery_rebootstrap_trigger_ms == 1234
    assert client_config.socket_connection_setup_timeout_ms == 700
    assert client_config.socket_connection_setup_timeout_max_ms == 5000

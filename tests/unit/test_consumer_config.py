"""ConsumerConfig: defaults from the spec, unknown options, bad values."""

from __future__ import annotations

import pytest

from kproto.consumer import ConsumerConfig
from kproto.errors import KafkaConfigurationError


def test_defaults_match_the_spec() -> None:
    c = ConsumerConfig.from_kwargs()
    assert c.group_id is None
    assert c.auto_offset_reset == "latest"
    assert c.enable_auto_commit is True
    assert c.auto_commit_interval_ms == 5000
    assert c.session_timeout_ms == 10000
    assert c.heartbeat_interval_ms == 3000
    assert c.fetch_min_bytes == 1
    assert c.fetch_max_wait_ms == 500
    assert c.fetch_max_bytes == 52428800
    assert c.max_partition_fetch_bytes == 1048576
    assert c.max_poll_records == 500
    assert c.max_poll_interval_ms == 300000
    assert c.isolation_level == "read_uncommitted"
    assert c.check_crcs is True
    assert c.consumer_timeout_ms is None
    assert c.exclude_internal_topics is True
    assert list(c.partition_assignment_strategy) == ["range", "roundrobin"]
    assert c.reset_policy == "latest"
    assert c.metadata_recovery_strategy == "rebootstrap"
    assert c.metadata_recovery_rebootstrap_trigger_ms == 300000
    assert c.socket_connection_setup_timeout_ms == 10000
    assert c.socket_connection_setup_timeout_max_ms == 30000


def test_unknown_option_names_the_closest() -> None:
    with pytest.raises(TypeError, match=r"'fetch_max_byte'.*did you mean 'fetch_max_bytes'"):
        ConsumerConfig.from_kwargs(fetch_max_byte=1)
    with pytest.raises(TypeError, match="'zzzz'"):
        ConsumerConfig.from_kwargs(zzzz=1)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("isolation_level", "serializable", "read_committed"),
        ("fetch_max_wait_ms", -1, "an int in"),
        ("max_poll_records", 0, "an int in"),
        ("enable_auto_commit", "yes", "True or False"),
        ("heartbeat_interval_ms", 20000, "below session_timeout_ms"),
        ("group_id", "", "non-empty"),
        ("key_deserializer", 3, "callable"),
        ("consumer_timeout_ms", -5, ">= 0"),
        ("bootstrap_servers", "", "non-empty"),
        ("security_protocol", "TLS", "PLAINTEXT"),
        ("metadata_recovery_strategy", "always", "'none' or 'rebootstrap'"),
        ("metadata_recovery_strategy", None, "'none' or 'rebootstrap'"),
        ("metadata_recovery_rebootstrap_trigger_ms", -1, "an int in"),
        ("socket_connection_setup_timeout_ms", -1, "an int in"),
        ("socket_connection_setup_timeout_max_ms", "30s", "an int in"),
    ],
)
def test_bad_values_name_the_option(name: str, value: object, allowed: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        ConsumerConfig.from_kwargs(**{name: value})
    assert isinstance(info.value, KafkaConfigurationError)
    assert allowed in str(info.value)


@pytest.mark.parametrize(("given", "policy"), [("earliest", "earliest"), ("smallest", "earliest"),
                                               ("latest", "latest"), ("none", "none"), ("anything", "none")])
def test_reset_policy(given: str, policy: str) -> None:
    assert ConsumerConfig.from_kwargs(auto_offset_reset=given).reset_policy == policy


def test_client_kwargs_only_shared_names() -> None:
    c = ConsumerConfig.from_kwargs(bootstrap_servers="h:1", request_timeout_ms=40000)
    assert c.client_kwargs(["bootstrap_servers", "request_timeout_ms", "nope"]) == {
        "bootstrap_servers": "h:1", "request_timeout_ms": 40000}


def test_recovery_and_setup_options_reach_the_client_core() -> None:
    from kproto.client import ClientConfig
    from kproto.consumer.core import ConsumerCore

    c = ConsumerConfig.from_kwargs(
        metadata_recovery_strategy="none",
        metadata_recovery_rebootstrap_trigger_ms=1234,
        socket_connection_setup_timeout_ms=700,
        socket_connection_setup_timeout_max_ms=5000,
    )
    client_config = ConsumerCore(c, now=0.0)._client.config
    assert isinstance(client_config, ClientConfig)
    assert client_config.metadata_recovery_strategy == "none"
    assert client_config.metadata_recovery_rebootstrap_trigger_ms == 1234
    assert client_config.socket_connection_setup_timeout_ms == 700
    assert client_config.socket_connection_setup_timeout_max_ms == 5000

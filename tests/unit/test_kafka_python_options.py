"""Every kafka-python option, read from the installed kafka-python at test time (issue 11 item 1).

Each facade (sync, asyncio, trio; producer and consumer) is built with all of
kafka-python 3's defaults at once, and with each option alone at a sensible
non-default value (:data:`NON_DEFAULT`). A kafka-python release that adds an
option fails :func:`test_every_option_has_a_non_default_here` until it is
listed here and accepted by ``kproto.config``. Construction needs no broker:
the bootstrap address is a port nothing listens on and nothing waits for it.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import ssl
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import trio

from kproto import config as kconfig
from kproto.consumer import ConsumerConfig
from kproto.producer.config import ProducerConfig

kafka = pytest.importorskip("kafka")  # the test extra installs kafka-python 3

PRODUCER_DEFAULTS: dict[str, Any] = dict(kafka.KafkaProducer.DEFAULT_CONFIG)
CONSUMER_DEFAULTS: dict[str, Any] = dict(kafka.KafkaConsumer.DEFAULT_CONFIG)
NOWHERE = "127.0.0.1:9"  # the discard port: nothing answers, nothing is waited for


class _Reporter:
    """A metrics reporter class, as kafka-python's ``metric_reporters`` lists them."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def report(self, metrics: Any) -> None:
        self.seen.append(metrics)


_SASL_PLAIN = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}

#: ``option -> the keywords that set it to a sensible non-default`` (some
#: options only mean something together with another one).
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "bootstrap_servers": {"bootstrap_servers": [NOWHERE, "127.0.0.1:10"]},
    "client_id": {"client_id": "orders-service"},
    "key_serializer": {"key_serializer": str.encode},
    "value_serializer": {"value_serializer": str.encode},
    "enable_idempotence": {"enable_idempotence": True},
    "transactional_id": {"transactional_id": "tx-1"},
    "transaction_timeout_ms": {"transaction_timeout_ms": 30000},
    "delivery_timeout_ms": {"delivery_timeout_ms": 60000},
    "acks": {"acks": "all"},
    "compression_type": {"compression_type": "gzip"},
    "retries": {"retries": 3},
    "batch_size": {"batch_size": 65536},
    "linger_ms": {"linger_ms": 5},
    "partitioner": {"partitioner": lambda key, all_partitions, available: all_partitions[0]},
    "connections_max_idle_ms": {"connections_max_idle_ms": 60000},
    "max_block_ms": {"max_block_ms": 5000},
    "max_request_size": {"max_request_size": 2 * 1048576},
    "allow_auto_create_topics": {"allow_auto_create_topics": False},
    "metadata_max_age_ms": {"metadata_max_age_ms": 60000},
    "client_dns_lookup": {"client_dns_lookup": "resolve_canonical_bootstrap_servers_only"},
    "retry_backoff_ms": {"retry_backoff_ms": 250},
    "request_timeout_ms": {"request_timeout_ms": 20000},
    "receive_message_max_bytes": {"receive_message_max_bytes": 50_000_000},
    "receive_buffer_bytes": {"receive_buffer_bytes": 262144},
    "send_buffer_bytes": {"send_buffer_bytes": 262144},
    "socket_options": {"socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]},
    "reconnect_backoff_ms": {"reconnect_backoff_ms": 100},
    "reconnect_backoff_max_ms": {"reconnect_backoff_max_ms": 5000},
    "max_in_flight_requests_per_connection": {"max_in_flight_requests_per_connection": 1},
    "security_protocol": {"security_protocol": "SSL"},
    "ssl_context": {"security_protocol": "SSL", "ssl_context": ssl.create_default_context()},
    "ssl_check_hostname": {"security_protocol": "SSL", "ssl_check_hostname": False},
    "ssl_cafile": {"ssl_cafile": "/etc/ssl/certs/ca-certificates.crt"},
    "ssl_certfile": {"ssl_certfile": "client.pem"},
    "ssl_keyfile": {"ssl_keyfile": "client.key"},
    "ssl_crlfile": {"ssl_crlfile": "revoked.crl"},
    "ssl_password": {"ssl_password": "key-pass"},
    "ssl_ciphers": {"security_protocol": "SSL", "ssl_ciphers": "ECDHE+AESGCM"},
    "api_version": {"api_version": (2, 8)},
    "bootstrap_timeout_ms": {"bootstrap_timeout_ms": 5000},
    "metric_reporters": {"metric_reporters": [_Reporter]},
    "metrics_enabled": {"metrics_enabled": False},
    "metrics_num_samples": {"metrics_num_samples": 3},
    "metrics_sample_window_ms": {"metrics_sample_window_ms": 10000},
    "selector": {"selector": selectors.SelectSelector},
    "sasl_mechanism": {**_SASL_PLAIN, "sasl_plain_username": "u", "sasl_plain_password": "p"},
    "sasl_plain_username": {**_SASL_PLAIN, "sasl_plain_username": "alice", "sasl_plain_password": "p"},
    "sasl_plain_password": {**_SASL_PLAIN, "sasl_plain_username": "u", "sasl_plain_password": "s3cret"},
    "sasl_kerberos_name": {"sasl_kerberos_name": "kafka-client"},
    "sasl_kerberos_service_name": {"sasl_kerberos_service_name": "kafka-prod"},
    "sasl_kerberos_domain_name": {"sasl_kerberos_domain_name": "kdc.example.org"},
    "sasl_oauth_token_provider": {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": lambda: "token",
    },
    "proxy_url": {"proxy_url": "socks5://127.0.0.1:1080"},
    "socks5_proxy": {"socks5_proxy": "socks5://127.0.0.1:1080"},
    "kafka_client": {"kafka_client": object},
    # consumer
    "client_rack": {"client_rack": "rack-a"},
    "group_id": {"group_id": "billing"},
    "group_instance_id": {"group_id": "billing", "group_instance_id": "billing-1"},
    "key_deserializer": {"key_deserializer": bytes.decode},
    "value_deserializer": {"value_deserializer": bytes.decode},
    "enable_incremental_fetch_sessions": {"enable_incremental_fetch_sessions": False},
    "fetch_max_wait_ms": {"fetch_max_wait_ms": 100},
    "fetch_min_bytes": {"fetch_min_bytes": 1024},
    "fetch_max_bytes": {"fetch_max_bytes": 10 * 2**20},
    "max_partition_fetch_bytes": {"max_partition_fetch_bytes": 2 * 2**20},
    "auto_offset_reset": {"auto_offset_reset": "earliest"},
    "enable_auto_commit": {"enable_auto_commit": False},
    "auto_commit_interval_ms": {"auto_commit_interval_ms": 1000},
    "default_offset_commit_callback": {"default_offset_commit_callback": lambda offsets, error: None},
    "check_crcs": {"check_crcs": False},
    "isolation_level": {"isolation_level": "read_committed"},
    "partition_assignment_strategy": {"partition_assignment_strategy": ["roundrobin"]},
    "max_poll_records": {"max_poll_records": 100},
    "max_poll_interval_ms": {"max_poll_interval_ms": 60000},
    "session_timeout_ms": {"session_timeout_ms": 30000},
    "heartbeat_interval_ms": {"heartbeat_interval_ms": 1000},
    "consumer_timeout_ms": {"consumer_timeout_ms": 1000},
    "metric_group_prefix": {"metric_group_prefix": "billing-consumer"},
    "exclude_internal_topics": {"exclude_internal_topics": False},
}


def _sync_producer(kw: dict[str, Any]) -> None:
    from transports.sync import KafkaProducer

    KafkaProducer(**kw).close(0)


def _sync_consumer(kw: dict[str, Any]) -> None:
    from transports.sync import KafkaConsumer

    KafkaConsumer(**kw).close(autocommit=False)


def _asyncio_producer(kw: dict[str, Any]) -> None:
    from transports.asyncio import KafkaProducer

    async def make() -> None:
        await KafkaProducer(**kw).close(0)

    asyncio.run(make())


def _asyncio_consumer(kw: dict[str, Any]) -> None:
    from transports.asyncio import KafkaConsumer

    async def make() -> None:
        await KafkaConsumer(**kw).close(autocommit=False)

    asyncio.run(make())


def _trio_producer(kw: dict[str, Any]) -> None:
    from transports.trio import KafkaProducer

    KafkaProducer(**kw)


def _trio_consumer(kw: dict[str, Any]) -> None:
    from transports.trio import KafkaConsumer

    async def make() -> None:
        KafkaConsumer(**kw)

    trio.run(make)


PRODUCERS = [_sync_producer, _asyncio_producer, _trio_producer]
CONSUMERS = [_sync_consumer, _asyncio_consumer, _trio_consumer]


def _ids(fn: Callable[..., Any]) -> str:
    return fn.__name__.strip("_")


def _quiet(build: Callable[[dict[str, Any]], None], kw: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kafka_client's one-time warning has its own test
        build(kw)


def test_every_option_has_a_non_default_here() -> None:
    """A new kafka-python option fails here until it is listed (and so tested below)."""
    missing = sorted((set(PRODUCER_DEFAULTS) | set(CONSUMER_DEFAULTS)) - set(NON_DEFAULT))
    assert not missing, f"kafka-python options with no non-default value in this test: {missing}"


@pytest.mark.parametrize("build", PRODUCERS, ids=_ids)
def test_producer_takes_all_kafka_python_defaults(build: Callable[[dict[str, Any]], None]) -> None:
    _quiet(build, {**PRODUCER_DEFAULTS, "bootstrap_servers": NOWHERE})


@pytest.mark.parametrize("build", CONSUMERS, ids=_ids)
def test_consumer_takes_all_kafka_python_defaults(build: Callable[[dict[str, Any]], None]) -> None:
    _quiet(build, {**CONSUMER_DEFAULTS, "bootstrap_servers": NOWHERE})


@pytest.mark.parametrize("name", sorted(PRODUCER_DEFAULTS))
@pytest.mark.parametrize("build", PRODUCERS, ids=_ids)
def test_producer_takes_each_option_at_a_non_default(build: Callable[[dict[str, Any]], None], name: str) -> None:
    _quiet(build, {"bootstrap_servers": NOWHERE, **NON_DEFAULT[name]})


@pytest.mark.parametrize("name", sorted(CONSUMER_DEFAULTS))
@pytest.mark.parametrize("build", CONSUMERS, ids=_ids)
def test_consumer_takes_each_option_at_a_non_default(build: Callable[[dict[str, Any]], None], name: str) -> None:
    _quiet(build, {"bootstrap_servers": NOWHERE, **NON_DEFAULT[name]})


def test_one_config_dict_serves_producer_and_consumer() -> None:
    """Every option kafka-python's producer and consumer share is shared here too."""
    shared = set(PRODUCER_DEFAULTS) & set(CONSUMER_DEFAULTS)
    assert shared <= set(kconfig.CommonConfig.option_names()) | {"bootstrap_servers"}
    settings = {name: PRODUCER_DEFAULTS[name] for name in shared} | {"bootstrap_servers": NOWHERE}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _sync_producer(settings)
        _sync_consumer(settings)


def test_kafka_python_default_values_keep_kprotos_meaning() -> None:
    """kafka-python's spellings are accepted; kproto's own defaults stay the seed's."""
    mine = ProducerConfig.from_kwargs()
    assert (mine.acks, mine.retries, mine.enable_idempotence, mine.client_id) == (1, 0, False, "kproto")
    theirs = ProducerConfig.from_kwargs(client_id=None, retries=float("inf"), api_version="auto")
    assert (theirs.client_id, theirs.retries, theirs.api_version) == ("kproto", 2**31 - 1, None)
    consumer = ConsumerConfig.from_kwargs(consumer_timeout_ms=float("inf"), client_rack="", api_version="3.9")
    assert (consumer.consumer_timeout_ms, consumer.client_rack, consumer.api_version) == (None, None, (3, 9))
    assert ConsumerConfig.from_kwargs().request_timeout_ms == 305000


def test_kafka_python_default_partitioner_is_kprotos_and_objects_are_adapted() -> None:
    assert ProducerConfig.from_kwargs(partitioner=PRODUCER_DEFAULTS["partitioner"]).partitioner is None

    class LastAvailable:
        """A kafka-python 3 style Partitioner object."""

        def partition(self, topic: Any, key: Any, serialized_key: Any, value: Any, serialized_value: Any, cluster: Any) -> int:
            return max(cluster.available_partitions_for_topic(topic))

    fn = ProducerConfig.from_kwargs(partitioner=LastAvailable()).partitioner
    assert fn is not None and fn(b"k", [0, 1, 2, 3], [0, 2]) == 2


def test_meaningless_option_warns_once_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kconfig, "_warned", set())
    with pytest.warns(UserWarning, match="kafka_client is accepted for kafka-python compatibility and ignored"):
        ProducerConfig.from_kwargs(kafka_client=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConsumerConfig.from_kwargs(kafka_client=object)  # once per process


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("api_version", "newest", "a broker release"),
        ("api_version", (1, 1), "from (2, 2) on"),
        ("api_version", (2, "8"), "a broker release"),
        ("client_dns_lookup", "default", "use_all_dns_ips"),
        ("socket_options", [(6, 1)], "(level, option, int-or-bytes value)"),
        ("send_buffer_bytes", "big", "None or an int"),
        ("receive_message_max_bytes", 0, "None or an int"),
        ("bootstrap_timeout_ms", -5, "None or an int"),
        ("connections_max_idle_ms", "never", "an int in"),
        ("selector", "epoll", "selectors.BaseSelector"),
        ("metric_reporters", "r", "a list of reporter classes"),
        ("sasl_kerberos_service_name", "", "a non-empty str"),
    ],
)
def test_bad_shared_option_names_itself(name: str, value: object, allowed: str) -> None:
    for config in (ProducerConfig, ConsumerConfig):
        with pytest.raises(ValueError, match=name) as info:
            config.from_kwargs(**{name: value})
        assert allowed in str(info.value)

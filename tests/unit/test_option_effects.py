"""kafka-python options reaching what they change (issue 11 item 1): the Fetch request's
fields, the TLS context, the consumer's metric group names.

The options with their own test files: tests/unit/test_client_options.py
(api_version, connections_max_idle_ms, receive_message_max_bytes,
bootstrap_timeout_ms) and tests/unit/test_sockopts.py (socket options, DNS).
"""

from __future__ import annotations

import random
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_consumer_core import TP0, TP1, answer_list_offsets, make, wire  # noqa: E402

from kproto.consumer import ConsumerConfig, OffsetAndMetadata, TopicPartition  # noqa: E402
from kproto.consumer.core import ConsumerCore  # noqa: E402
from kproto.driving import Close, Connect  # noqa: E402
from kproto.errors import KafkaTimeoutError, TopicAuthorizationFailedError  # noqa: E402
from kproto.producer import ProducerConfig, ProducerCore  # noqa: E402
from kproto.protocol._primitives import read_nullable_string, skip_tagged_fields  # noqa: E402
from kproto.protocol.messages import (  # noqa: E402
    REQUEST_FLEXIBLE_VERSIONS,
    REQUEST_TYPES,
    MetadataResponse,
    OffsetCommitResponse,
)
from kproto.protocol.messages import metadata as MD  # noqa: E402
from kproto.protocol.messages import offset_commit as OC  # noqa: E402
from transports._tls import security_from_configs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim.harness import SimCluster  # noqa: E402


def test_fetch_options_reach_every_fetch_request() -> None:
    core, client = make(
        auto_offset_reset="earliest",
        fetch_min_bytes=4096,
        fetch_max_wait_ms=250,
        fetch_max_bytes=8 * 2**20,
        max_partition_fetch_bytes=2 * 2**20,
        isolation_level="read_committed",
        enable_incremental_fetch_sessions=False,
    )
    core.assign([TP0, TP1], now=0.0)
    answer_list_offsets(client, {0: 0, 1: 0})
    fetches = client.take("FetchRequest")
    assert len(fetches) == 2
    for req, _cb, _node, _mv in fetches:
        assert (req.min_bytes, req.max_wait_ms, req.max_bytes) == (4096, 250, 8 * 2**20)
        assert req.isolation_level == 1  # read_committed (KIP-98)
        assert req.session_epoch == -1  # sessions off (KIP-227)
        assert {p.partition_max_bytes for t in req.topics for p in t.partitions} == {2 * 2**20}


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    ca = trustme.CA()
    d = tmp_path_factory.mktemp("ca")
    cafile = str(d / "ca.pem")
    ca.cert_pem.write_to_path(cafile)
    return cafile, str(d)


def test_ssl_ciphers_and_check_hostname_shape_the_context(ca_files: tuple[str, str]) -> None:
    cafile, _ = ca_files
    sec = security_from_configs(
        {"security_protocol": "SSL", "ssl_cafile": cafile, "ssl_ciphers": "ECDHE-RSA-AES128-GCM-SHA256", "ssl_check_hostname": False},
        allow_async_provider=False,
    )
    ctx = sec.ssl_context
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname is False
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-RSA-AES128-GCM-SHA256"}


def test_ssl_crlfile_turns_on_crl_checks(ca_files: tuple[str, str]) -> None:
    cafile, _ = ca_files
    sec = security_from_configs(
        {"security_protocol": "SSL", "ssl_cafile": cafile, "ssl_crlfile": cafile}, allow_async_provider=False
    )
    assert sec.ssl_context is not None and sec.ssl_context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF


def test_metric_group_prefix_names_the_consumer_metrics() -> None:
    from transports.sync import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:9", metric_group_prefix="billing")
    try:
        assert "billing-metrics" in consumer.metrics()
    finally:
        consumer.close(autocommit=False)


def test_sync_facade_runs_on_the_selector_class_given() -> None:
    """``selector``: the sync transport's selectors class (kafka-python's option)."""
    import selectors

    from transports.sync import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers="127.0.0.1:9", selector=selectors.SelectSelector)
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:9", selector=selectors.PollSelector)
    try:
        assert type(producer._loop.driver._sel) is selectors.SelectSelector
        assert consumer._driver is not None and type(consumer._driver._sel) is selectors.PollSelector
    finally:
        producer.close(0)
        consumer.close(autocommit=False)
    default = KafkaProducer(bootstrap_servers="127.0.0.1:9")
    try:
        assert type(default._loop.driver._sel) is selectors.DefaultSelector
    finally:
        default.close(0)


# --- consumer: default_offset_commit_callback ------------------------------------------


def commit_answer(code: int) -> Any:
    return wire(OffsetCommitResponse(topics=[OC.OffsetCommitResponseTopic(name=TP0.topic, partitions=[
        OC.OffsetCommitResponsePartition(partition_index=0, error_code=code)])]), 8)


def test_default_offset_commit_callback_gets_each_auto_commit_and_its_outcome() -> None:
    calls: list[tuple[Any, BaseException | None]] = []
    core, client = make(group_id="g", auto_commit_interval_ms=1000,
                        default_offset_commit_callback=lambda offsets, error: calls.append((offsets, error)))
    core.assign([TP0], now=0.0)
    client.take("OffsetFetchRequest")
    core.seek(TP0, 8, now=0.0)
    core.handle_timer(1.0)
    ((_, cb, _, _),) = client.take("OffsetCommitRequest")
    assert calls == []  # called with the outcome, not on sending
    cb(commit_answer(0), None)
    assert calls == [({TP0: OffsetAndMetadata(8, "", -1)}, None)]
    core.seek(TP0, 9, now=1.0)
    core.handle_timer(2.0)
    ((_, cb, _, _),) = client.take("OffsetCommitRequest")
    cb(commit_answer(29), None)  # TOPIC_AUTHORIZATION_FAILED: not retriable, the commit fails
    assert len(calls) == 2
    offsets, error = calls[1]
    assert offsets == {TP0: OffsetAndMetadata(9, "", -1)}
    assert isinstance(error, TopicAuthorizationFailedError)


# --- consumer: exclude_internal_topics ----------------------------------------------------


def all_topics_answer() -> Any:
    def topic(name: str, internal: bool) -> Any:
        return MD.MetadataResponseTopic(name=name, is_internal=internal, partitions=[
            MD.MetadataResponsePartition(partition_index=0, leader_id=1)])
    # A broker flags __consumer_offsets as internal; __transaction_state is hidden by name as well.
    return wire(MetadataResponse(brokers=[MD.MetadataResponseBroker(node_id=1, host="h", port=1)], topics=[
        topic("__consumer_offsets", True), topic("__transaction_state", False), topic("topic", False)]), 12)


@pytest.mark.parametrize("exclude", [True, False])
def test_exclude_internal_topics_filters_topics_and_pattern_subscriptions(exclude: bool) -> None:
    internal = {"__consumer_offsets", "__transaction_state"}
    core, client = make(exclude_internal_topics=exclude)
    expected = {"topic"} if exclude else {"topic"} | internal
    assert set(core.topics_from(all_topics_answer())) == expected  # what topics() returns
    core.subscribe(pattern=".*", now=0.0)
    ((req, cb, _, _),) = client.take("MetadataRequest")
    assert req.topics is None  # a pattern asks for every topic
    cb(all_topics_answer(), None)
    core.handle_timer(0.0)
    assert {tp.topic for tp in core.assignment()} == expected
    assert core.subscription() == expected


# --- producer: allow_auto_create_topics ---------------------------------------------------


class Wire:
    """A core driven against a SimCluster over bytes; records every request it writes, decoded."""

    def __init__(self, cluster: SimCluster, core: Any) -> None:
        self.cluster, self.core = cluster, core
        self.address: dict[int, tuple[str, int]] = {}
        self.requests: list[tuple[int, Any]] = []  # (node, decoded request)
        self.closed: list[int] = []
        self.hold = False  # True: requests reach no broker (a black hole)

    def step(self, now: float) -> int:
        """Connect what is asked, write out every request and (unless holding) answer it."""
        for cmd in self.core.commands():
            if isinstance(cmd, Connect):
                self.address[cmd.node_id] = (cmd.host, cmd.port)
                self.core.connection_made(cmd.node_id, now)
            elif isinstance(cmd, Close):
                self.closed.append(cmd.node_id)
        answered = 0
        for node, data in self.core.data_to_send():
            view, pos = memoryview(data), 0
            while pos < len(view):  # one send may hold several frames
                size = int.from_bytes(view[pos:pos + 4], "big")
                frame = bytes(view[pos + 4:pos + 4 + size])
                pos += 4 + size
                api_key, version = int.from_bytes(frame[:2], "big"), int.from_bytes(frame[2:4], "big")
                body, at = read_nullable_string(memoryview(frame), 8)
                flex = REQUEST_FLEXIBLE_VERSIONS.get(api_key)
                if flex is not None and version >= flex:
                    at = skip_tagged_fields(memoryview(frame), at)
                self.requests.append((node, REQUEST_TYPES[api_key].read(memoryview(frame), at, version)[0]))
                if self.hold:
                    continue
                broker = self.cluster.by_address(*self.address[node])
                assert broker is not None
                response, _ = broker.handle(frame, now)
                if response is not None:
                    self.core.receive_data(node, len(response).to_bytes(4, "big") + response, now)
                    answered += 1
        return answered

    def settle(self, now: float) -> None:
        for _ in range(20):
            if not self.step(now):
                return

    def of(self, kind: str) -> list[Any]:
        return [r for _, r in self.requests if type(r).__name__ == kind]


@pytest.mark.parametrize("allow", [True, False])
def test_allow_auto_create_topics_is_in_every_producer_metadata_request(allow: bool) -> None:
    cluster = SimCluster(random.Random(0), 1, default_partitions=1)
    core = ProducerCore(ProducerConfig.from_kwargs(bootstrap_servers=cluster.bootstrap,
                                                   allow_auto_create_topics=allow), now=0.0, rng=random.Random(1))
    w = Wire(cluster, core)
    core.send(topic="orders", key=None, value=b"v", headers=None, partition=None, timestamp_ms=0, token=None,
              now=0.0)
    w.settle(0.0)
    metadata = w.of("MetadataRequest")
    assert metadata and [t.name for t in metadata[-1].topics] == ["orders"]
    assert {r.allow_auto_topic_creation for r in metadata} == {allow}


# --- consumer: request_timeout_ms ----------------------------------------------------------


def test_consumer_request_without_answer_fails_at_request_timeout_ms() -> None:
    cluster = SimCluster(random.Random(0), 1, default_partitions=1)
    cluster.create_topic("t", 0.0)
    core = ConsumerCore(ConsumerConfig.from_kwargs(bootstrap_servers=cluster.bootstrap, request_timeout_ms=5000,
                                                   retry_backoff_ms=100), now=0.0, rng=random.Random(1))
    w = Wire(cluster, core)
    core.add_topics(["t"], 0.0)
    w.settle(0.0)
    assert core.partitions_for_topic("t") == {0}
    answered = core.list_offsets({TopicPartition("t", 0): -1}, now=0.0)
    w.settle(0.0)
    assert answered.done and answered.exception() is None  # the leader answers while it is reachable
    w.hold = True
    pending = core.list_offsets({TopicPartition("t", 0): -1}, now=1.0)
    w.step(1.0)
    (_, (node, _)) = [(n, r) for n, r in w.requests if type(r).__name__ == "ListOffsetsRequest"]
    core.handle_timer(5.999)  # 4.999 s after sending: not yet
    w.step(5.999)
    assert node not in w.closed and not pending.done
    timer = core.get_timer()
    assert timer is not None and timer <= 6.0
    core.handle_timer(6.0)  # request_timeout_ms after sending: the connection is dropped (Java NetworkClient)
    w.step(6.0)
    assert node in w.closed
    # The ListOffsets operation as a whole also has request_timeout_ms (Java's
    # Fetcher.fetchOffsetsByTimes retries until its timer expires): its retry finds it spent.
    t = core.get_timer()
    assert t is not None and t > 6.0
    core.handle_timer(t)
    w.step(t)
    assert pending.done and isinstance(pending.exception(), KafkaTimeoutError)
    assert len(w.of("ListOffsetsRequest")) == 2  # the answered one and the unanswered one

"""ProducerCore driven through a scripted client: explicit time, exact requests, exact events."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kproto.errors import (
    IllegalArgumentError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
)
from kproto.producer import (
    DeliveryFailed,
    ProducerConfig,
    ProducerCore,
    RecordsDelivered,
    StickyPartitioner,
    murmur2,
)
from kproto.producer.events import BatchOutcome, BatchRetried
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse
from kproto.protocol.messages.produce import (
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceResponse,
)
from kproto.protocol.records import RecordBatch, RecordBatchBuilder, read_batches


def outcomes(core: ProducerCore) -> list[BatchOutcome]:
    """The delivery reports among the core's events (drains all of them)."""
    return [e for e in core.events() if isinstance(e, BatchOutcome)]
Callback = Callable[[Any, KafkaError | None], None]


class FakeCluster:
    """The slice of kproto.cluster.ClusterMetadata the producer reads."""

    def __init__(self) -> None:
        self.version = 0
        self.leaders: dict[str, dict[int, int]] = {}
        self.errors: dict[str, KafkaError] = {}

    def set_topic(self, topic: str, leaders: dict[int, int]) -> None:
        self.leaders[topic] = dict(leaders)
        self.version += 1

    def partitions_for(self, topic: str) -> set[int] | None:
        parts = self.leaders.get(topic)
        return set(parts) if parts is not None else None

    def available_partitions_for(self, topic: str) -> set[int]:
        return {p for p, leader in self.leaders.get(topic, {}).items() if leader >= 0}

    def leader_for(self, topic: str, partition: int) -> int | None:
        leader = self.leaders.get(topic, {}).get(partition, -1)
        return leader if leader >= 0 else None

    def topic_error(self, topic: str) -> KafkaError | None:
        return self.errors.get(topic)


class Sent:
    """One request the core handed to the client."""

    def __init__(self, node: int | None, request: Any, callback: Callback, expect: bool) -> None:
        self.node = node
        self.request = request
        self.callback = callback
        self.expect = expect

    def batches(self) -> dict[tuple[str, int], RecordBatch]:
        out: dict[tuple[str, int], RecordBatch] = {}
        for td in self.request.topic_data:
            for pd in td.partition_data:
                (batch,) = list(read_batches(bytes(pd.records)))
                assert isinstance(batch, RecordBatch)
                out[(td.name, pd.index)] = batch
        return out


class ScriptedClient:
    """Stands in for kproto.client.Client; the test answers requests by hand.

    Answers are queued with :meth:`answer` and delivered inside the next
    driving input, as the real client does.
    """

    def __init__(self) -> None:
        self.cluster = FakeCluster()
        self.sent: list[Sent] = []
        self.ready: set[int] = {1, 2}
        self.connects: list[int] = []
        self.topics: set[str] = set()
        self.metadata_requests = 0
        self.completions: list[tuple[Callback, Any, KafkaError | None]] = []
        self.closed = False
        self.init_pid_version = 4

    # requests
    def send(
        self,
        request: Any,
        *,
        now: float,
        callback: Callback,
        node_id: int | None = None,
        max_version: int | None = None,
        expect_response: bool = True,
        timeout_ms: int | None = None,
    ) -> None:
        self.sent.append(Sent(node_id, request, callback, expect_response))

    def answer(self, sent: Sent, response: Any, error: KafkaError | None = None) -> None:
        self.completions.append((sent.callback, response, error))

    def is_ready(self, node_id: int) -> bool:
        return node_id in self.ready

    def in_flight_count(self, node_id: int) -> int:
        return 0

    def api_version(self, node_id: int, api_key: int) -> int | None:
        return self.init_pid_version if api_key == 22 else 9

    def ensure_connected(self, node_id: int, now: float) -> None:
        self.connects.append(node_id)

    def add_topics(self, topics: Any, now: float) -> None:
        self.topics |= set(topics)

    def request_metadata_update(self, now: float) -> None:
        self.metadata_requests += 1

    responses_with_trailing_bytes = 0

    def versions_sent(self) -> dict[int, int]:
        return {}

    def bootstrap_connected(self) -> bool:
        return True

    def close(self, now: float) -> None:
        self.closed = True

    # driving surface
    def _run(self) -> None:
        done, self.completions = self.completions, []
        for cb, resp, err in done:
            cb(resp, err)

    def connection_made(self, node_id: int, now: float) -> None:
        self._run()

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        self._run()

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        self._run()

    def handle_timer(self, now: float) -> None:
        self._run()

    def commands(self) -> list[Any]:
        return []

    def data_to_send(self) -> list[tuple[int, bytes]]:
        return []

    def get_timer(self) -> float | None:
        return None

    def events(self) -> list[object]:
        return []


def produce_response(sent: Sent, code: int = 0, base: int = 100, **codes: int) -> ProduceResponse:
    """Answer every partition of ``sent``; ``codes`` maps 'topic_partition' to an error code."""
    topics = []
    for td in sent.request.topic_data:
        prs = []
        for pd in td.partition_data:
            c = codes.get(f"{td.name}_{pd.index}", code)
            prs.append(
                PartitionProduceResponse(
                    index=pd.index, error_code=c, base_offset=base if not c else -1, log_append_time_ms=-1
                )
            )
        topics.append(TopicProduceResponse(name=td.name, partition_responses=prs))
    return ProduceResponse(responses=topics)


def make(**kwargs: Any) -> tuple[ProducerCore, ScriptedClient]:
    client = ScriptedClient()
    client.cluster.set_topic("t", {0: 1, 1: 2, 2: 1})
    core = ProducerCore(ProducerConfig.from_kwargs(**kwargs), now=0.0, rng=random.Random(7), client=client)
    core.handle_timer(0.0)
    return core, client


def send(core: ProducerCore, token: object, *, now: float = 0.0, **kw: Any) -> bool:
    args: dict[str, Any] = dict(
        topic="t", key=b"k", value=b"v", headers=None, partition=0, timestamp_ms=1000, token=token, now=now
    )
    args.update(kw)
    return core.send(**args)


def produce_requests(client: ScriptedClient) -> list[Sent]:
    return [s for s in client.sent if isinstance(s.request, ProduceRequest)]


# --- batching and the wire -------------------------------------------------------------


def test_records_encoded_exactly_and_delivered_in_order() -> None:
    core, client = make()
    headers = [("h", b"1"), ("n", None)]
    assert send(core, "a", key=None, value=b"first", timestamp_ms=5000)
    assert send(core, "b", key=b"key", value=None, timestamp_ms=5003, headers=headers)
    assert send(core, "c", key=b"", value=b"", timestamp_ms=4999)
    assert client.sent == []  # nothing leaves before the driver pulls
    core.data_to_send()
    (req,) = produce_requests(client)
    assert req.node == 1 and req.request.acks == 1 and req.request.timeout_ms == 30000
    batch = req.batches()[("t", 0)]
    assert batch.producer_id == -1 and batch.base_sequence == -1 and batch.attributes == 0
    assert batch.base_timestamp == 5000 and batch.max_timestamp == 5003
    recs = batch.records()
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in recs] == [
        (0, 5000, None, b"first", ()),
        (1, 5003, b"key", None, (("h", b"1"), ("n", None))),
        (2, 4999, b"", b"", ()),
    ]
    client.answer(req, produce_response(req, base=42))
    core.receive_data(1, b"", 0.01)
    (ev,) = outcomes(core)
    assert ev == RecordsDelivered(
        topic="t", partition=0, base_offset=42, log_append_time_ms=-1, tokens=["a", "b", "c"]
    )
    assert core.pending_count() == 0
    assert core.buffer_available() == 33554432


def test_one_request_per_leader_with_batches_of_many_partitions() -> None:
    core, client = make()
    for p in (0, 1, 2):
        send(core, p, partition=p)
    core.data_to_send()
    reqs = produce_requests(client)
    assert sorted((r.node, sorted(r.batches())) for r in reqs) == [
        (1, [("t", 0), ("t", 2)]),
        (2, [("t", 1)]),
    ]


def test_batch_size_closes_batches_and_big_record_gets_its_own() -> None:
    core, client = make(batch_size=200, linger_ms=1000)
    for i in range(6):
        send(core, i, value=b"x" * 40)
    send(core, "big", value=b"y" * 500)
    core.data_to_send()
    # a record is 49 bytes: 61 + 2 * 49 <= 200 < 61 + 3 * 49; one batch per partition per request
    batches = [r.batches()[("t", 0)] for r in produce_requests(client)]
    assert [b.record_count for b in batches] == [2, 2, 2, 1]
    assert batches[-1].records()[0].value == b"y" * 500


def test_linger_holds_batch_until_deadline_and_timer_says_when() -> None:
    core, client = make(linger_ms=50)
    send(core, 1, now=1.0)
    core.data_to_send()
    assert produce_requests(client) == []
    assert core.get_timer() == pytest.approx(1.05)
    send(core, 2, now=1.02)
    core.handle_timer(1.05)
    (req,) = produce_requests(client)
    assert req.batches()[("t", 0)].record_count == 2


def test_flush_ignores_linger() -> None:
    core, client = make(linger_ms=10_000)
    send(core, 1)
    core.flush(0.0)
    core.data_to_send()
    assert len(produce_requests(client)) == 1


def test_max_request_size_splits_requests() -> None:
    core, client = make(max_request_size=1000, batch_size=16384)
    for p in (0, 2):
        send(core, p, partition=p, value=b"z" * 600)
    core.data_to_send()
    reqs = produce_requests(client)
    assert [sorted(r.batches()) for r in reqs] == [[("t", 0)], [("t", 2)]]


def test_in_flight_limit_accumulates_records() -> None:
    core, client = make(max_in_flight_requests_per_connection=1)
    send(core, 1)
    core.data_to_send()
    for i in range(2, 6):
        send(core, i)
    core.data_to_send()
    assert len(produce_requests(client)) == 1
    first = produce_requests(client)[0]
    client.answer(first, produce_response(first))
    core.receive_data(1, b"", 0.1)
    core.data_to_send()
    second = produce_requests(client)[1]
    assert second.batches()[("t", 0)].record_count == 4


def test_not_ready_leader_is_connected_and_waits() -> None:
    core, client = make()
    client.ready = set()
    send(core, 1)
    core.data_to_send()
    assert produce_requests(client) == [] and client.connects == [1]
    client.ready = {1}
    core.connection_made(1, 0.1)
    core.data_to_send()
    assert len(produce_requests(client)) == 1


def test_acks_zero_delivers_with_offset_minus_one() -> None:
    core, client = make(acks=0)
    send(core, "x")
    core.data_to_send()
    (req,) = produce_requests(client)
    assert req.expect is False and req.request.acks == 0
    client.answer(req, None)
    core.handle_timer(0.0)
    (ev,) = outcomes(core)
    assert isinstance(ev, RecordsDelivered) and ev.base_offset == -1 and ev.tokens == ["x"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(codec: str) -> None:
    core, client = make(compression_type=codec)
    for i in range(50):
        send(core, i, value=b"abc" * 30)
    core.data_to_send()
    batch = produce_requests(client)[0].batches()[("t", 0)]
    assert batch.attributes & 7 == {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
    assert [r.value for r in batch.records()] == [b"abc" * 30] * 50


# --- partitioning ------------------------------------------------------------------


def test_default_partitioner_keyed_and_random() -> None:
    core, client = make()
    key = b"some-key"
    send(core, "k", key=key, partition=None)
    for i in range(30):
        send(core, i, key=None, partition=None)
    core.data_to_send()
    seen: dict[int, int] = {}
    for r in produce_requests(client):
        for (_t, p), batch in r.batches().items():
            seen[p] = seen.get(p, 0) + batch.record_count
    assert sum(seen.values()) == 31
    assert set(seen) == {0, 1, 2}
    expected = (murmur2(key) & 0x7FFFFFFF) % 3
    found = [
        p for r in produce_requests(client) for (_t, p), b in r.batches().items() if b.records()[0].key == key
    ]
    assert found == [expected]


def test_random_partition_only_among_available() -> None:
    core, client = make()
    client.cluster.set_topic("t", {0: 1, 1: -1, 2: -1})
    core.handle_timer(0.0)
    for i in range(20):
        send(core, i, key=None, partition=None)
    core.data_to_send()
    assert {p for r in produce_requests(client) for (_t, p) in r.batches()} == {0}


def test_custom_partitioner_called_with_sorted_lists() -> None:
    calls: list[tuple[Any, ...]] = []

    def part(key: bytes | None, all_p: Any, avail: Any) -> int:
        calls.append((key, list(all_p), list(avail)))
        return 2

    core, client = make(partitioner=part)
    send(core, 1, key=b"a", partition=None)
    assert calls == [(b"a", [0, 1, 2], [0, 1, 2])]
    core.data_to_send()
    assert list(produce_requests(client)[0].batches()) == [("t", 2)]


def test_sticky_partitioner_sticks_until_batch_closes() -> None:
    core, client = make(partitioner=StickyPartitioner(random.Random(3)), batch_size=300, linger_ms=1000)
    for i in range(12):
        send(core, i, key=None, partition=None, value=b"%02d" % i + b"x" * 48)
    core.flush(0.0)
    core.data_to_send()
    batches = [(p, b) for r in produce_requests(client) for (_t, p), b in r.batches().items()]
    # a record is 58 bytes: 4 fit in 300 with the 61-byte header; full batches, partition switched each time
    assert [b.record_count for _p, b in batches] == [4, 4, 4]
    by_creation = sorted(batches, key=lambda pb: pb[1].records()[0].value or b"")
    assert [b.records()[0].value[:2] for _p, b in by_creation] == [b"00", b"04", b"08"]  # type: ignore[index]
    parts = [p for p, _b in by_creation]
    assert parts[0] != parts[1] and parts[1] != parts[2]


def test_explicit_partition_not_in_topic_fails_that_record() -> None:
    core, _client = make()
    assert send(core, "bad", partition=9)
    (ev,) = outcomes(core)
    assert isinstance(ev, DeliveryFailed) and ev.partition == 9 and ev.tokens == ["bad"]
    assert isinstance(ev.error, IllegalArgumentError)
    assert core.pending_count() == 0


# --- metadata waits ------------------------------------------------------------------


def test_unknown_topic_waits_for_metadata_then_sends() -> None:
    core, client = make()
    send(core, 1, topic="new", partition=None, key=b"a")
    send(core, 2, topic="new", partition=None, key=b"a")
    assert "new" in client.topics and client.metadata_requests >= 1
    assert core.pending_count() == 2
    core.data_to_send()
    assert produce_requests(client) == []
    client.cluster.set_topic("new", {0: 2})
    core.receive_data(1, b"", 0.5)
    core.data_to_send()
    (req,) = produce_requests(client)
    assert [r.value for r in req.batches()[("new", 0)].records()] == [b"v", b"v"]


def test_unknown_topic_fails_after_max_block_ms() -> None:
    core, _client = make(max_block_ms=2000)
    send(core, 1, topic="never", now=1.0)
    assert core.get_timer() == pytest.approx(3.0)
    core.handle_timer(2.9)
    assert outcomes(core) == []
    core.handle_timer(3.0)
    (ev,) = outcomes(core)
    assert isinstance(ev, DeliveryFailed) and isinstance(ev.error, KafkaTimeoutError)
    assert ev.partition == -1 and ev.tokens == [1]
    assert core.pending_count() == 0 and core.buffer_available() == 33554432


# --- errors, retries, timeouts ---------------------------------------------------------


def test_retriable_error_retried_after_backoff_then_delivered() -> None:
    core, client = make(retries=2, retry_backoff_ms=100)
    send(core, 1)
    core.data_to_send()
    first = produce_requests(client)[0]
    client.answer(first, produce_response(first, code=NotLeaderForPartitionError.errno))
    md = client.metadata_requests
    core.receive_data(1, b"", 1.0)
    assert client.metadata_requests > md  # NOT_LEADER refreshes metadata
    (retried,) = core.events()  # no outcome yet: the retry is reported, with its error
    assert isinstance(retried, BatchRetried) and isinstance(retried.error, NotLeaderForPartitionError)
    assert (retried.topic, retried.partition, retried.records, retried.attempt) == ("t", 0, 1, 1)
    core.data_to_send()
    assert len(produce_requests(client)) == 1  # still backing off
    assert core.get_timer() == pytest.approx(1.1)
    core.handle_timer(1.1)
    second = produce_requests(client)[1]
    assert bytes(second.request.topic_data[0].partition_data[0].records) == bytes(
        first.request.topic_data[0].partition_data[0].records
    )
    client.answer(second, produce_response(second, base=7))
    core.receive_data(1, b"", 1.2)
    (ev,) = outcomes(core)
    assert isinstance(ev, RecordsDelivered) and ev.base_offset == 7
    assert core.metrics(1.2)["producer-metrics"]["record-retry-total"] == 1


def test_retries_exhausted_fails_with_broker_error() -> None:
    core, client = make(retries=0)
    send(core, 1)
    core.data_to_send()
    req = produce_requests(client)[0]
    client.answer(req, produce_response(req, code=NotLeaderForPartitionError.errno))
    core.receive_data(1, b"", 0.1)
    (ev,) = outcomes(core)
    assert isinstance(ev, DeliveryFailed) and isinstance(ev.error, NotLeaderForPartitionError)
    assert ev.partition == 0


def test_non_retriable_error_fails_batch_others_delivered() -> None:
    core, client = make(retries=5)
    send(core, "a", partition=0)
    send(core, "b", partition=2)
    core.data_to_send()
    (req,) = produce_requests(client)
    client.answer(req, produce_response(req, t_0=MessageSizeTooLargeError.errno))
    core.receive_data(1, b"", 0.1)
    evs = outcomes(core)
    failed = [e for e in evs if isinstance(e, DeliveryFailed)]
    ok = [e for e in evs if isinstance(e, RecordsDelivered)]
    assert [e.tokens for e in failed] == [["a"]] and isinstance(failed[0].error, MessageSizeTooLargeError)
    assert [e.tokens for e in ok] == [["b"]]


def test_connection_error_retried() -> None:
    core, client = make(retries=1, retry_backoff_ms=0)
    send(core, 1)
    core.data_to_send()
    req = produce_requests(client)[0]
    client.answer(req, None, KafkaConnectionError("lost"))
    core.connection_lost(1, None, 0.5)
    core.data_to_send()
    assert len(produce_requests(client)) == 2


def test_delivery_timeout_expires_queued_and_in_flight_batches() -> None:
    core, client = make(delivery_timeout_ms=40000, request_timeout_ms=30000)
    client.ready = set()
    send(core, "queued", now=0.0)
    core.data_to_send()
    assert core.get_timer() == pytest.approx(40.0)
    core.handle_timer(40.0)
    (ev,) = outcomes(core)
    assert (
        isinstance(ev, DeliveryFailed) and isinstance(ev.error, KafkaTimeoutError) and ev.tokens == ["queued"]
    )
    client.ready = {1, 2}
    send(core, "wire", now=50.0)
    core.data_to_send()
    (req,) = produce_requests(client)
    core.handle_timer(90.0)  # the broker never answers
    (ev,) = outcomes(core)
    assert isinstance(ev.error, KafkaTimeoutError) and ev.tokens == ["wire"]
    client.answer(req, produce_response(req))  # a late answer changes nothing
    core.receive_data(1, b"", 91.0)
    assert outcomes(core) == [] and core.pending_count() == 0


# --- buffer memory and bad input --------------------------------------------------------


def test_buffer_full_returns_false_and_changes_nothing() -> None:
    core, client = make(buffer_memory=1000, linger_ms=1000)
    accepted = 0
    while send(core, accepted, value=b"x" * 100):
        accepted += 1
    assert 0 < accepted < 10
    pending, avail = core.pending_count(), core.buffer_available()
    assert not send(core, "late", value=b"x" * 100)
    assert (core.pending_count(), core.buffer_available()) == (pending, avail)
    core.data_to_send()  # a full buffer makes everything sendable
    req = produce_requests(client)[0]
    client.answer(req, produce_response(req))
    core.receive_data(1, b"", 0.1)
    assert core.buffer_available() == 1000
    assert send(core, "late", value=b"x" * 100)


def test_record_too_large_raises_and_buffers_nothing() -> None:
    core, _client = make(max_request_size=500)
    with pytest.raises(RecordTooLargeError):
        send(core, 1, value=b"x" * 500)
    assert core.pending_count() == 0 and core.buffer_available() == 33554432


@pytest.mark.parametrize("topic", ["", ".", "..", "a" * 250, "bad topic", "é"])
def test_invalid_topic_names(topic: str) -> None:
    core, _client = make()
    with pytest.raises(ValueError):
        send(core, 1, topic=topic)


def test_bad_values() -> None:
    core, _client = make()
    with pytest.raises(ValueError):
        send(core, 1, key=None, value=None)
    with pytest.raises(TypeError):
        send(core, 1, value="text")
    with pytest.raises(TypeError):
        send(core, 1, key=123)
    with pytest.raises(ValueError):
        send(core, 1, partition=-1)
    assert core.pending_count() == 0
    assert send(core, 1, key=b"k", value=None)  # a tombstone
    assert send(core, 2, value=bytearray(b"copy me"))


def test_close_rejects_sends_and_keeps_delivering() -> None:
    core, client = make(linger_ms=10_000)
    send(core, 1)
    core.close(0.0)
    core.close(0.0)
    with pytest.raises(IllegalStateError):
        send(core, 2)
    core.data_to_send()
    req = produce_requests(client)[0]
    client.answer(req, produce_response(req))
    core.receive_data(1, b"", 0.1)
    assert [type(e) for e in outcomes(core)] == [RecordsDelivered]


def test_abort_fails_everything() -> None:
    core, client = make(linger_ms=10_000)
    send(core, 1)
    send(core, 2, topic="unknown")
    send(core, 3, partition=2)
    core.flush(0.0)
    core.data_to_send()
    err = KafkaTimeoutError("close timed out")
    core.abort(1.0, err)
    evs = outcomes(core)
    assert sorted(t for e in evs for t in e.tokens) == [1, 2, 3]
    assert all(isinstance(e, DeliveryFailed) and e.error is err for e in evs)
    assert core.pending_count() == 0 and client.closed
    core.handle_timer(2.0)
    assert core.data_to_send() == []


def test_metrics_shape() -> None:
    core, client = make()
    send(core, 1)
    core.data_to_send()
    req = produce_requests(client)[0]
    client.answer(req, produce_response(req))
    core.receive_data(1, b"", 0.25)
    m = core.metrics(1.0)["producer-metrics"]
    for name in (
        "record-send-rate",
        "byte-rate",
        "batch-size-avg",
        "request-latency-avg",
        "request-latency-max",
        "record-error-rate",
        "record-error-total",
        "buffer-available-bytes",
        "requests-in-flight",
    ):
        assert name in m
    assert m["record-send-total"] == 1 and m["request-latency-max"] == pytest.approx(250)
    assert m["requests-in-flight"] == 0


# --- idempotence (KIP-98 / KIP-360) ----------------------------------------------------------


def idem() -> tuple[ProducerCore, ScriptedClient]:
    core, client = make(enable_idempotence=True, retry_backoff_ms=0)
    core.data_to_send()
    (init,) = client.sent
    assert isinstance(init.request, InitProducerIdRequest)
    assert init.request.transactional_id is None and init.request.producer_id == -1
    client.answer(init, InitProducerIdResponse(producer_id=77, producer_epoch=0))
    core.receive_data(1, b"", 0.0)
    client.sent.clear()
    return core, client


def test_idempotent_sequences_per_partition() -> None:
    core, client = idem()
    for i in range(3):
        send(core, i, partition=0)
        send(core, f"p2-{i}", partition=2)
        core.data_to_send()
    reqs = produce_requests(client)
    seqs = [
        (tp, b.base_sequence, b.producer_id, b.producer_epoch) for r in reqs for tp, b in r.batches().items()
    ]
    assert seqs == [
        (("t", 0), 0, 77, 0), (("t", 2), 0, 77, 0),
        (("t", 0), 1, 77, 0), (("t", 2), 1, 77, 0),
        (("t", 0), 2, 77, 0), (("t", 2), 2, 77, 0),
    ]  # fmt: skip
    assert all(r.request.acks == -1 for r in reqs)


def test_idempotent_retry_keeps_sequence_and_order() -> None:
    core, client = idem()
    send(core, "a")
    core.data_to_send()
    send(core, "b")
    core.data_to_send()
    r1, r2 = produce_requests(client)
    client.answer(r1, None, KafkaConnectionError("lost"))
    client.answer(r2, None, KafkaConnectionError("lost"))
    core.connection_lost(1, None, 0.1)
    core.data_to_send()
    resent = produce_requests(client)[2:]
    assert [b.base_sequence for r in resent for b in r.batches().values()] == [0, 1]
    for r in resent:
        client.answer(r, produce_response(r))
    core.receive_data(1, b"", 0.2)
    assert [e.tokens for e in outcomes(core)] == [["a"], ["b"]]


def test_unknown_producer_id_bumps_epoch_and_resequences() -> None:
    core, client = idem()
    send(core, "a")
    core.data_to_send()
    (r1,) = produce_requests(client)
    client.answer(r1, produce_response(r1, code=59))
    core.receive_data(1, b"", 0.1)
    core.data_to_send()
    bump = client.sent[-1]
    assert isinstance(bump.request, InitProducerIdRequest)
    assert (bump.request.producer_id, bump.request.producer_epoch) == (77, 0)  # KIP-360
    client.answer(bump, InitProducerIdResponse(producer_id=77, producer_epoch=1))
    core.receive_data(1, b"", 0.2)
    core.data_to_send()
    r2 = produce_requests(client)[-1]
    b = r2.batches()[("t", 0)]
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == (77, 1, 0)
    client.answer(r2, produce_response(r2))
    core.receive_data(1, b"", 0.3)
    assert [e.tokens for e in outcomes(core)] == [["a"]]


def test_old_broker_gets_new_producer_id_on_reset() -> None:
    core, client = idem()
    client.init_pid_version = 2
    send(core, "a")
    core.data_to_send()
    (r1,) = produce_requests(client)
    client.answer(r1, produce_response(r1, code=45))  # OUT_OF_ORDER for the next expected batch
    core.receive_data(1, b"", 0.1)
    core.data_to_send()
    reset = client.sent[-1]
    assert isinstance(reset.request, InitProducerIdRequest) and reset.request.producer_id == -1


def test_rejected_batch_shifts_later_sequences() -> None:
    core, client = idem()
    send(core, "a1", value=b"1")
    send(core, "a2", value=b"2")
    core.data_to_send()
    send(core, "b")
    core.data_to_send()
    r1, r2 = produce_requests(client)
    assert r2.batches()[("t", 0)].base_sequence == 2
    client.answer(r1, produce_response(r1, code=87))  # INVALID_RECORD: rejected, not written
    client.answer(r2, produce_response(r2, code=45))  # the broker saw a gap
    core.receive_data(1, b"", 0.1)
    core.data_to_send()
    r3 = produce_requests(client)[-1]
    assert r3.batches()[("t", 0)].base_sequence == 0  # shifted down by the 2 rejected records
    assert not any(isinstance(s.request, InitProducerIdRequest) for s in client.sent[2:])
    client.answer(r3, produce_response(r3))
    core.receive_data(1, b"", 0.2)
    evs = outcomes(core)
    assert [(type(e).__name__, list(e.tokens)) for e in evs] == [
        ("DeliveryFailed", ["a1", "a2"]),
        ("RecordsDelivered", ["b"]),
    ]


def test_message_too_large_splits_batch_and_retries_halves() -> None:
    core, client = make(retries=0)
    for i in range(5):
        send(core, i, value=b"%d" % i, headers=[("h", b"x")] if i == 3 else None)
    core.data_to_send()
    (r1,) = produce_requests(client)
    client.answer(r1, produce_response(r1, code=MessageSizeTooLargeError.errno))
    core.receive_data(1, b"", 0.1)
    assert outcomes(core) == []
    core.data_to_send()
    halves = produce_requests(client)[1:]
    recs = [[(r.value, r.headers) for r in h.batches()[("t", 0)].records()] for h in halves]
    assert recs == [[(b"0", ()), (b"1", ())], [(b"2", ()), (b"3", (("h", b"x"),)), (b"4", ())]]
    for h, base in zip(halves, (10, 12), strict=True):
        client.answer(h, produce_response(h, base=base))
    core.receive_data(1, b"", 0.2)
    assert [(e.base_offset, e.tokens) for e in outcomes(core)] == [(10, [0, 1]), (12, [2, 3, 4])]  # type: ignore[union-attr]
    assert core.pending_count() == 0 and core.buffer_available() == 33554432


def test_message_too_large_split_keeps_idempotent_sequences() -> None:
    core, client = idem()
    for i in range(4):
        send(core, i)
    core.data_to_send()
    (r1,) = produce_requests(client)
    client.answer(r1, produce_response(r1, code=MessageSizeTooLargeError.errno))
    core.receive_data(1, b"", 0.1)
    core.data_to_send()
    seqs = [
        (b.base_sequence, b.record_count) for r in produce_requests(client)[1:] for b in r.batches().values()
    ]
    assert seqs == [(0, 2), (2, 2)]


# big fields cross the 16384 end of the precomputed varint table
_big = st.builds(lambda n, c: bytes([c]) * n, st.integers(16380, 16400), st.integers(0, 255))
_field = st.one_of(st.none(), st.binary(max_size=40), _big)
_headers = st.one_of(
    st.none(),
    st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=10))), max_size=3),
)
_record = st.tuples(_field, _field, _headers, st.integers(-(2**40), 2**41))


@given(records=st.lists(_record, min_size=1, max_size=30), codec=st.sampled_from([None, "gzip", "lz4"]))
def test_records_round_trip_through_the_wire_format(records: list[Any], codec: str | None) -> None:
    """Whatever goes into send() comes out of the batch reader unchanged, in order."""
    core, client = make(compression_type=codec, batch_size=1 << 20, linger_ms=1000)
    expected = []
    for i, (key, value, headers, ts) in enumerate(records):
        if key is None and value is None:
            key = b""
        send(core, i, key=key, value=value, headers=headers, timestamp_ms=ts)
        expected.append((key, value, tuple(headers or ()), ts))
    core.flush(0.0)
    core.data_to_send()
    got = [
        (r.key, r.value, r.headers, r.timestamp)
        for req in produce_requests(client)
        for b in req.batches().values()
        for r in b.records()
    ]
    assert got == expected


def test_init_producer_id_retriable_error_retried_after_backoff() -> None:
    core, client = make(enable_idempotence=True, retry_backoff_ms=200)
    core.data_to_send()
    (init,) = client.sent
    client.answer(init, InitProducerIdResponse(error_code=14))  # COORDINATOR_LOAD_IN_PROGRESS
    core.receive_data(1, b"", 1.0)
    send(core, "a", now=1.0)
    core.data_to_send()
    assert len(client.sent) == 1  # backing off; nothing sequenced without a producer id
    assert core.get_timer() == pytest.approx(1.2)
    core.handle_timer(1.2)
    again = client.sent[-1]
    assert isinstance(again.request, InitProducerIdRequest)
    client.answer(again, InitProducerIdResponse(producer_id=5, producer_epoch=3))
    core.receive_data(1, b"", 1.3)
    core.data_to_send()
    (req,) = produce_requests(client)
    b = req.batches()[("t", 0)]
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == (5, 3, 0)


def test_init_producer_id_fatal_error_fails_records() -> None:
    core, client = make(enable_idempotence=True)
    send(core, "a")
    core.data_to_send()
    (init,) = client.sent
    client.answer(init, InitProducerIdResponse(error_code=31))  # CLUSTER_AUTHORIZATION_FAILED
    core.receive_data(1, b"", 0.1)
    core.data_to_send()
    (ev,) = outcomes(core)
    assert isinstance(ev, DeliveryFailed) and ev.tokens == ["a"]
    assert type(ev.error).__name__ == "ClusterAuthorizationFailedError"
    assert produce_requests(client) == []


def test_batch_sealed_but_left_for_next_request_takes_no_more_records() -> None:
    core, client = make(max_request_size=1000, max_in_flight_requests_per_connection=1)
    send(core, "p0", partition=0, value=b"z" * 600)
    send(core, "p2", partition=2, value=b"z" * 600)
    core.data_to_send()  # one request: p0's batch; p2's is sealed and waits (too big to share)
    send(core, "p2-late", partition=2, value=b"late")
    first = produce_requests(client)[0]
    client.answer(first, produce_response(first))
    core.receive_data(1, b"", 0.1)
    core.data_to_send()
    second = produce_requests(client)[1]
    client.answer(second, produce_response(second))
    core.receive_data(1, b"", 0.2)
    core.data_to_send()
    third = produce_requests(client)[2]
    assert [r.value for r in third.batches()[("t", 2)].records()] == [b"late"]
    client.answer(third, produce_response(third))
    core.receive_data(1, b"", 0.3)
    assert sorted(t for e in outcomes(core) for t in e.tokens) == ["p0", "p2", "p2-late"]  # type: ignore[type-var]


def test_bad_timestamp_rejected_without_buffering() -> None:
    core, client = make()
    for ts in (None, 1.5, "now"):
        with pytest.raises(TypeError):
            send(core, "x", timestamp_ms=ts)
        assert core.pending_count() == 0
    send(core, "ok")
    with pytest.raises(TypeError):
        send(core, "y", timestamp_ms=None)  # the partition has an open batch now
    with pytest.raises(TypeError):
        send(core, "z", timestamp_ms=2.5)
    assert core.pending_count() == 1
    core.data_to_send()
    assert [r.value for r in produce_requests(client)[0].batches()[("t", 0)].records()] == [b"v"]


# --- one record encoder; partition choice; pending counts ----------------------------------


def test_batches_are_byte_identical_to_record_batch_builder_output() -> None:
    # the core and RecordBatchBuilder share one encoder (kproto.protocol.records.RecordsBuffer),
    # slow varint paths included: big fields, timestamps going back or 16+ s on
    core, client = make(linger_ms=1000, batch_size=1 << 20, max_request_size=1 << 21)
    Headers = list[tuple[str, bytes | None]]
    records: list[tuple[int, bytes | None, bytes | None, Headers]] = [
        (1_700_000_000_000, None, b"v", []),
        (1_700_000_000_005, b"k", None, [("h", b"1"), ("n", None)]),
        (1_699_999_999_000, b"", b"x" * 20_000, []),
        (1_700_000_100_000, b"k" * 70_000, b"", [("big", b"y" * 9000)]),
    ]
    records += [(1_700_000_000_000 + i, b"%d" % i, b"v" * (i % 20), []) for i in range(17_000)]
    for i, (ts, key, value, headers) in enumerate(records):
        assert send(core, i, key=key, value=value, headers=headers, timestamp_ms=ts)
    builder = RecordBatchBuilder()
    for ts, key, value, headers in records:
        builder.append(ts, key, value, headers)
    core.flush(0.0)
    core.data_to_send()
    (req,) = produce_requests(client)
    (pd,) = req.request.topic_data[0].partition_data
    assert bytes(pd.records) == builder.seal()


def test_none_keys_spread_evenly_over_available_partitions() -> None:
    # 3 (and 4) partitions: the pick table has 1024 entries, 1 (0) of them empty (drawn again)
    for leaders in ({0: 1, 1: 2, 2: 1}, {0: 1, 1: -1, 2: 2, 3: 1, 4: 2}):
        core, client = make(linger_ms=1000)
        client.cluster.set_topic("t", leaders)
        core.handle_timer(0.0)
        for i in range(3000):
            send(core, i, key=None, partition=None)
        core.flush(0.0)
        core.data_to_send()
        seen: dict[int, int] = {}
        for r in produce_requests(client):
            for (_t, p), batch in r.batches().items():
                seen[p] = seen.get(p, 0) + batch.record_count
        available = [p for p, leader in leaders.items() if leader >= 0]
        assert sorted(seen) == available
        assert all(abs(n - 3000 / len(available)) < 150 for n in seen.values()), seen


def test_none_key_choice_is_replayed_by_a_seeded_rng() -> None:
    def partitions() -> list[int]:
        core, client = make(linger_ms=1000)
        for i in range(50):
            send(core, i, key=None, partition=None, timestamp_ms=1000 + i)
        core.flush(0.0)
        core.data_to_send()
        by_ts = {
            r.timestamp: p
            for s in produce_requests(client)
            for (_t, p), batch in s.batches().items()
            for r in batch.records()
        }
        return [by_ts[1000 + i] for i in range(50)]

    assert partitions() == partitions()


def test_record_size_limit_is_exact() -> None:
    # max_request_size 500: a record's bound may be 500 - 61 = 439 bytes: with a null key and
    # no headers, 21 (framing at most) + 1 (null key) + 2 + len(value) + 1 (no headers)
    core, client = make(max_request_size=500)
    assert send(core, "fits", key=None, value=b"x" * 414)
    with pytest.raises(RecordTooLargeError):
        send(core, "too big", key=None, value=b"x" * 415)
    core.data_to_send()
    assert [r.value for r in produce_requests(client)[0].batches()[("t", 0)].records()] == [b"x" * 414]


def test_pending_count_covers_open_closed_in_flight_and_failed_batches() -> None:
    core, client = make(linger_ms=1000, batch_size=200)
    for i in range(5):
        send(core, i, partition=i % 2, value=b"x" * 40)  # partition 0: 3 records, 1: 2
    assert core.pending_count() == 5
    assert core.metrics(0.0)["producer-metrics"]["records-pending"] == 5.0
    send(core, "big", partition=0, value=b"x" * 150)  # closes partition 0's batch, opens another
    assert core.pending_count() == 6
    core.flush(0.0)
    core.data_to_send()
    assert core.pending_count() == 6
    send(core, "open", partition=1)
    assert core.pending_count() == 7
    core.abort(0.1, KafkaTimeoutError("stop"))
    assert core.pending_count() == 0
    failed = sorted(str(t) for e in outcomes(core) if isinstance(e, DeliveryFailed) for t in e.tokens)
    assert failed == sorted(["0", "1", "2", "3", "4", "big", "open"])
    assert core.buffer_available() == 33554432


def test_remembered_key_partition_follows_a_new_partition_count() -> None:
    core, client = make(linger_ms=1000)
    key = b"some-key"
    h = murmur2(key) & 0x7FFFFFFF
    send(core, "before", key=key, value=b"before", partition=None)
    client.cluster.set_topic("t", {p: 1 + p % 2 for p in range(7)})
    core.handle_timer(0.0)
    send(core, "after", key=key, value=b"after", partition=None)
    core.flush(0.0)
    core.data_to_send()
    where = {
        r.value: p
        for s in produce_requests(client)
        for (_t, p), batch in s.batches().items()
        for r in batch.records()
    }
    assert where == {b"before": h % 3, b"after": h % 7}

"""KafkaConsumer on each transport (sync, asyncio, trio) against a real Tansu broker.

Each test runs one scenario on the three facades through a thin adapter whose
methods are all ``async`` (the sync facade's calls simply block inside the
scenario). Test data is written by kafka-python's ``KafkaProducer``, an
independent client, one record per request so every record is its own batch
(Tansu answers ListOffsets(latest) with the last batch's base offset + 1,
which is only the log end when batches hold one record).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import _adapters as adapters
import pytest
import trio
from _kafka import BROKERS, KafkaCluster, ready_topic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from kproto.consumer import ConsumerRecord, OffsetAndMetadata, RecordDeserializationError, TopicPartition
from kproto.errors import IllegalStateError, KafkaConfigurationError, NoOffsetForPartitionError

TRANSPORTS = ["sync", "asyncio", "trio"]
N = 20  # records per produced partition
BASE_TS = 1_700_000_000_000


class Consumer(adapters.Consumer):
    """The shared adapter plus what these tests need."""

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.c, name)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def poll_all(self, want: int, timeout: float = 20.0) -> list[ConsumerRecord]:
        """Poll until ``want`` records came (or fail after ``timeout`` seconds)."""
        out: list[ConsumerRecord] = []
        for _ in range(int(timeout * 10)):
            got = await self.call("poll", timeout_ms=100)
            for tp, recs in got.items():
                assert all((r.topic, r.partition) == tp for r in recs)
                out.extend(recs)
            if len(out) >= want:
                return out
        raise AssertionError(f"got {len(out)} records, wanted {want}")

    async def iterate(self) -> list[ConsumerRecord]:
        out = []
        if self.transport == "sync":
            for rec in self.c:
                out.append(rec)
        else:
            async for rec in self.c:
                out.append(rec)
        return out


def open_consumer(transport: str, *topics: str, **configs: Any) -> AbstractAsyncContextManager[Consumer]:
    return adapters.open_consumer(transport, *topics, adapter=Consumer, **configs)  # type: ignore[return-value]


def run(transport: str, scenario: Callable[..., Awaitable[None]], *args: Any) -> None:
    if transport == "trio":
        trio.run(functools.partial(scenario, transport, *args))
    else:
        asyncio.run(scenario(transport, *args))  # type: ignore[arg-type]


def produce(bootstrap: str, topic: str, partitions: tuple[int, ...] = (0, 1)) -> None:
    """``N`` records per partition: key k<i>, value p<partition>-<i>, a header, timestamp BASE_TS + i."""
    p = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for part in partitions:
            for i in range(N):
                p.send(
                    topic,
                    key=b"k%d" % i,
                    value=b"p%d-%d" % (part, i),
                    partition=part,
                    headers=[("h", b"%d" % i)],
                    timestamp_ms=BASE_TS + i,
                ).get(timeout=30)
    finally:
        p.close()


def peer_offset_for_time(bootstrap: str, tp: TopicPartition, ts: int) -> int:
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return int(c.offsets_for_times({KTopicPartition(*tp): ts})[KTopicPartition(*tp)].offset)
    finally:
        c.close()


def peer_committed(bootstrap: str, group: str, tp: TopicPartition) -> Any:
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return c.committed(KTopicPartition(*tp), metadata=True)
    finally:
        c.close()


@pytest.fixture
def data(bootstrap: str, topic: str) -> tuple[str, str]:
    produce(bootstrap, topic)
    return bootstrap, topic


# --- scenarios -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_assign_poll_and_positions(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

    async def scenario(transport: str) -> None:
        async with open_consumer(transport, bootstrap_servers=bootstrap) as c:
            await c.call("assign", tps)
            assert await c.call("assignment") == set(tps)
            await c.call("seek_to_beginning")
            recs = await c.poll_all(2 * N)
            assert len(recs) == 2 * N
            for part in (0, 1):
                mine = [r for r in recs if r.partition == part]
                assert [r.offset for r in mine] == list(range(N))
                assert [r.value for r in mine] == [b"p%d-%d" % (part, i) for i in range(N)]
                assert [r.key for r in mine] == [b"k%d" % i for i in range(N)]
                assert [r.timestamp for r in mine] == [BASE_TS + i for i in range(N)]
                assert all(r.timestamp_type == 0 for r in mine)
                assert [r.headers for r in mine] == [(("h", b"%d" % i),) for i in range(N)]
                r = mine[12]
                assert (r.serialized_key_size, r.serialized_value_size, r.serialized_header_size) == (3, 5, 3)
            for tp in tps:
                assert await c.call("position", tp) == N
                assert await c.call("highwater", tp) == N
            assert await c.call("poll", timeout_ms=200) == {}

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_offset_queries(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def scenario(transport: str) -> None:
        async with open_consumer(transport, bootstrap_servers=bootstrap) as c:
            assert await c.call("beginning_offsets", [tp0, tp1]) == {tp0: 0, tp1: 0}
            assert await c.call("end_offsets", [tp0, tp1]) == {tp0: N, tp1: N}
            found = await c.call("offsets_for_times", {tp0: BASE_TS + 5})
            # Tansu does not search by timestamp (it answers offset 0 stamped with its clock), so the
            # check is that kproto reads the same answer as kafka-python does from this broker.
            assert found[tp0].offset == peer_offset_for_time(bootstrap, tp0, BASE_TS + 5)
            with pytest.raises(ValueError):
                await c.call("offsets_for_times", {tp0: -7})

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_seek_pause_resume(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def scenario(transport: str) -> None:
        async with open_consumer(transport, bootstrap_servers=bootstrap) as c:
            await c.call("assign", [tp0, tp1])
            await c.call("seek", tp0, 15)
            await c.call("seek", tp1, 0)
            await c.call("pause", tp1)
            assert await c.call("paused") == {tp1}
            recs = await c.poll_all(N - 15)
            assert [(r.partition, r.offset) for r in recs] == [(0, o) for o in range(15, N)]
            assert await c.call("poll", timeout_ms=300) == {}
            assert await c.call("position", tp1) == 0
            await c.call("resume", tp1)
            assert await c.call("paused") == set()
            recs = await c.poll_all(N)
            assert [(r.partition, r.offset) for r in recs] == [(1, o) for o in range(N)]
            await c.call("seek_to_end", tp0)
            assert await c.call("position", tp0) == N
            await c.call("seek", tp0, N - 1)
            (last,) = await c.poll_all(1)
            assert (last.partition, last.offset) == (0, N - 1)
            with pytest.raises(ValueError):
                await c.call("seek", tp0, -1)
            with pytest.raises(IllegalStateError):
                await c.call("seek", TopicPartition(topic, 3), 0)

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_commit_and_committed_with_a_group(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    group = f"g-{uuid.uuid4().hex[:8]}"

    async def scenario(transport: str) -> None:
        async with open_consumer(
            transport,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        ) as c:
            assert await c.call("committed", tp0) is None
            await c.call("assign", [tp0, tp1])
            recs = await c.poll_all(2 * N)  # no commits: both start from 'earliest'
            assert len(recs) == 2 * N
            await c.call("commit", {tp0: OffsetAndMetadata(7, "meta", -1)})
            assert await c.call("committed", tp0) == 7
            om = await c.call("committed", tp0, metadata=True)
            # Tansu does not keep commit metadata; kafka-python reads back what kproto wrote.
            peer = peer_committed(bootstrap, group, tp0)
            assert (om.offset, om.metadata) == (peer.offset, peer.metadata or "") and om.offset == 7
            await c.call("commit")  # the positions
            assert await c.call("committed", tp0) == N
            assert await c.call("committed", tp1) == N
            done: list[Any] = []
            p = c.c.commit_async({tp1: 11}, callback=lambda offsets, exc: done.append((offsets, exc)))
            for _ in range(100):
                if p.done and done:
                    break
                await c.call("poll", timeout_ms=50)
            assert done == [({tp1: OffsetAndMetadata(11, "", -1)}, None)]
            assert await c.call("committed", tp1) == 11
        # A new consumer of the group starts at the committed offsets.
        async with open_consumer(
            transport, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="latest"
        ) as c:
            await c.call("assign", [tp1])
            assert await c.call("position", tp1) == 11
            recs = await c.poll_all(N - 11)
            assert [r.offset for r in recs] == list(range(11, N))
            # close() with auto-commit on commits the positions.
        async with open_consumer(transport, bootstrap_servers=bootstrap, group_id=group) as c:
            assert await c.call("committed", tp1) == N

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_commit_events_do_not_pile_up(transport: str, data: tuple[str, str]) -> None:
    """The driver drains the core's events (one CommitCompleted per commit) on every turn."""
    bootstrap, topic = data
    tp0 = TopicPartition(topic, 0)
    backlog: list[int] = []

    async def scenario(transport: str) -> None:
        async with open_consumer(
            transport, bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False, auto_offset_reset="earliest",
        ) as c:  # fmt: skip
            await c.call("assign", [tp0])
            for i in range(30):
                await c.call("commit", {tp0: OffsetAndMetadata(i, "", -1)})
                await c.call("poll", timeout_ms=10)
                backlog.append(len(c.c._core._ctx.events))
            assert await c.call("committed", tp0) == 29

    run(transport, scenario)
    assert len(backlog) == 30 and max(backlog) <= 1, backlog


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_deserializers_and_a_failing_one(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data
    tp0 = TopicPartition(topic, 0)

    def value_deserializer(v: bytes) -> str:
        s = v.decode()
        if s == "p0-5":
            raise ValueError("cannot read this one")
        return s.upper()

    async def scenario(transport: str) -> None:
        async with open_consumer(
            transport,
            bootstrap_servers=bootstrap,
            key_deserializer=bytes.decode,
            value_deserializer=value_deserializer,
        ) as c:
            await c.call("assign", [tp0])
            await c.call("seek", tp0, 0)
            got: list[ConsumerRecord] = []
            with pytest.raises(RecordDeserializationError) as info:
                for _ in range(200):
                    for recs in (await c.call("poll", timeout_ms=100)).values():
                        got.extend(recs)
            assert [r.value for r in got] == [f"P0-{i}" for i in range(5)]
            assert [r.key for r in got] == [f"k{i}" for i in range(5)]
            msg = str(info.value)
            assert topic in msg and "partition 0" in msg and "offset 5" in msg
            assert await c.call("position", tp0) == 5
            with pytest.raises(RecordDeserializationError):
                await c.call("poll", timeout_ms=100)  # not skipped silently
            await c.call("seek", tp0, 6)
            recs = await c.poll_all(N - 6)
            assert [r.value for r in recs] == [f"P0-{i}" for i in range(6, N)]

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cluster_queries_and_metrics(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data

    async def scenario(transport: str) -> None:
        async with open_consumer(transport, bootstrap_servers=bootstrap) as c:
            assert topic in await c.call("topics")
            assert await c.call("partitions_for_topic", topic) == {0, 1, 2, 3}
            assert await c.call("partitions_for_topic", "no-such-topic-" + uuid.uuid4().hex) is None
            assert await c.call("bootstrap_connected") is True
            await c.call("assign", [TopicPartition(topic, 0)])
            await c.call("seek_to_beginning")
            await c.poll_all(N)
            m = await c.call("metrics")
            assert m["consumer-metrics"]["records-consumed-total"] == N

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subscribe_without_group_and_iteration(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data

    async def scenario(transport: str) -> None:
        async with open_consumer(
            transport,
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1500,
        ) as c:
            assert await c.call("subscription") == {topic}
            recs = await c.iterate()
            assert sorted((r.partition, r.offset) for r in recs) == [(p, o) for p in (0, 1) for o in range(N)]
            assert {tp.partition for tp in await c.call("assignment")} == {0, 1, 2, 3}
            with pytest.raises(IllegalStateError):
                await c.call("assign", [TopicPartition(topic, 0)])
            await c.call("unsubscribe")
            assert await c.call("subscription") is None
            await c.call("assign", [TopicPartition(topic, 0)])
            with pytest.raises(IllegalStateError):
                await c.call("subscribe", [topic])

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_misuse_and_missing_offsets(transport: str, data: tuple[str, str]) -> None:
    bootstrap, topic = data
    tp0 = TopicPartition(topic, 0)

    async def scenario(transport: str) -> None:
        with pytest.raises(TypeError, match="did you mean 'group_id'"):
            async with open_consumer(transport, bootstrap_servers=bootstrap, group_idd="x"):
                pass
        with pytest.raises(ValueError, match="isolation_level"):
            async with open_consumer(transport, bootstrap_servers=bootstrap, isolation_level="x"):
                pass
        async with open_consumer(transport, bootstrap_servers=bootstrap) as c:
            with pytest.raises(KafkaConfigurationError, match="group_id"):
                await c.call("commit")
            with pytest.raises(KafkaConfigurationError, match="group_id"):
                await c.call("committed", tp0)
        with pytest.raises(KafkaConfigurationError, match="sticky"):
            async with open_consumer(
                transport,
                topic,
                bootstrap_servers=bootstrap,
                group_id="g",
                partition_assignment_strategy=["no-such-assignor"],
            ):
                pass
        async with open_consumer(
            transport, bootstrap_servers=bootstrap, auto_offset_reset="none", group_id="g-" + uuid.uuid4().hex
        ) as c:
            await c.call("assign", [tp0])
            with pytest.raises(NoOffsetForPartitionError):
                await c.poll_all(1, timeout=5)
            await c.call("seek", tp0, 3)
            recs = await c.poll_all(N - 3)
            assert recs[0].offset == 3

    run(transport, scenario)


@pytest.mark.parametrize("side", BROKERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_broker_goes_away_and_comes_back(transport: str, side: str, request: pytest.FixtureRequest) -> None:
    """poll returns empty while the broker is down, and picks up where it was once it is back.

    Tansu: a broker of the test's own, started again on the same port with an
    empty log (it keeps data in memory). Kafka: the session's node, stopped
    and started again on its data, so the log goes on where it was.
    """
    from _broker import TansuBroker

    kafka: KafkaCluster | None = request.getfixturevalue("kafka") if side == "kafka" else None
    broker = TansuBroker()
    if kafka is None:
        broker.start()
    bootstrap = kafka.bootstrap if kafka is not None else broker.bootstrap
    topic = ready_topic(kafka, f"away-{uuid.uuid4().hex[:10]}")
    tp = TopicPartition(topic, 0)

    def fill(n: int) -> None:
        p = KafkaProducer(bootstrap_servers=bootstrap)
        try:
            for i in range(n):
                p.send(topic, value=b"%d" % i, partition=0)
            p.flush(30)
        finally:
            p.close()

    async def scenario(transport: str) -> None:
        nonlocal broker
        fill(10)
        async with open_consumer(
            transport,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            reconnect_backoff_max_ms=200,
        ) as c:
            await c.call("assign", [tp])
            assert [r.offset for r in await c.poll_all(10)] == list(range(10))
            if kafka is not None:
                kafka.stop_node(1)
            else:
                broker.stop()
            for _ in range(3):
                assert await c.call("poll", timeout_ms=300) == {}
            if kafka is not None:
                kafka.start_node(1)
                fill(5)  # the log kept offsets 0..9: these are 10..14
            else:
                # Same port, empty log: 15 new records, offsets 0..14.
                broker = TansuBroker(port=broker.port)
                broker.start()
                fill(15)
            recs = await c.poll_all(5, timeout=30)
            assert [r.offset for r in recs] == list(range(10, 15))
            assert await c.call("position", tp) == 15

    try:
        run(transport, scenario)
    finally:
        broker.stop()
        if kafka is not None:
            kafka.start_node(1)

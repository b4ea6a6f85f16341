"""The transactional producer on each transport (sync, asyncio, trio) against Tansu and Apache Kafka.

Records are read back with kproto's own consumer (``isolation_level``
``read_committed`` and ``read_uncommitted``), by ``assign``.

What Tansu 0.6 does, seen here (and with kafka-python's consumer too): it
keeps open transactions out of ``read_committed`` fetches (the last stable
offset), writes COMMIT/ABORT markers, commits offsets sent with
``send_offsets_to_transaction`` only on commit, and fences an older producer
of the same transactional id (PRODUCER_FENCED on its AddPartitionsToTxn; on
its EndTxn Tansu closes the connection instead of answering). It does *not* list aborted transactions in
Fetch responses, so a ``read_committed`` consumer cannot drop the records of
an aborted transaction: that filtering is proven against scripted fetch
responses in ``tests/unit/test_consumer_fetcher.py``, and here against Apache
Kafka, which does list them (``test_read_committed_drops_aborted_records_on_kafka``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, Producer, open_consumer, open_producer, run
from _kafka import KafkaCluster, ready_topic

from kproto.consumer.types import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition
from kproto.errors import IllegalStateError, InvalidGroupIdError, ProducerFencedError, TransactionAbortedError
from transports._consumer_sync import KafkaConsumer


async def call(p: Producer, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call a transactional method of the facade (awaited on the async ones)."""
    result = getattr(p.p, name)(*args, **kwargs)
    if p.transport != "sync":
        result = await result
    return result


def read_values(
    bootstrap: str, topic: str, isolation: str, want: int, partitions: tuple[int, ...] = (0,)
) -> list[bytes]:
    """The values of ``topic``'s partitions with a kproto consumer: until ``want`` came, plus a short grace."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        out: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(out) < want and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(r.value for r in records)
        grace = time.monotonic() + 1.0
        while time.monotonic() < grace:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(r.value for r in records)
        return out
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, tp: TopicPartition) -> Any:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(tp, timeout_ms=10000)
    finally:
        consumer.close()


def txn_id() -> str:
    return f"tx-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_commit_makes_records_visible_to_read_committed(transport: str, bootstrap: str, topic: str) -> None:
    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap, transactional_id=txn_id()) as p:
            with pytest.raises(IllegalStateError):
                await p.send(topic, b"before-init", partition=0)
            await call(p, "init_transactions")
            with pytest.raises(IllegalStateError):
                await p.send(topic, b"outside", partition=0)
            await call(p, "begin_transaction")
            handles = [await p.send(topic, b"c%d" % i, partition=0) for i in range(3)]
            await p.flush(10)
            # Written, but the transaction is open: invisible to read_committed.
            assert sorted(read_values(bootstrap, topic, "read_uncommitted", 3)) == [b"c0", b"c1", b"c2"]
            assert read_values(bootstrap, topic, "read_committed", 1) == []
            await call(p, "commit_transaction")
            offsets = [(await p.get(h)).offset for h in handles]
            assert offsets == sorted(offsets)
            assert read_values(bootstrap, topic, "read_committed", 3) == [b"c0", b"c1", b"c2"]
            # The next transaction works the same way (sequences go on, partitions added again).
            await call(p, "begin_transaction")
            await p.send(topic, b"c3", partition=0)
            await call(p, "commit_transaction")
            assert read_values(bootstrap, topic, "read_committed", 4) == [b"c0", b"c1", b"c2", b"c3"]

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_abort_drops_unsent_records_and_ends_the_transaction(
    transport: str, broker: Any, bootstrap: str, topic: str
) -> None:
    async def scenario() -> None:
        tid = txn_id()
        async with open_producer(transport, bootstrap_servers=bootstrap, transactional_id=tid) as p:
            await call(p, "init_transactions")
            await call(p, "begin_transaction")
            written = await p.send(topic, b"aborted-written", partition=0)
            await p.get(written)
            await call(p, "abort_transaction")
            await call(p, "begin_transaction")
            await p.send(topic, b"committed", partition=0)
            await call(p, "commit_transaction")
        # linger_ms keeps a record unsent: abort fails it, it never reaches the broker.
        async with open_producer(
            transport, bootstrap_servers=bootstrap, transactional_id=tid, linger_ms=60000
        ) as p:
            await call(p, "init_transactions")
            await call(p, "begin_transaction")
            unsent = await p.send(topic, b"never-sent", partition=0)
            await call(p, "abort_transaction")
            assert isinstance(await p.outcome(unsent), TransactionAbortedError)
        # The aborted record is in the log (read_uncommitted) ...
        assert read_values(bootstrap, topic, "read_uncommitted", 2) == [b"aborted-written", b"committed"]
        # ... and the abort ended its transaction: read_committed reaches past it
        # (Tansu lists no aborted transactions in Fetch, see the module docstring;
        # Kafka does, and the consumer drops the aborted record).
        committed = read_values(bootstrap, topic, "read_committed", 1)
        assert b"committed" in committed
        if isinstance(broker, KafkaCluster):
            assert committed == [b"committed"]

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_read_committed_drops_aborted_records_on_kafka(transport: str, kafka: KafkaCluster) -> None:
    """Aborted transactions between committed ones, on two partitions: read_committed
    gets exactly the committed records (KIP-98: the consumer drops the batches
    of the aborted transactions Fetch lists, and the ABORT/COMMIT markers)."""
    topic = kafka.create_topic(f"txa-{uuid.uuid4().hex[:10]}")
    bootstrap = kafka.bootstrap
    got: dict[str, list[bytes]] = {}

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap, transactional_id=txn_id()) as p:
            await call(p, "init_transactions")
            for n, (outcome, values) in enumerate(
                [("commit", [b"c0", b"c1"]), ("abort", [b"a0", b"a1", b"a2"]), ("commit", [b"c2"]),
                 ("abort", [b"a3"]), ("commit", [b"c3"])]  # fmt: skip
            ):
                await call(p, "begin_transaction")
                for v in values:
                    await p.get(await p.send(topic, v, partition=n % 2))
                await call(p, f"{outcome}_transaction")
        for isolation, want in (("read_committed", 4), ("read_uncommitted", 8)):
            async with open_consumer(
                transport, topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                isolation_level=isolation,
            ) as c:  # fmt: skip
                got[isolation] = await c.poll_values(want)
                got[isolation] += await c.poll_values(1, timeout=1.0)  # nothing more may come

    run(transport, scenario)
    assert sorted(got["read_committed"]) == [b"c0", b"c1", b"c2", b"c3"]
    assert sorted(got["read_uncommitted"]) == [b"a0", b"a1", b"a2", b"a3", b"c0", b"c1", b"c2", b"c3"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consume_transform_produce_commits_offsets_only_with_the_transaction(
    transport: str, broker: Any, bootstrap: str, topic: str
) -> None:
    source, group = f"{topic}-in", f"g-{uuid.uuid4().hex[:8]}"
    ready_topic(broker, source)
    tp = TopicPartition(source, 0)

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap) as plain:
            for i in range(4):
                await plain.get(await plain.send(source, b"in%d" % i, partition=0))
        async with open_consumer(
            transport, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest",
        ) as c:  # fmt: skip
            c.c.assign([tp])
            values = await c.poll_values(4)
            assert values == [b"in0", b"in1", b"in2", b"in3"]
            async with open_producer(transport, bootstrap_servers=bootstrap, transactional_id=txn_id()) as p:
                await call(p, "init_transactions")
                # First attempt aborted: neither the output nor the offsets count.
                await call(p, "begin_transaction")
                for v in values:
                    await p.send(topic, v.replace(b"in", b"out"), partition=0)
                await call(p, "send_offsets_to_transaction", {tp: OffsetAndMetadata(4, "", -1)}, group)
                await call(p, "abort_transaction")
                assert committed(bootstrap, group, tp) is None
                # Second attempt committed: both count, together.
                await call(p, "begin_transaction")
                for v in values:
                    await p.send(topic, v.replace(b"in", b"OUT"), partition=0)
                await call(p, "send_offsets_to_transaction", {tp: OffsetAndMetadata(4, "done", -1)}, group)
                await call(p, "commit_transaction")
        assert committed(bootstrap, group, tp) == 4
        out = read_values(bootstrap, topic, "read_committed", 8)
        assert out[-4:] == [b"OUT0", b"OUT1", b"OUT2", b"OUT3"]

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_send_offsets_with_the_consumers_group_metadata(
    transport: str, broker: Any, bootstrap: str, topic: str
) -> None:
    """A subscribed member's group_metadata() (KIP-447) carries its generation and member id."""
    source, group = f"{topic}-gm", f"g-{uuid.uuid4().hex[:8]}"
    ready_topic(broker, source)
    tp = TopicPartition(source, 0)

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap) as plain:
            for i in range(3):
                await plain.get(await plain.send(source, b"in%d" % i, partition=0))
        async with open_consumer(transport, bootstrap_servers=bootstrap, enable_auto_commit=False) as loose:
            with pytest.raises(InvalidGroupIdError):
                loose.c.group_metadata()
        async with open_consumer(
            transport, source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500,
        ) as c:  # fmt: skip
            assert c.c.group_metadata() == ConsumerGroupMetadata(group, -1, "", None)  # not joined yet
            values = await c.poll_values(3, timeout=60)
            assert sorted(values) == [b"in0", b"in1", b"in2"]
            meta = c.c.group_metadata()
            assert meta.group_id == group and meta.generation_id >= 0 and meta.member_id
            async with open_producer(transport, bootstrap_servers=bootstrap, transactional_id=txn_id()) as p:
                await call(p, "init_transactions")
                await call(p, "begin_transaction")
                await p.send(topic, b"out", partition=0)
                await call(p, "send_offsets_to_transaction", {tp: OffsetAndMetadata(3, "", -1)}, meta)
                await call(p, "commit_transaction")
        assert committed(bootstrap, group, tp) == 3

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_newer_producer_fences_the_older_one(transport: str, bootstrap: str, topic: str) -> None:
    async def scenario() -> None:
        tid = txn_id()
        async with open_producer(transport, bootstrap_servers=bootstrap, transactional_id=tid) as old:
            await call(old, "init_transactions")
            await call(old, "begin_transaction")
            await old.get(await old.send(topic, b"old", partition=0))
            async with open_producer(transport, bootstrap_servers=bootstrap, transactional_id=tid) as new:
                await call(new, "init_transactions")  # aborts what the old one left open
                # A record to a partition new to the old producer's transaction:
                # AddPartitionsToTxn answers PRODUCER_FENCED. (Tansu closes the
                # connection on an EndTxn of a fenced epoch instead of answering,
                # so a fenced EndTxn is proven by the unit tests only.)
                late = await old.send(topic, b"old-late", partition=1)
                assert isinstance(await old.outcome(late), ProducerFencedError)
                with pytest.raises(ProducerFencedError):
                    await call(old, "commit_transaction")
                with pytest.raises(ProducerFencedError):
                    await call(old, "begin_transaction")
                await call(new, "begin_transaction")
                await new.send(topic, b"new", partition=0)
                await call(new, "commit_transaction")
        assert b"new" in read_values(bootstrap, topic, "read_committed", 1)

    run(transport, scenario)

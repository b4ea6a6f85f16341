"""The Java client (kafka-clients, the broker's own release) as kproto's peer, on Apache Kafka.

One JVM (``tests/_java_peer.py``) serves the whole module. What is shown, on
each transport:

- records the Java producer wrote in every codec (keys, null keys and values,
  headers with null values, explicit timestamps) are read by kproto exactly,
  at Java's offsets; of Java's transactions, ``read_committed`` delivers the
  committed records only and ``read_uncommitted`` every data record (never a
  control record), and kproto's position ends where Java's end offset is;
- the reverse: what kproto's producers wrote (every codec; a transaction
  committed, one aborted) the Java consumer reads exactly;
- a group mixing Java and kproto members with ``cooperative-sticky``
  (KIP-429) splits the partitions with no overlap and no gap, balanced and
  sticky, through joins and leaves of either kind (the leader leaving too);
- offsets kproto's transactional producer sends with
  ``send_offsets_to_transaction`` (KIP-98/447) are what Java sees committed
  after the commit, and nothing after an abort; a Java group member resumes
  from them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _java_peer import JavaPeer, JRecord, jrecords, record

from kproto.consumer.types import OffsetAndMetadata, TopicPartition

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 150
PARTITIONS = 6  # of the mixed group's topic
GROUP_OPTS = {"session.timeout.ms": "10000", "heartbeat.interval.ms": "500"}
KPROTO_GROUP_OPTS: dict[str, Any] = dict(
    session_timeout_ms=10000, heartbeat_interval_ms=500, partition_assignment_strategy=["cooperative-sticky"],
    auto_offset_reset="earliest",
)  # fmt: skip


@pytest.fixture(scope="module")
def java_peer(kafka: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaPeer]:
    """The Java peer, compiled against the broker's jars; its log is printed if the module fails."""
    peer = JavaPeer(Path(kafka.lib), tmp_path_factory.mktemp("java-peer") / "peer.log")
    try:
        yield peer
    finally:
        peer.close()


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(peer: JavaPeer, bootstrap: str, partitions: int) -> str:
    topic = fresh("java")
    peer.call("create_topic", bootstrap=bootstrap, topic=topic, partitions=partitions)
    return topic


def content(i: int, tag: bytes) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]:
    """Key, value and headers of the ``i``-th test record: null keys or values, empty and null headers.

    Never both null: kproto's ``send`` refuses that, as kafka-python's does.
    """
    key = None if i % 5 == 0 else b"key-%d" % (i % 13)
    value = None if i % 17 == 3 and key is not None else (b"%s value %d " % (tag, i)) * (1 + i % 9)
    headers: tuple[tuple[str, bytes | None], ...] = (
        () if i % 3 == 0 else (("trace", b"%08d" % i), ("h\u00e9", b""), ("nil", None))
    )
    return key, value, headers


def as_tuple(r: Any) -> tuple[Any, ...]:
    """What must match between a record written and one read."""
    return (r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp)


# --- Java writes, kproto reads -------------------------------------------------------------------


class JavaWritten:
    """What the Java producer wrote, as the tuples kproto must read back."""

    def __init__(self) -> None:
        self.codec_topic = ""
        self.codecs: list[tuple[Any, ...]] = []
        self.txn_topic = ""
        self.committed: list[tuple[Any, ...]] = []
        self.uncommitted: list[tuple[Any, ...]] = []
        self.ends: dict[str, dict[int, int]] = {}


@pytest.fixture(scope="module")
def java_written(java_peer: JavaPeer, kafka: Any) -> JavaWritten:
    out = JavaWritten()
    now = int(time.time() * 1000)
    out.codec_topic = create(java_peer, kafka.bootstrap, len(CODECS))
    for part, codec in enumerate(CODECS):
        recs = [(*content(i, codec.encode()), now + i) for i in range(PER_CODEC)]
        sent = java_peer.call(
            "produce", bootstrap=kafka.bootstrap, topic=out.codec_topic, compression=codec,
            config={"linger.ms": "20"},
            transactions=[{"records": [record(v, k, h, part, ts) for k, v, h, ts in recs]}],
        )["sent"][0]  # fmt: skip
        out.codecs += [(md["partition"], md["offset"], k, v, h, ts) for (k, v, h, ts), md in zip(recs, sent)]
    # Transactions over two partitions: committed, aborted, committed on one partition, aborted on the other.
    out.txn_topic = create(java_peer, kafka.bootstrap, 2)
    plan = [("commit", (0, 1)), ("abort", (0, 1)), ("commit", (0,)), ("abort", (1,)), ("commit", (1, 0))]
    txns = []
    for n, (end, parts) in enumerate(plan):
        recs = [(*content(i, b"%s-%d" % (end.encode(), n)), parts[i % len(parts)], now + i) for i in range(12)]
        txns.append((end, recs, {"records": [record(v, k, h, p, ts) for k, v, h, p, ts in recs], "end": end}))
    sent = java_peer.call(
        "produce", bootstrap=kafka.bootstrap, topic=out.txn_topic, compression="lz4",
        transactional_id=fresh("java-tx"), transactions=[t for _, _, t in txns],
    )["sent"]  # fmt: skip
    for (end, recs, _), mds in zip(txns, sent, strict=True):
        rows = [(md["partition"], md["offset"], k, v, h, ts) for (k, v, h, _, ts), md in zip(recs, mds, strict=True)]
        out.uncommitted += rows
        if end == "commit":
            out.committed += rows
    out.codecs.sort()
    out.committed.sort()
    out.uncommitted.sort()
    # Java itself reads the same (a sanity check of the peer), and tells the end offsets per isolation level.
    for iso, want in (("read_committed", out.committed), ("read_uncommitted", out.uncommitted)):
        reply = java_peer.call("consume", bootstrap=kafka.bootstrap, topic=out.txn_topic, partitions=[0, 1],
                               isolation_level=iso)  # fmt: skip
        assert sorted(as_tuple(r) for r in jrecords(reply)) == want
        out.ends[iso] = {int(p): o for p, o in reply["end_offsets"].items()}
    return out


async def kproto_read(
    transport: str, bootstrap: str, topic: str, partitions: range, want: int, isolation: str
) -> tuple[list[Any], dict[int, int]]:
    """``want`` records of ``partitions`` read by a kproto consumer (assign), and its positions after them."""
    async with open_consumer(
        transport, bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False,
        auto_offset_reset="earliest",
    ) as c:  # fmt: skip
        tps = [TopicPartition(topic, p) for p in partitions]
        c.c.assign(tps)
        got: list[Any] = []
        deadline = time.monotonic() + 60
        while len(got) < want and time.monotonic() < deadline:
            for recs in (await c.poll(200)).values():
                got.extend(recs)
        positions = {}
        for tp in tps:
            pos = c.c.position(tp)
            positions[tp.partition] = pos if transport == "sync" else await pos
        return sorted(got, key=lambda r: (r.partition, r.offset)), positions


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kproto_reads_what_java_wrote_in_every_codec(
    transport: str, kafka: Any, java_written: JavaWritten
) -> None:
    async def scenario() -> None:
        got, _ = await kproto_read(transport, kafka.bootstrap, java_written.codec_topic, range(len(CODECS)),
                                   len(java_written.codecs), "read_uncommitted")  # fmt: skip
        assert [as_tuple(r) for r in got] == java_written.codecs
        assert {r.timestamp_type for r in got} == {0}  # CreateTime, as Java set it

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("isolation", ["read_committed", "read_uncommitted"])
def test_kproto_reads_javas_transactions(
    transport: str, isolation: str, kafka: Any, java_written: JavaWritten
) -> None:
    """read_committed drops the aborted transactions (Fetch's aborted list, KIP-98); no control record shows."""
    want = java_written.committed if isolation == "read_committed" else java_written.uncommitted

    async def scenario() -> None:
        got, positions = await kproto_read(transport, kafka.bootstrap, java_written.txn_topic, range(2),
                                           len(want), isolation)  # fmt: skip
        assert [as_tuple(r) for r in got] == want
        # Past the last commit marker, where Java's consumer ends too.
        assert positions == java_written.ends[isolation]

    run(transport, scenario)


# --- kproto writes, Java reads -------------------------------------------------------------------


async def kproto_produce(
    transport: str, bootstrap: str, topic: str, rows: list[tuple[Any, ...]], **configs: Any
) -> list[tuple[Any, ...]]:
    """Send ``rows`` (key, value, headers, partition, timestamp); the written tuples at kproto's offsets."""
    async with open_producer(transport, bootstrap_servers=bootstrap, linger_ms=10, **configs) as p:
        handles = [
            await p.send(topic, v, key=k, headers=list(h) or None, partition=part, timestamp_ms=ts)
            for k, v, h, part, ts in rows
        ]
        mds = [await p.get(h) for h in handles]
    return [(md.partition, md.offset, k, v, h, ts) for (k, v, h, _, ts), md in zip(rows, mds, strict=True)]


def java_read(peer: JavaPeer, bootstrap: str, topic: str, partitions: int, isolation: str) -> list[tuple[Any, ...]]:
    reply = peer.call("consume", bootstrap=bootstrap, topic=topic, partitions=list(range(partitions)),
                      isolation_level=isolation)  # fmt: skip
    recs = jrecords(reply)
    assert {r.timestamp_type for r in recs} <= {"CreateTime"}
    return sorted(as_tuple(r) for r in recs)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_java_reads_what_kproto_wrote_in_every_codec(transport: str, kafka: Any, java_peer: JavaPeer) -> None:
    topic = create(java_peer, kafka.bootstrap, len(CODECS))
    now = int(time.time() * 1000)

    async def scenario() -> list[tuple[Any, ...]]:
        written = []
        for part, codec in enumerate(CODECS):
            rows = [(*content(i, codec.encode()), part, now + i) for i in range(PER_CODEC)]
            written += await kproto_produce(transport, kafka.bootstrap, topic, rows,
                                            compression_type=None if codec == "none" else codec)  # fmt: skip
        return written

    written = sorted(run_for(transport, scenario))
    assert java_read(java_peer, kafka.bootstrap, topic, len(CODECS), "read_uncommitted") == written


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_java_read_committed_skips_what_kproto_aborted(transport: str, kafka: Any, java_peer: JavaPeer) -> None:
    topic = create(java_peer, kafka.bootstrap, 2)
    now = int(time.time() * 1000)

    async def scenario() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        committed: list[tuple[Any, ...]] = []
        everything: list[tuple[Any, ...]] = []
        async with open_producer(transport, bootstrap_servers=kafka.bootstrap, transactional_id=fresh("kp-tx"),
                                 compression_type="zstd") as p:  # fmt: skip
            await call(p, "init_transactions")
            for n, end in enumerate(["commit", "abort", "commit", "abort"]):
                await call(p, "begin_transaction")
                rows = [(*content(i, b"%s-%d" % (end.encode(), n)), i % 2, now + i) for i in range(10)]
                handles = [await p.send(topic, v, key=k, headers=list(h) or None, partition=part, timestamp_ms=ts)
                           for k, v, h, part, ts in rows]  # fmt: skip
                await p.flush(30)  # written before the abort: the log holds them
                mds = [await p.get(h) for h in handles]
                await call(p, f"{end}_transaction")
                done = [(md.partition, md.offset, k, v, h, ts) for (k, v, h, _, ts), md in zip(rows, mds, strict=True)]
                everything += done
                if end == "commit":
                    committed += done
        return sorted(committed), sorted(everything)

    committed, everything = run_for(transport, scenario)
    assert java_read(java_peer, kafka.bootstrap, topic, 2, "read_committed") == committed
    assert java_read(java_peer, kafka.bootstrap, topic, 2, "read_uncommitted") == everything


# --- helpers for the async scenarios -------------------------------------------------------------


def run_for(transport: str, scenario: Any) -> Any:
    """Run ``scenario`` on the transport's loop and return its result."""
    box: list[Any] = []

    async def wrapped() -> None:
        box.append(await scenario())

    run(transport, wrapped)
    return box[0]


async def call(p: Any, name: str, *args: Any) -> Any:
    """A transactional method of a producer or consumer facade, awaited on the async ones."""
    result = getattr(p.p if hasattr(p, "p") else p.c, name)(*args)
    if p.transport != "sync":
        result = await result
    return result

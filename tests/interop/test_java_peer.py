"""The Java client (kafka-clients, the broker's own release) as kproto's peer, on Apache Kafka.

One JVM (the ``java_peer`` fixture, ``tests/_java_peer.py``) serves the
session. What is shown, on each transport:

- records the Java producer wrote in every codec (keys, null keys and values,
  headers with null values, explicit timestamps) are read by kproto exactly,
  at Java's offsets; of Java's transactions, ``read_committed`` delivers the
  committed records only and ``read_uncommitted`` every data record (never a
  control record), and kproto's position ends where Java's end offset is;
- the reverse: what kproto's producers wrote (every codec; a transaction
  committed, one aborted) the Java consumer reads exactly;
- a group mixing Java and kproto members with ``cooperative-sticky``
  (KIP-429) splits the partitions with no overlap and no gap, balanced and
  sticky, through joins and leaves of either kind, with kproto's assignor
  leading first and Java's after the kproto leader left;
- offsets kproto's transactional producer sends with
  ``send_offsets_to_transaction`` (KIP-98/447) are what Java sees committed
  after the commit, and nothing after an abort; a Java group member resumes
  from them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _java_peer import JavaPeer, jrecords, record

from kproto.consumer.types import OffsetAndMetadata, TopicPartition

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 150
PARTITIONS = 6  # of the mixed group's topic
GROUP_OPTS = {"session.timeout.ms": "10000", "heartbeat.interval.ms": "500"}
KPROTO_GROUP_OPTS: dict[str, Any] = dict(
    session_timeout_ms=10000, heartbeat_interval_ms=500, partition_assignment_strategy=["cooperative-sticky"],
    auto_offset_reset="earliest",
)  # fmt: skip


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
        out.codecs += [(md["partition"], md["offset"], k, v, h, ts) for (k, v, h, ts), md in zip(recs, sent, strict=True)]
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
            # Idempotent (KIP-98): a retry under load cannot write a record twice, so the log is exact.
            written += await kproto_produce(transport, kafka.bootstrap, topic, rows, enable_idempotence=True,
                                            acks="all", compression_type=None if codec == "none" else codec)  # fmt: skip
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


# --- a mixed cooperative-sticky group ------------------------------------------------------------


class MixedGroup:
    """Java members (threads of the peer JVM) and kproto members (tasks on the scenario's loop) in one group."""

    def __init__(self, transport: str, peer: JavaPeer, bootstrap: str, topic: str, tg: Any) -> None:
        self.transport, self.peer, self.bootstrap, self.topic, self.tg = transport, peer, bootstrap, topic, tg
        self.group = fresh("mixed")
        self.java: set[str] = set()
        self.kproto: dict[str, tuple[anyio.Event, anyio.Event]] = {}  # name -> (stop, stopped)
        self.owned: dict[str, tuple[int, frozenset[int]]] = {}  # kproto name -> (generation, partitions)
        self.leading: dict[str, bool] = {}  # kproto name -> whether the coordinator made it leader
        self.errors: list[BaseException] = []

    async def java_call(self, op: str, **args: Any) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(lambda: self.peer.call(op, **args))

    async def add_java(self, name: str) -> None:
        await self.java_call("member_start", name=name, bootstrap=self.bootstrap, group=self.group,
                             topic=self.topic, assignor="cooperative-sticky", config=GROUP_OPTS)  # fmt: skip
        self.java.add(name)

    async def add_kproto(self, name: str) -> None:
        stop, stopped = anyio.Event(), anyio.Event()
        self.kproto[name] = (stop, stopped)
        self.tg.start_soon(self._kproto_member, name, stop, stopped)

    async def _kproto_member(self, name: str, stop: anyio.Event, stopped: anyio.Event) -> None:
        try:
            async with open_consumer(self.transport, self.topic, bootstrap_servers=self.bootstrap,
                                     group_id=self.group, **KPROTO_GROUP_OPTS) as c:  # fmt: skip
                while not stop.is_set():
                    await c.poll(100)
                    gen = c.c.group_metadata().generation_id
                    self.owned[name] = (gen, frozenset(tp.partition for tp in c.c.assignment()))
                    self.leading[name] = bool(getattr(c.c._core._group, "leader", False))
                    await anyio.sleep(0)  # the sync facade's poll does not yield to the loop
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
            raise
        finally:
            self.owned.pop(name, None)
            self.leading.pop(name, None)
            stopped.set()

    async def remove(self, name: str) -> None:
        if name in self.java:
            self.java.discard(name)
            reply = await self.java_call("member_stop", name=name)
            assert reply["error"] is None, reply["error"]
        else:
            stop, stopped = self.kproto.pop(name)
            stop.set()
            await stopped.wait()

    async def snapshot(self) -> dict[str, tuple[int, frozenset[int]]]:
        """Each member's generation and partitions."""
        snap = {}
        for name in sorted(self.java):
            reply = await self.java_call("member_state", name=name)
            assert reply["error"] is None, reply["error"]
            snap[name] = (reply["generation"], frozenset(p for t, p in reply["assignment"] if t == self.topic))
        snap.update((name, self.owned.get(name, (-1, frozenset()))) for name in self.kproto)
        return snap

    async def stable(self, after: int) -> tuple[int, dict[str, frozenset[int]]]:
        """The generation and assignment once the group settled past generation ``after``.

        Settled: every member is in the same generation, newer than ``after``
        (each join and leave starts one), owns partitions, together they own
        every partition (a cooperative round that revokes leaves a gap until
        the follow-up round), and nothing moved between two looks. Then no
        partition may be owned twice, and the split must be balanced.
        """
        deadline = time.monotonic() + 60
        last: dict[str, tuple[int, frozenset[int]]] = {}
        while True:
            assert not self.errors, self.errors
            snap = await self.snapshot()
            gens = {g for g, _ in snap.values()}
            covered = set().union(*(parts for _, parts in snap.values())) == set(range(PARTITIONS))
            settled = len(gens) == 1 and min(gens) > after and covered and all(p for _, p in snap.values())
            if settled and snap == last:
                break
            assert time.monotonic() < deadline, f"no settled assignment after generation {after}: {snap}"
            last = snap
            await anyio.sleep(0.3)
        owned = {name: parts for name, (_, parts) in snap.items()}
        everything = [p for parts in owned.values() for p in parts]
        assert sorted(everything) == list(range(PARTITIONS)), owned  # no overlap, no gap
        sizes = [len(parts) for parts in owned.values()]
        assert max(sizes) - min(sizes) <= 1, owned  # balanced
        return gens.pop(), owned


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mixed_cooperative_sticky_group_with_java(transport: str, kafka: Any, java_peer: JavaPeer) -> None:
    """Java and kproto members join and leave; each step ends with every partition owned exactly once.

    The first member leads (the coordinator's rule), so kproto's assignor
    assigns the Java members first; once kproto-1 left, only Java members
    remain and Java's CooperativeStickyAssignor assigns kproto-2. Sticky
    (KIP-429): on a join, members only give partitions up; on a leave, they
    only gain.
    """
    topic = create(java_peer, kafka.bootstrap, PARTITIONS)
    # (step, member, whether a kproto member leads once the group settled; None: either)
    steps = [("+", "kproto-1", True), ("+", "java-1", True), ("+", "java-2", True), ("-", "kproto-1", False),
             ("+", "kproto-2", False), ("-", "java-1", None)]  # fmt: skip

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            group = MixedGroup(transport, java_peer, kafka.bootstrap, topic, tg)
            before: dict[str, frozenset[int]] = {}
            generation = -1
            try:
                for sign, name, kproto_leads in steps:
                    if sign == "+":
                        await (group.add_java if name.startswith("java") else group.add_kproto)(name)
                    else:
                        await group.remove(name)
                    generation, after = await group.stable(generation)
                    if kproto_leads is not None:
                        assert any(group.leading.values()) == kproto_leads, (name, group.leading)
                    assert set(after) == set(before) - {name} if sign == "-" else set(before) | {name}
                    for member, parts in before.items():
                        if member in after:
                            assert (after[member] <= parts) if sign == "+" else (parts <= after[member]), (
                                name, before, after)  # fmt: skip
                    before = after
            finally:
                for name in list(group.java) + list(group.kproto):
                    await group.remove(name)

    run(transport, scenario)


# --- send_offsets_to_transaction, seen by Java ---------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_java_sees_offsets_kproto_sent_to_a_transaction(transport: str, kafka: Any, java_peer: JavaPeer) -> None:
    """Consume-transform-produce (KIP-98, KIP-447 group metadata) with Java as the judge.

    kproto consumes ``in0..in3`` as a group member, then a transaction sends
    outputs and the consumed offset: aborted, Java sees no committed offset
    and no output under read_committed; committed, it sees offset 4 with its
    metadata and exactly the committed outputs, and a Java member of the
    group resumes at ``in4``.
    """
    source = create(java_peer, kafka.bootstrap, 1)
    out = create(java_peer, kafka.bootstrap, 1)
    group = fresh("eos")
    tp = TopicPartition(source, 0)
    java_peer.call("produce", bootstrap=kafka.bootstrap, topic=source, compression="none",
                   transactions=[{"records": [record(b"in%d" % i, partition=0) for i in range(4)]}])  # fmt: skip

    def committed() -> dict[tuple[str, int], tuple[int, str]]:
        reply = java_peer.call("committed", bootstrap=kafka.bootstrap, group=group)
        return {(o["topic"], o["partition"]): (o["offset"], o["metadata"]) for o in reply["offsets"]}

    def java_values(isolation: str) -> list[bytes | None]:
        reply = java_peer.call("consume", bootstrap=kafka.bootstrap, topic=out, partitions=[0],
                               isolation_level=isolation)  # fmt: skip
        return [r.value for r in jrecords(reply)]

    async def scenario() -> None:
        async with open_consumer(
            transport, source, bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=10000, heartbeat_interval_ms=500,
        ) as c:  # fmt: skip
            values = await c.poll_values(4, timeout=60)
            assert values == [b"in0", b"in1", b"in2", b"in3"]
            meta = c.c.group_metadata()
            async with open_producer(transport, bootstrap_servers=kafka.bootstrap,
                                     transactional_id=fresh("eos-tx")) as p:  # fmt: skip
                await call(p, "init_transactions")
                await call(p, "begin_transaction")
                for v in values:
                    await p.send(out, v.replace(b"in", b"lost"), partition=0)
                await call(p, "send_offsets_to_transaction", {tp: OffsetAndMetadata(2, "aborted", -1)}, meta)
                await p.flush(30)  # the aborted outputs are in the log: read_uncommitted shows them
                await call(p, "abort_transaction")
                assert await anyio.to_thread.run_sync(committed) == {}
                assert await anyio.to_thread.run_sync(java_values, "read_committed") == []
                await call(p, "begin_transaction")
                for v in values:
                    await p.send(out, v.replace(b"in", b"out"), partition=0)
                await call(p, "send_offsets_to_transaction", {tp: OffsetAndMetadata(4, "done", -1)}, meta)
                await call(p, "commit_transaction")
                assert await anyio.to_thread.run_sync(committed) == {(source, 0): (4, "done")}

    run(transport, scenario)
    assert java_values("read_committed") == [b"out0", b"out1", b"out2", b"out3"]
    assert java_values("read_uncommitted") == [b"lost0", b"lost1", b"lost2", b"lost3",
                                               b"out0", b"out1", b"out2", b"out3"]  # fmt: skip
    # A Java member of the group (read_committed) starts where the transaction committed.
    java_peer.call("produce", bootstrap=kafka.bootstrap, topic=source, compression="none",
                   transactions=[{"records": [record(b"in%d" % i, partition=0) for i in (4, 5)]}])  # fmt: skip
    reply = java_peer.call("consume", bootstrap=kafka.bootstrap, topic=source, group=group, assignor="range",
                           isolation_level="read_committed", count=2, timeout_ms=60000)  # fmt: skip
    assert [(r.offset, r.value) for r in jrecords(reply)] == [(4, b"in4"), (5, b"in5")]

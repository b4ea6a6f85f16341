"""A whole client core against a scripted cluster whose answers the fuzzer mutates.

Shared by ``fuzz_producer_core.py`` and ``fuzz_consumer_core.py``. The
cluster is the deterministic simulation of ``tests/sim/harness.py`` (real
wire protocol, chunked delivery); :class:`MutatingNetwork` rewrites each
response frame on its way to the core as the input dictates: an interesting
number written over a field (0, -1, int32/int64 extremes), random bytes,
a cut, or a repeated span (a partition listed twice, a batch repeated).
Input bytes that run out mean "no more mutations", so every input is a
valid scenario and the fuzzer explores from there.

Invariants (an AssertionError or any other exception is a finding):

- nothing escapes the core's driving inputs (``receive_data``,
  ``handle_timer``, ...): bad broker bytes close a connection;
- the consumer's ``poll`` raises only ``KafkaError``; it never hands out an
  offset twice, below the position, or outside 0..2**63-2;
- the producer completes each record once, and every record within
  ``delivery_timeout_ms`` (no silent stall);
- buffers stay bounded: receive buffers by the response cap, the consumer's
  buffered bytes by ``fetch_max_bytes`` plus one response, its pending
  errors by a small count, the producer's bytes by ``buffer_memory``.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from kproto.consumer import ConsumerConfig, TopicPartition
from kproto.consumer.core import ConsumerCore
from kproto.errors import KafkaError
from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.protocol.records import RecordBatchBuilder
from tests.sim.harness import Sim, SimCluster, SimNetwork

TOPIC = "fz"
LAST_OFFSET = 2**63 - 2
#: Short backoffs: a scenario's few simulated seconds see retries and reconnects.
FAST_RETRIES = {"retry_backoff_ms": 20, "reconnect_backoff_ms": 10, "reconnect_backoff_max_ms": 100}
_INTERESTING = (0, 1, -1, -2, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 2**63 - 2, 2**16, 0x7F, 0x80)


class Script:
    """Reads the fuzz input: small integers, 0 once it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return self.byte() << 8 | self.byte()

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    @property
    def left(self) -> bool:
        return self.pos < len(self.data)


def mutate(frame: bytes, s: Script) -> bytes:
    """One response frame (correlation id onwards) as the script rewrites it."""
    op = s.byte() % 8
    if op < 3 or len(frame) <= 4:
        return frame
    buf = bytearray(frame)
    # Positions after the correlation id: a wrong id only closes the connection.
    pos = 4 + s.u16() % (len(buf) - 4)
    if op == 3 or op == 4:
        value = _INTERESTING[s.byte() % len(_INTERESTING)]
        width = 8 if op == 4 else 4
        packed = struct.pack(">q", value) if width == 8 else struct.pack(">i", max(-(2**31), min(2**31 - 1, value)))
        buf[pos : pos + width] = packed[: len(buf) - pos]
    elif op == 5:
        raw = s.take(1 + s.byte() % 4)
        buf[pos : pos + len(raw)] = raw
    elif op == 6:
        del buf[pos:]
    else:
        n = 1 + s.u16() % 256
        buf[pos:pos] = buf[pos : pos + n]
    return bytes(buf)


class MutatingNetwork(SimNetwork):
    """A SimNetwork whose responses pass through :func:`mutate` first."""

    def __init__(self, cluster: SimCluster, rng: random.Random, script: Script, **kw: Any) -> None:
        super().__init__(cluster, rng, **kw)
        self.script = script

    def _respond(self, conn: Any, response: bytes, throttle: int, now: float) -> None:
        super()._respond(conn, mutate(response, self.script), throttle, now)


def check_receive_buffers(client: Any) -> None:
    """Every connection's receive buffer is within the response cap (plus one chunk)."""
    cap = client.config.max_response_size
    for node in client._nodes.values():
        conn = node.conn
        if conn is not None:
            assert len(conn._rbuf) <= cap + 4 + 65536, f"receive buffer of {len(conn._rbuf)} bytes"


def _tolerant(broker: Any) -> None:
    """The sim broker answers a request it cannot serve (an old version a mutated
    ApiVersions answer led the client to) with an empty frame: garbage to the client."""
    handle = broker.handle

    def guarded(frame: bytes, now: float) -> Any:
        try:
            return handle(frame, now)
        except KafkaError:  # the sim's codec cannot write that version: not the core's fault
            return b"", 0

    broker.handle = guarded


def _cluster(s: Script) -> tuple[random.Random, SimCluster, MutatingNetwork]:
    rng = random.Random(s.u16())
    cluster = SimCluster(rng, n_brokers=1 + s.byte() % 2, default_partitions=2)
    for broker in cluster.brokers.values():
        _tolerant(broker)
    network = MutatingNetwork(cluster, rng, s, latency=(0.0005, 0.005), max_chunk=rng.choice((16, 4096)))
    return rng, cluster, network


def run_consumer(data: bytes) -> None:
    """Consume a prepared log through mutated answers; check what poll hands out."""
    s = Script(data)
    opts = s.byte()
    rng, cluster, network = _cluster(s)
    cluster.create_topic(TOPIC, 0.0, partitions=2)
    codec = (opts >> 4) % 5
    for p in range(2):
        log = cluster.log(TOPIC, p)
        for _ in range(3):
            b = RecordBatchBuilder(compression=codec)
            for i in range(4):
                b.append(timestamp_ms=1000 + i, key=b"k%d" % i, value=b"v%d" % i)
            log.append(b.seal())
    cfg = ConsumerConfig.from_kwargs(
        bootstrap_servers=cluster.bootstrap,
        auto_offset_reset="earliest",
        check_crcs=not opts & 1,
        isolation_level="read_committed" if opts & 2 else "read_uncommitted",
        enable_incremental_fetch_sessions=bool(opts & 4),
        max_poll_records=(1, 5, 500, 3)[(opts >> 3) & 1 | (opts >> 6) & 2],
        group_id="g" if opts & 0x80 else None,
        fetch_max_wait_ms=50,
        request_timeout_ms=1000,
        **FAST_RETRIES,
    )
    core = ConsumerCore(cfg, now=0.0, rng=random.Random(rng.random()))
    tps = [TopicPartition(TOPIC, p) for p in range(2)]
    if cfg.group_id is not None:
        core.subscribe([TOPIC], now=0.0)
    else:
        core.assign(tps, now=0.0)
    sim = Sim(core, cluster, network)
    last: dict[TopicPartition, int] = {}
    cap = core._client.config.max_response_size  # type: ignore[attr-defined]

    def poll(now: float) -> None:
        before = {tp: core.position(tp) for tp in core.assignment()}
        try:
            got = core.poll(None, now)
        except KafkaError:
            got = {}
        for tp, recs in got.items():
            floor = before.get(tp)
            if floor is not None and floor <= last.get(tp, -1):
                last[tp] = floor - 1  # a reset moved the position back (out of range, rebalance)
            for r in recs:
                assert 0 <= r.offset <= LAST_OFFSET, f"offset {r.offset} handed out"
                assert r.offset > last.get(tp, -1), f"{tp}: offset {r.offset} after {last.get(tp)}"
                assert floor is None or r.offset >= floor, f"{tp}: offset {r.offset} below the position {floor}"
                last[tp] = r.offset
        assert core._buffered_bytes <= cfg.fetch_max_bytes + cap
        assert len(core._errors) <= 64, f"{len(core._errors)} errors waiting"
        check_receive_buffers(core._client)
        if now < 2.0:
            sim.schedule(now + 0.01 + rng.random() * 0.05, lambda now: poll(now))

    sim.schedule(0.01, lambda now: poll(now))
    sim.run(max_time=2.5, max_steps=20_000)


def run_producer(data: bytes) -> None:
    """Produce through mutated answers; every record completes once, within its timeout."""
    s = Script(data)
    opts = s.byte()
    rng, cluster, network = _cluster(s)
    cfg = ProducerConfig.from_kwargs(
        bootstrap_servers=cluster.bootstrap,
        enable_idempotence=bool(opts & 1),
        acks="all" if opts & 1 else (0, 1, "all")[(opts >> 1) % 3],
        linger_ms=(0, 5)[(opts >> 3) & 1],
        batch_size=(200, 16384)[(opts >> 4) & 1],
        compression_type=(None, "gzip", "lz4", "zstd")[(opts >> 5) & 3],
        request_timeout_ms=1000,
        delivery_timeout_ms=3000,
        **FAST_RETRIES,
        max_block_ms=1000,
        buffer_memory=64 * 1024,
    )
    core = ProducerCore(cfg, now=0.0, rng=random.Random(rng.random()))
    sim = Sim(core, cluster, network)
    done: set[int] = set()
    sent: dict[int, float] = {}
    total = 24

    def collect() -> None:
        for ev in core.events():
            if isinstance(ev, (RecordsDelivered, DeliveryFailed)):
                for tok in ev.tokens:
                    assert tok in sent, f"token {tok} never sent"
                    assert tok not in done, f"token {tok} completed twice"
                    done.add(tok)
        assert core._buffer_used <= cfg.buffer_memory
        check_receive_buffers(core._client)

    def send(now: float) -> None:
        for _ in range(1 + rng.randrange(4)):
            i = len(sent)
            if i >= total:
                return
            try:
                ok = core.send(topic=TOPIC, key=None, value=b"%d" % i, headers=None, partition=None,
                               timestamp_ms=1_700_000_000_000 + i, token=i, now=now)
            except KafkaError:
                return  # refused at the call (no metadata yet, too large): the caller is told
            if not ok:
                break
            sent[i] = now
        sim.schedule(now + rng.random() * 0.05, lambda now: send(now))

    sim.on_step = collect
    sim.schedule(0.0, lambda now: send(now))
    sim.run(max_time=1.0, max_steps=20_000)
    sim.on_step = collect
    # No silent stall: delivery_timeout_ms bounds every accepted record.
    sim.run(until=lambda: len(done) == len(sent), max_time=1.0 + 3.0 + 1.5, max_steps=40_000)
    collect()
    missing = sorted(set(sent) - done)
    assert not missing, f"records {missing[:5]} not completed within delivery_timeout_ms"


def seeds(kind: str) -> dict[str, bytes]:
    """A few starting inputs: clean runs and one mutation of each kind."""
    out = {f"{kind}-clean-{o}": bytes([o, 0, 7, 0]) for o in (0, 0x15, 0x2A, 0x87, 0xFF)}
    for op in range(3, 8):
        out[f"{kind}-op{op}"] = bytes([0x10, 0, 3, 1]) + bytes([0, 0, 0, op, 0, 40, 6, 2, 0, 9] * 4)
    return out

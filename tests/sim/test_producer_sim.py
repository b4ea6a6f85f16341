"""Deterministic simulation of ProducerCore against a faulty multi-broker cluster.

The cluster is simulated at the level of the client API (the producer's
``client=`` hook): requests reach a broker after a latency, are applied to
in-memory partition logs (decoded from the real batch bytes, with the
broker's idempotence checks: epoch, sequence, the last 5 batches for
duplicates), and answers come back later in order per connection. Faults:
dropped connections (in-flight answers lost, whether or not the broker wrote
the batch), leader moves (NOT_LEADER_OR_FOLLOWER until metadata is
refreshed), retriable broker errors (some after writing, like a replication
timeout), lost producer state (UNKNOWN_PRODUCER_ID, KIP-360), and batches
over a size limit (MESSAGE_TOO_LARGE: the producer splits them).

Invariants checked at the end of every seeded run:
- every record is completed exactly once (delivered or failed); nothing hangs;
- every acknowledged record is in the log at the offset reported;
- with idempotence: every acknowledged record is in the log exactly once,
  and per partition acknowledged records are in send order.
A failing seed is in the test id; rerun it with ``-k``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from kproto.errors import KafkaConnectionError, KafkaError
from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.producer.events import BatchOutcome
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse
from kproto.protocol.messages.produce import (
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceResponse,
)
from kproto.protocol.records import RecordBatch, read_batches

Callback = Callable[[Any, KafkaError | None], None]
TOPIC = "sim"
NOT_LEADER = 6
MESSAGE_TOO_LARGE = 10
REQUEST_TIMED_OUT = 7
NOT_ENOUGH_REPLICAS = 19
OUT_OF_ORDER = 45
DUPLICATE = 46
INVALID_EPOCH = 47
UNKNOWN_PID = 59


class ClientView:
    """The producer's (possibly stale) view of the cluster: ClusterMetadata's query methods."""

    def __init__(self) -> None:
        self.version = 0
        self.leaders: dict[int, int] = {}

    def partitions_for(self, topic: str) -> set[int] | None:
        return set(self.leaders) if topic == TOPIC and self.leaders else None

    def available_partitions_for(self, topic: str) -> set[int]:
        return set(self.leaders) if topic == TOPIC else set()

    def leader_for(self, topic: str, partition: int) -> int | None:
        return self.leaders.get(partition) if topic == TOPIC else None

    def topic_error(self, topic: str) -> KafkaError | None:
        return None


class PartitionLog:
    """One partition's log and the broker's producer state for it (replicated with the log)."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        #: producer id -> (epoch, last sequence, last 5 batches as (first seq, last seq, base offset))
        self.producers: dict[int, tuple[int, int, list[tuple[int, int, int]]]] = {}

    def append(self, batch: RecordBatch) -> tuple[int, int]:
        """Apply one batch as a broker would; return (error code, base offset)."""
        pid, epoch, seq, n = batch.producer_id, batch.producer_epoch, batch.base_sequence, batch.record_count
        if pid >= 0:
            state = self.producers.get(pid)
            if state is None:
                if seq != 0:
                    return UNKNOWN_PID, -1
            else:
                cur_epoch, last_seq, recent = state
                if epoch < cur_epoch:
                    return INVALID_EPOCH, -1
                if epoch == cur_epoch:
                    for first, last, offset in recent:
                        if first == seq and last == seq + n - 1:
                            return 0, offset  # a duplicate: the original offset (DUPLICATE in old brokers)
                    if seq != last_seq + 1:
                        return OUT_OF_ORDER, -1
                elif seq != 0:
                    return OUT_OF_ORDER, -1
        base = len(self.values)
        self.values.extend(r.value or b"" for r in batch.records())
        if pid >= 0:
            old = self.producers.get(pid)
            recent = list(old[2]) if old is not None and old[0] == epoch else []
            recent = (recent + [(seq, seq + n - 1, base)])[-5:]
            self.producers[pid] = (epoch, seq + n - 1, recent)
        return 0, base


class SimCluster:
    """Brokers, true leadership, logs, latency and faults; also the producer's client."""

    def __init__(
        self, rng: random.Random, *, brokers: int, partitions: int, faults: dict[str, float]
    ) -> None:
        self.rng = rng
        self.now = 0.0
        self.brokers = list(range(1, brokers + 1))
        self.leaders = {p: self.brokers[p % brokers] for p in range(partitions)}
        self.logs = {p: PartitionLog() for p in range(partitions)}
        self.faults = faults
        self.cluster = ClientView()
        self.up: dict[int, float] = {}  # node -> time its connection is ready
        self.connecting: dict[int, float] = {}
        #: Answers not yet delivered: (due, seq, node, callback, response, error).
        self.pending: list[tuple[float, int, int, Callback, Any, KafkaError | None]] = []
        self.metadata_due: float | None = 0.001
        self.seq = 0
        self.next_pid = 1000
        self.pid_epochs: dict[int, int] = {}
        self.inits = 0

    # --- the client API the producer uses ---------------------------------------------

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
        if node_id is None:
            node_id = self.rng.choice(self.brokers)
            if node_id not in self.up:
                self.ensure_connected(node_id, now)
        if node_id not in self.up and node_id not in self.connecting:
            self._answer(now, node_id, callback, None, KafkaConnectionError("not connected"), delay=0.0)
            return
        start = max(self.up.get(node_id, self.connecting.get(node_id, now)), now)
        latency = 0.001 + self.rng.random() * 0.004
        if isinstance(request, InitProducerIdRequest):
            self.inits += 1
            pid, epoch = request.producer_id, request.producer_epoch
            if pid >= 0 and self.pid_epochs.get(pid) == epoch:
                epoch += 1  # KIP-360 bump
            else:
                pid, epoch = self.next_pid, 0
                self.next_pid += 1
            self.pid_epochs[pid] = epoch
            self._answer(start, node_id, callback, InitProducerIdResponse(producer_id=pid, producer_epoch=epoch),
                         None, delay=latency)  # fmt: skip
            return
        assert isinstance(request, ProduceRequest)
        topics = []
        for td in request.topic_data:
            prs = []
            for pd in td.partition_data:
                (batch,) = list(read_batches(bytes(pd.records)))
                assert isinstance(batch, RecordBatch)
                code, base = self._produce(node_id, pd.index, batch)
                prs.append(PartitionProduceResponse(index=pd.index, error_code=code, base_offset=base))
            topics.append(TopicProduceResponse(name=td.name, partition_responses=prs))
        response = ProduceResponse(responses=topics) if expect_response else None
        self._answer(start, node_id, callback, response, None, delay=latency)

    def _produce(self, node: int, partition: int, batch: RecordBatch) -> tuple[int, int]:
        if self.leaders[partition] != node:
            return NOT_LEADER, -1
        limit = self.faults.get("max_batch_bytes")
        if limit is not None and batch.size_in_bytes > limit:
            return MESSAGE_TOO_LARGE, -1
        r = self.rng.random()
        p_err = self.faults.get("error", 0.0)
        if r < p_err / 2:
            return NOT_ENOUGH_REPLICAS, -1  # not written
        code, base = self.logs[partition].append(batch)
        if code == 0 and r < p_err:
            return REQUEST_TIMED_OUT, -1  # written, but the answer says it timed out
        return code, base

    def _answer(
        self, at: float, node: int, cb: Callback, resp: Any, err: KafkaError | None, *, delay: float
    ) -> None:
        self.seq += 1
        # answers on one connection come back in order
        last = max((d for d, _s, n, *_ in self.pending if n == node), default=0.0)
        self.pending.append((max(at + delay, last), self.seq, node, cb, resp, err))

    def is_ready(self, node_id: int) -> bool:
        return node_id in self.up and self.up[node_id] <= self.now

    def in_flight_count(self, node_id: int) -> int:
        return sum(1 for p in self.pending if p[2] == node_id)

    def api_version(self, node_id: int, api_key: int) -> int | None:
        return 4 if api_key == 22 else 9

    def ensure_connected(self, node_id: int, now: float) -> None:
        if node_id not in self.up and node_id not in self.connecting:
            self.connecting[node_id] = now + 0.002

    def add_topics(self, topics: Any, now: float) -> None:
        self.request_metadata_update(now)

    def request_metadata_update(self, now: float) -> None:
        if self.metadata_due is None:
            self.metadata_due = now + 0.002

    def bootstrap_connected(self) -> bool:
        return True

    responses_with_trailing_bytes = 0

    def versions_sent(self) -> dict[int, int]:
        return {}

    def close(self, now: float) -> None:
        pass

    def events(self) -> list[object]:
        return []

    def commands(self) -> list[Any]:
        return []

    def data_to_send(self) -> list[tuple[int, bytes]]:
        return []

    def connection_made(self, node_id: int, now: float) -> None:
        raise AssertionError("not used")

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        raise AssertionError("not used")

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        raise AssertionError("not used")

    def get_timer(self) -> float | None:
        times = [p[0] for p in self.pending] + list(self.connecting.values())
        if self.metadata_due is not None:
            times.append(self.metadata_due)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self.now = now
        for node, at in list(self.connecting.items()):
            if at <= now:
                del self.connecting[node]
                self.up[node] = at
        if self.metadata_due is not None and self.metadata_due <= now:
            self.metadata_due = None
            self.cluster.leaders = dict(self.leaders)
            self.cluster.version += 1
        due = sorted(p for p in self.pending if p[0] <= now)
        self.pending = [p for p in self.pending if p[0] > now]
        for _d, _s, _n, cb, resp, err in due:
            cb(resp, err)

    # --- faults -------------------------------------------------------------------------

    def drop_connection(self, node: int) -> None:
        """Cut ``node``'s connection: its unanswered requests fail (written or not)."""
        self.up.pop(node, None)
        self.connecting.pop(node, None)
        lost = [p for p in self.pending if p[2] == node]
        self.pending = [p for p in self.pending if p[2] != node]
        for _d, _s, _n, cb, _resp, _err in sorted(lost):
            self._answer(self.now, node, cb, None, KafkaConnectionError("connection dropped"), delay=0.0)

    def move_leader(self, partition: int) -> None:
        others = [b for b in self.brokers if b != self.leaders[partition]]
        self.leaders[partition] = self.rng.choice(others)

    def lose_producer_state(self) -> None:
        for log in self.logs.values():
            log.producers.clear()


def run(seed: int, *, idempotent: bool, faults: dict[str, float], records: int = 400) -> dict[str, Any]:
    rng = random.Random(seed)
    partitions = rng.choice((1, 3, 6))
    sim = SimCluster(rng, brokers=3, partitions=partitions, faults=faults)
    kwargs: dict[str, Any] = dict(
        linger_ms=rng.choice((0, 0, 2)),
        batch_size=rng.choice((200, 1000, 16384)),
        retry_backoff_ms=rng.choice((0, 5)),
        request_timeout_ms=1000,
        delivery_timeout_ms=10_000_000,
        max_in_flight_requests_per_connection=rng.choice((1, 2, 5)),
        max_request_size=rng.choice((300, 1048576)),
    )
    if idempotent:
        kwargs.update(enable_idempotence=True)
    else:
        kwargs.update(retries=1_000_000, acks=rng.choice((1, "all")))
    core = ProducerCore(
        ProducerConfig.from_kwargs(**kwargs), now=0.0, rng=random.Random(seed + 1), client=sim
    )
    delivered: dict[int, tuple[int, int]] = {}  # token -> (partition, offset)
    failed: set[int] = set()
    sent_partition_order: dict[int, list[int]] = {}
    now = 0.0
    next_send = 0.0
    i = 0
    steps = 0
    quiet_state_loss = faults.get("state_loss", 0.0)
    while (i < records or core.pending_count()) and steps < 200_000:
        steps += 1
        timers = [t for t in (core.get_timer(), next_send if i < records else None) if t is not None]
        now = max(now, min(timers)) if timers else now + 0.001
        sim.now = now
        r = rng.random()
        if r < faults.get("drop", 0.0):
            sim.drop_connection(rng.choice(sim.brokers))
        elif r < faults.get("drop", 0.0) + faults.get("move", 0.0):
            sim.move_leader(rng.randrange(partitions))
        elif quiet_state_loss and not sim.pending and core.pending_count() == 0 and r < 0.5:
            sim.lose_producer_state()  # e.g. the producer's state expired on the broker
        while i < records and next_send <= now:
            key = None if rng.random() < 0.5 else b"k%d" % rng.randrange(20)
            if core.send(topic=TOPIC, key=key, value=b"%d" % i, headers=None, partition=None,
                         timestamp_ms=1_000 + i, token=i, now=now):  # fmt: skip
                i += 1
                pause = rng.random()
                # mostly bursts, sometimes a quiet gap (where lost producer state is injected)
                next_send = now + (0.0 if pause < 0.3 else 0.05 if pause > 0.98 else rng.random() * 0.002)
            else:
                next_send = now + 0.001
                break
        core.handle_timer(now)
        core.data_to_send()
        core.commands()
        for ev in core.events():
            if not isinstance(ev, BatchOutcome):
                continue  # the client's events and retries, forwarded
            if isinstance(ev, RecordsDelivered):
                for k, tok in enumerate(ev.tokens):
                    assert isinstance(tok, int)
                    assert tok not in delivered and tok not in failed, f"token {tok} completed twice"
                    delivered[tok] = (ev.partition, ev.base_offset + k if ev.base_offset >= 0 else -1)
                    sent_partition_order.setdefault(ev.partition, []).append(tok)
            else:
                assert isinstance(ev, DeliveryFailed)
                for tok in ev.tokens:
                    assert isinstance(tok, int)
                    assert tok not in delivered and tok not in failed, f"token {tok} completed twice"
                    failed.add(tok)
    assert i == records and core.pending_count() == 0, f"stuck: sent {i}, pending {core.pending_count()}"
    assert len(delivered) + len(failed) == records
    # every acknowledged record is in the log where the broker said
    # (offset -1: an idempotent retry found its first attempt already written)
    for tok, (p, offset) in delivered.items():
        if offset >= 0 or not idempotent:
            assert sim.logs[p].values[offset] == b"%d" % tok, (tok, p, offset)
        else:
            assert b"%d" % tok in sim.logs[p].values, (tok, p)
    if idempotent:
        for p, log in sim.logs.items():
            acked = [int(v) for v in log.values if int(v) in delivered]
            assert len(acked) == len(set(acked)), f"partition {p}: acknowledged record written twice"
            assert acked == sorted(acked), f"partition {p}: acknowledged records out of send order"
            assert len(acked) == sum(1 for q, _o in delivered.values() if q == p)
    return {"delivered": len(delivered), "failed": len(failed), "inits": sim.inits, "core": core}


FAULTS = {"drop": 0.01, "move": 0.01, "error": 0.05}
HEAVY = {"drop": 0.03, "move": 0.03, "error": 0.15}


@pytest.mark.parametrize("seed", range(40))
def test_idempotent_exactly_once_in_order_under_faults(seed: int) -> None:
    result = run(seed, idempotent=True, faults=FAULTS)
    assert result["delivered"] == 400 and result["failed"] == 0


@pytest.mark.parametrize("seed", range(20))
def test_idempotent_recovers_lost_producer_state(seed: int) -> None:
    result = run(1000 + seed, idempotent=True, faults={**FAULTS, "state_loss": 1.0})
    assert result["delivered"] == 400


@pytest.mark.parametrize("seed", range(30))
def test_idempotent_heavy_faults(seed: int) -> None:
    result = run(3000 + seed, idempotent=True, faults={**HEAVY, "state_loss": 1.0})
    assert result["delivered"] == 400


@pytest.mark.parametrize("seed", range(20))
def test_batches_too_large_for_the_broker_are_split(seed: int) -> None:
    """The broker refuses batches over 150 bytes: split until they fit, still exactly once and in order."""
    result = run(4000 + seed, idempotent=bool(seed % 2), faults={**FAULTS, "max_batch_bytes": 150.0})
    assert result["delivered"] == 400 and result["failed"] == 0


@pytest.mark.parametrize("seed", range(40))
def test_retries_lose_nothing_acknowledged(seed: int) -> None:
    result = run(2000 + seed, idempotent=False, faults=HEAVY if seed % 2 else FAULTS)
    assert result["delivered"] == 400 and result["failed"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_silent_cluster_fails_everything_within_delivery_timeout(seed: int) -> None:
    """A cluster whose brokers never answer: every record fails with KafkaTimeoutError, nothing hangs."""
    rng = random.Random(seed)
    sim = SimCluster(rng, brokers=3, partitions=3, faults={})
    sim.send = lambda request, **kw: None  # type: ignore[method-assign]  # swallowed
    cfg = ProducerConfig.from_kwargs(retries=5, request_timeout_ms=1000, delivery_timeout_ms=5000,
                                     enable_idempotence=bool(seed % 2))  # fmt: skip
    core = ProducerCore(cfg, now=0.0, rng=random.Random(seed), client=sim)
    now = 0.0
    sim.handle_timer(0.01)
    core.handle_timer(0.01)
    for i in range(50):
        core.send(
            topic=TOPIC, key=None, value=b"x", headers=None, partition=None, timestamp_ms=0, token=i, now=now
        )
    failed: list[object] = []
    while core.pending_count() and now < 100:
        core.data_to_send()
        t = core.get_timer()
        assert t is not None, "pending records but no timer: would hang"
        now = max(now, t)
        core.handle_timer(now)
        for ev in core.events():
            if not isinstance(ev, BatchOutcome):
                continue  # the client's events and retries, forwarded
            assert isinstance(ev, DeliveryFailed) and ev.error.__class__.__name__ == "KafkaTimeoutError"
            failed.extend(ev.tokens)
    assert sorted(failed) == list(range(50))  # type: ignore[type-var]
    assert now <= 5.01 + 0.01


def test_faults_actually_happen() -> None:
    """The fault mix is not a no-op: retries and epoch bumps occur across the seeds."""
    retries = 0
    bumps = 0
    for seed in range(10):
        result = run(seed, idempotent=True, faults={**FAULTS, "state_loss": 1.0})
        retries += result["core"].metrics(1.0)["producer-metrics"]["record-retry-total"]
        bumps += result["inits"] - 1
    assert retries > 0 and bumps > 0

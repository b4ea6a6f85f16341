"""Hypothesis stateful test of the producer's batch lifecycle.

A ``RuleBasedStateMachine`` drives a real ``ProducerCore`` (with the real
``Client``) against the wire-level simulated cluster of ``tests/sim/harness.py``:
hypothesis picks the interleaving of sends, simulated time, flushes, and
faults (connections cut mid-request or mid-response, brokers down and up,
leader moves, retriable Produce errors, some after the batch was written).
Hypothesis shrinks a failure to a short sequence of rules.

Invariants after every rule:

- a record (token) completes at most once; ``pending_count()`` is exactly
  the records sent and not completed;
- every acknowledged record is in its partition's log at the offset reported;
- with idempotence, an acknowledged record is in the log exactly once, and
  per partition the acknowledged records are in send order.

At teardown the faults heal and the producer must finish everything: each
record completes exactly once, nothing hangs.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.producer.events import BatchOutcome
from tests.sim.harness import API_PRODUCE, Sim, SimCluster, SimNetwork


def outcomes(core: ProducerCore) -> list[BatchOutcome]:
    """The delivery reports among the core's events (drains all of them)."""
    return [e for e in core.events() if isinstance(e, BatchOutcome)]
TOPIC = "st"
#: Retriable Produce error codes: NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS.
RETRIABLE = (6, 7, 19)


class ProducerBatches(RuleBasedStateMachine):
    """ProducerCore batch lifecycle under hypothesis-chosen workloads and faults."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Sim | None = None

    @initialize(
        seed=st.integers(0, 2**16),
        idempotent=st.booleans(),
        linger_ms=st.sampled_from([0, 5]),
        batch_size=st.sampled_from([200, 1000, 16384]),
        in_flight=st.integers(1, 5),
        partitions=st.sampled_from([1, 2, 4]),
    )
    def start(
        self, seed: int, idempotent: bool, linger_ms: int, batch_size: int, in_flight: int, partitions: int
    ) -> None:
        rng = random.Random(seed)
        self.cluster = SimCluster(rng, n_brokers=3, default_partitions=partitions)
        kwargs: dict[str, Any] = dict(
            bootstrap_servers=self.cluster.bootstrap,
            linger_ms=linger_ms,
            batch_size=batch_size,
            retry_backoff_ms=20,
            request_timeout_ms=1000,
            delivery_timeout_ms=1_000_000,
            max_in_flight_requests_per_connection=in_flight,
        )
        if idempotent:
            kwargs["enable_idempotence"] = True
        else:
            kwargs.update(acks="all", retries=1_000_000)
        self.idempotent = idempotent
        self.core = ProducerCore(ProducerConfig.from_kwargs(**kwargs), now=0.0, rng=random.Random(seed))
        self.network = SimNetwork(self.cluster, rng, latency=(0.0001, 0.01), max_chunk=rng.choice((16, 4096)))
        self.sim = Sim(self.core, self.cluster, self.network)
        self.sent = 0
        self.delivered: dict[int, tuple[int, int]] = {}
        self.failed: dict[int, Exception] = {}
        self.down: set[int] = set()

    # --- helpers -------------------------------------------------------------------

    def collect(self) -> None:
        for ev in outcomes(self.core):
            for k, tok in enumerate(ev.tokens):
                assert tok not in self.delivered and tok not in self.failed, f"token {tok} completed twice"
                if isinstance(ev, RecordsDelivered):
                    self.delivered[tok] = (ev.partition, ev.base_offset + k)
                else:
                    assert isinstance(ev, DeliveryFailed)
                    self.failed[tok] = ev.error

    def advance(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.on_step = self.collect
        self.sim.run(max_time=self.sim.now + seconds)
        self.collect()

    # --- rules -------------------------------------------------------------------------

    @precondition(lambda self: self.sim is not None)
    @rule(count=st.integers(1, 30), keyed=st.booleans(), partition=st.none() | st.integers(0, 0))
    def send(self, count: int, keyed: bool, partition: int | None) -> None:
        assert self.sim is not None
        for _ in range(count):
            i = self.sent
            ok = self.core.send(
                topic=TOPIC,
                key=b"k%d" % (i % 5) if keyed else None,
                value=b"%d" % i,
                headers=None,
                partition=partition,
                timestamp_ms=1_700_000_000_000 + i,
                token=i,
                now=self.sim.now,
            )
            assert ok  # buffer_memory is far from full here
            self.sent += 1

    @precondition(lambda self: self.sim is not None)
    @rule(seconds=st.sampled_from([0.001, 0.01, 0.05, 0.3]))
    def wait(self, seconds: float) -> None:
        self.advance(seconds)

    @precondition(lambda self: self.sim is not None)
    @rule()
    def flush(self) -> None:
        assert self.sim is not None
        self.core.flush(self.sim.now)
        self.advance(0.05)

    @precondition(lambda self: self.sim is not None)
    @rule(broker=st.integers(0, 2))
    def cut(self, broker: int) -> None:
        assert self.sim is not None
        self.network.cut_broker(sorted(self.cluster.brokers)[broker], self.sim.now)
        self.advance(0.001)

    @precondition(lambda self: self.sim is not None and len(self.down) < 2)
    @rule(broker=st.integers(0, 2))
    def broker_down(self, broker: int) -> None:
        node = sorted(self.cluster.brokers)[broker]
        self.cluster.broker_down(node)
        self.down.add(node)

    @precondition(lambda self: self.sim is not None and bool(self.down))
    @rule()
    def broker_up(self) -> None:
        node = min(self.down)
        self.cluster.broker_up(node)
        self.down.discard(node)

    @precondition(lambda self: self.sim is not None and TOPIC in self.cluster.topics)
    @rule(partition=st.integers(0, 3))
    def move_leader(self, partition: int) -> None:
        self.cluster.move_leader(TOPIC, partition % len(self.cluster.topics[TOPIC]))

    @precondition(lambda self: self.sim is not None)
    @rule(code=st.sampled_from(RETRIABLE), written=st.booleans())
    def produce_error(self, code: int, written: bool) -> None:
        self.cluster.inject(API_PRODUCE, code, append=written)

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def completions_add_up(self) -> None:
        if self.sim is None:
            return
        self.collect()
        assert self.core.pending_count() == self.sent - len(self.delivered) - len(self.failed)

    @invariant()
    def acknowledged_records_are_in_the_log(self) -> None:
        if self.sim is None or TOPIC not in self.cluster.topics:
            return
        logs = {
            p: [v for _o, _k, v in self.cluster.log(TOPIC, p).records()]
            for p in range(len(self.cluster.topics[TOPIC]))
        }
        for tok, (p, offset) in self.delivered.items():
            assert logs[p][offset] == b"%d" % tok, (tok, p, offset)
        if self.idempotent:
            for p, values in logs.items():
                acked = [int(v) for v in values if v is not None and int(v) in self.delivered]
                assert len(acked) == len(set(acked)), f"partition {p}: an acknowledged record twice"
                assert acked == sorted(acked), f"partition {p}: out of send order"

    def teardown(self) -> None:
        if self.sim is None:
            return
        for node in sorted(self.down):
            self.cluster.broker_up(node)
        self.sim.clear_actions()
        self.core.flush(self.sim.now)
        self.sim.on_step = self.collect
        done = self.sim.run(until=lambda: self.core.pending_count() == 0, max_time=self.sim.now + 120)
        self.collect()
        assert done, f"stuck: {self.core.pending_count()} pending of {self.sent}"
        assert len(self.delivered) + len(self.failed) == self.sent
        # a healed cluster, an effectively unbounded delivery timeout: nothing fails
        assert not self.failed, list(self.failed.values())[:3]
        self.acknowledged_records_are_in_the_log()


ProducerBatches.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, derandomize=True
)
test_producer_batches = ProducerBatches.TestCase

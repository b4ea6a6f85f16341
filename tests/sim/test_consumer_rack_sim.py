"""KIP-392 in simulation: a consumer in rack r2 reads from broker 2 while faults push it back to leaders.

Three brokers in racks r1..r3 select the closest replica as Kafka's
``RackAwareReplicaSelector`` does (``tests/sim/harness.py``); a consumer
with ``client_rack='r2'`` reads every partition while records keep coming.
In the fault phase, one of these hits the replica in its rack, at random
times, over and over:

* its connection is cut (mid-fetch or idle);
* it answers NOT_LEADER_OR_FOLLOWER or REPLICA_NOT_AVAILABLE;
* its log lags (OFFSET_OUT_OF_RANGE there; no reset may follow);
* it leaves the ISR, then comes back;
* it goes down (gone from Metadata), then up.

Invariants: the records of each partition are handed out in offset order,
each exactly once (no scenario seeks); after the faults every record
produced is delivered; the replica in the rack served record bytes before
the faults, and serves again once they end (the consumer follows the
leaders' redirects again).
"""

from __future__ import annotations

import os
import random

import pytest

from kproto.consumer import ConsumerConfig, TopicPartition
from kproto.consumer.core import ConsumerCore
from kproto.protocol.records import RecordBatchBuilder
from tests.sim.harness import NOT_LEADER_OR_FOLLOWER, Sim, SimCluster, SimNetwork, SimViolation

TOPIC = "racked"
PARTITIONS = 6
NEAR = 2  # the broker in the consumer's rack
REPLICA_NOT_AVAILABLE = 9
FAULTS = ("cut", "error", "lag", "isr", "down")
SEEDS = range(int(os.environ.get("KPROTO_RACK_SIM_SCENARIOS", "20")))
FAULT_PHASE = (3.0, 15.0)


class RackScenario:
    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        self.cluster = cluster = SimCluster(rng, n_brokers=3, default_partitions=PARTITIONS)
        cluster.racks = {1: "r1", 2: "r2", 3: "r3"}
        cluster.create_topic(TOPIC, 0.0, partitions=PARTITIONS)
        cfg = ConsumerConfig.from_kwargs(
            bootstrap_servers=cluster.bootstrap, client_rack="r2", auto_offset_reset="earliest",
            fetch_max_wait_ms=200, request_timeout_ms=5000, retry_backoff_ms=50,
            metadata_max_age_ms=rng.choice([2_000, 30_000]), max_poll_records=rng.choice([7, 500]),
        )
        self.core = ConsumerCore(cfg, now=0.0, rng=random.Random(seed + 1))
        self.network = SimNetwork(cluster, rng)
        self.sim = Sim(self.core, cluster, self.network)
        self.produced: dict[int, int] = dict.fromkeys(range(PARTITIONS), 0)
        self.delivered: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        #: Record bytes broker NEAR served as a follower, when the fault phase began and ended.
        self.near_served: list[int] = []
        self.faults: list[str] = []

    def produce(self) -> None:
        p = self.rng.randrange(PARTITIONS)
        log = self.cluster.log(TOPIC, p)
        b = RecordBatchBuilder()
        base = log.end_offset
        n = self.rng.randint(1, 5)
        for i in range(n):
            b.append(1_000 + int(self.sim.now * 1000), None, b"%d-%d" % (p, base + i))
        code, at = log.append(b.seal())
        assert code == 0 and at == base
        self.produced[p] = log.end_offset

    def poll(self, now: float) -> None:
        for tp, recs in self.core.poll(None, now).items():
            got = self.delivered[tp.partition]
            for r in recs:
                expected = got[-1] + 1 if got else 0
                if r.offset != expected:
                    raise SimViolation(f"{tp}: offset {r.offset} handed out after {got[-1:]}, expected {expected}")
                if r.value != b"%d-%d" % (tp.partition, r.offset):
                    raise SimViolation(f"{tp}: wrong value at {r.offset}: {r.value!r}")
                got.append(r.offset)
        self.sim.schedule(now + self.rng.uniform(0.005, 0.05), self.poll)

    def fault(self) -> None:
        kind = self.rng.choice(FAULTS)
        self.faults.append(kind)
        c, now = self.cluster, self.sim.now
        part = self.rng.randrange(PARTITIONS)
        if kind == "cut":
            self.network.cut_broker(NEAR, now)
        elif kind == "error":
            c.fetch_errors.setdefault(NEAR, []).append(
                self.rng.choice([NOT_LEADER_OR_FOLLOWER, REPLICA_NOT_AVAILABLE]))
        elif kind == "lag":
            c.lag_follower(TOPIC, part, NEAR, max(0, c.log(TOPIC, part).end_offset - self.rng.randint(1, 20)))
            self.sim.at(now + self.rng.uniform(0.2, 2.0), lambda: c.lag_follower(TOPIC, part, NEAR, None))
        elif kind == "isr":
            c.leave_isr(TOPIC, part, NEAR)
            self.sim.at(now + self.rng.uniform(0.2, 2.0), lambda: c.topics[TOPIC][part].out_of_isr.discard(NEAR))
        elif kind == "down" and c.brokers[NEAR].up:
            c.broker_down(NEAR)  # its partitions get new leaders
            self.network.cut_broker(NEAR, now)
            self.sim.at(now + self.rng.uniform(0.5, 2.0), lambda: c.broker_up(NEAR))

    def run(self) -> None:
        sim, rng = self.sim, self.rng
        self.core.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], now=0.0)
        t = 0.0
        while t < FAULT_PHASE[1] + 5:
            sim.at(t, self.produce)
            t += rng.uniform(0.01, 0.1)
        t = FAULT_PHASE[0]
        while t < FAULT_PHASE[1]:
            sim.at(t, self.fault)
            t += rng.uniform(0.2, 1.0)
        sim.at(FAULT_PHASE[0], lambda: self.near_served.append(self.cluster.brokers[NEAR].served[1]))
        sim.at(FAULT_PHASE[1] + 0.01, self.heal)
        sim.schedule(0.01, self.poll)
        sim.run(max_time=FAULT_PHASE[1] + 5)

        def caught_up() -> bool:
            return all(len(self.delivered[p]) == self.produced[p] for p in range(PARTITIONS))

        assert sim.run(until=caught_up, max_time=FAULT_PHASE[1] + 60), (
            {p: (len(self.delivered[p]), self.produced[p]) for p in range(PARTITIONS)}, self.faults)
        # One more record everywhere, once the faults are over: where does each come from?
        self.before_last = dict(self.cluster.brokers[NEAR].served_as_follower)
        for p in range(PARTITIONS):
            b = RecordBatchBuilder()
            b.append(0, None, b"%d-%d" % (p, self.produced[p]))
            self.cluster.log(TOPIC, p).append(b.seal())
            self.produced[p] += 1
        assert sim.run(until=caught_up, max_time=sim.now + 30)

    def heal(self) -> None:
        c = self.cluster
        c.broker_up(NEAR)
        for part in c.topics[TOPIC]:
            part.out_of_isr.clear()
            part.follower_end.clear()
        c.fetch_errors.clear()
        self.near_served.append(c.brokers[NEAR].served[1])


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed-{s}")
def test_rack_consumer_reads_near_replica_and_survives_its_faults(seed: int) -> None:
    s = RackScenario(seed)
    s.run()
    near = s.cluster.brokers[NEAR]
    before, at_heal = s.near_served
    assert before > 0  # the near replica served records before the faults
    assert near.served[1] > at_heal  # and again after them
    # The last record of every partition led elsewhere came from the replica in rack r2.
    for p in range(PARTITIONS):
        if s.cluster.leader(TOPIC, p) != NEAR:
            assert near.served_as_follower.get((TOPIC, p), 0) > s.before_last.get((TOPIC, p), 0), p
    assert s.faults  # the fault phase ran
    for p in range(PARTITIONS):
        assert s.delivered[p] == list(range(s.produced[p]))

"""The client core against a simulated multi-broker cluster with seeded faults.

Each seed builds a random cluster (1-5 brokers, some answering ApiVersions
only up to v2, some with lagging metadata), a random client configuration,
a workload (metadata for topics, Produce with acks 1 and 0, coordinator
lookups, transactional InitProducerId at the coordinator) and a fault
schedule (connections cut mid-request or mid-response, brokers down and
up, leaders and coordinators moved, retriable error codes, throttling)
over 20 simulated seconds. Then the faults stop and the run must converge:
the client's leaders equal the cluster's, coordinators are right, every
request has completed exactly once.

Invariants checked after every step (besides those in the harness: writes
only to open and unthrottled nodes, ``get_timer()`` never in the past after
``handle_timer``): every callback runs at most once, reconnects respect the
backoff the client announced, errors reported to callbacks are KafkaErrors,
leader epochs the client holds never go back (KIP-320).

``KPROTO_SIM_SCENARIOS`` sets the number of seeds (default 200);
``KPROTO_SIM_SEED`` runs one seed.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from kproto.client import COORDINATOR_NODE_BASE, COORDINATOR_TRANSACTION, Client, ClientConfig
from kproto.driving import Connect
from kproto.errors import KafkaError
from kproto.events import NodeDisconnected
from kproto.protocol.messages import InitProducerIdRequest, ProduceRequest
from kproto.protocol.messages.produce import PartitionProduceData, TopicProduceData
from kproto.protocol.records import RecordBatchBuilder

from .harness import (
    API_FIND_COORDINATOR,
    API_INIT_PRODUCER_ID,
    API_METADATA,
    API_PRODUCE,
    COORDINATOR_NOT_AVAILABLE,
    LEADER_NOT_AVAILABLE,
    NETWORK_EXCEPTION,
    NOT_COORDINATOR,
    NOT_LEADER_OR_FOLLOWER,
    REQUEST_TIMED_OUT,
    Sim,
    SimCluster,
    SimNetwork,
    SimViolation,
)

SCENARIOS = int(os.environ.get("KPROTO_SIM_SCENARIOS", "200"))
ONE_SEED = os.environ.get("KPROTO_SIM_SEED")
SEEDS = [int(ONE_SEED)] if ONE_SEED else list(range(SCENARIOS))

FAULT_PHASE = 20.0
SETTLE_LIMIT = 120.0


class Tracker:
    """Counts requests and their completions; a second completion is a violation."""

    def __init__(self, sim_ref: list[Sim]) -> None:
        self.sent = 0
        self.done = 0
        self.errors: list[KafkaError] = []
        self._sim = sim_ref

    def callback(self, on_result: Any = None) -> Any:
        self.sent += 1
        called = [False]

        def cb(response: Any, error: KafkaError | None) -> None:
            if called[0]:
                raise SimViolation("a callback ran twice")
            called[0] = True
            self.done += 1
            if error is not None:
                if not isinstance(error, KafkaError):
                    raise SimViolation(f"callback got a non-KafkaError {error!r}")
                self.errors.append(error)
            if on_result is not None:
                on_result(response, error)

        return cb

    @property
    def pending(self) -> int:
        return self.sent - self.done


def _batch(value: bytes) -> bytes:
    b = RecordBatchBuilder()
    b.append(0, None, value)
    return b.seal()


def run_scenario(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    n_brokers = rng.randint(1, 5)
    cluster = SimCluster(
        rng, n_brokers, default_partitions=rng.randint(1, 6), old_api_versions=rng.random() < 0.3
    )
    for b in cluster.brokers.values():
        b.metadata_lag = rng.choice([0.0, 0.0, 0.05, 0.5])
    bootstrap = [cluster.bootstrap]
    if rng.random() < 0.3:
        bootstrap.insert(0, "dead.sim:9092")  # nothing listens there
    config = ClientConfig(
        bootstrap_servers=bootstrap,
        request_timeout_ms=rng.choice([500, 2000, 5000]),
        metadata_max_age_ms=rng.choice([1000, 5000, 300000]),
        max_in_flight_requests_per_connection=rng.randint(1, 5),
        connection_setup_timeout_ms=2000,
    )
    core = Client(config, now=0.0, rng=random.Random(seed * 7919 + 1))
    network = SimNetwork(
        cluster, rng, latency=(0.0001, rng.choice([0.001, 0.02, 0.2])), max_chunk=rng.choice([1, 7, 64, 4096])
    )
    sim = Sim(core, cluster, network)
    tracker = Tracker([sim])
    topics = [f"topic-{i}" for i in range(rng.randint(1, 3))]
    txn_ids = [f"txn-{i}" for i in range(rng.randint(0, 2))]
    reconnect_at: dict[int, float] = {}
    seen_commands = [0]
    log: list[str] = []

    epochs: dict[tuple[str, int], int] = {}

    def on_step() -> None:
        for topic in core.cluster.topics:
            for p in core.cluster.partitions_for(topic) or ():
                epoch = core.cluster.leader_epoch_for(topic, p)
                if epoch is not None:
                    if epoch < epochs.get((topic, p), -1):
                        raise SimViolation(f"leader epoch of {topic}/{p} went back to {epoch} (KIP-320)")
                    epochs[(topic, p)] = epoch
        for ev in core.events():
            if isinstance(ev, NodeDisconnected):
                reconnect_at[ev.node_id] = ev.reconnect_at
        for t, cmd in sim.commands_seen[seen_commands[0] :]:
            if isinstance(cmd, Connect) and t < reconnect_at.get(cmd.node_id, -1.0) - 1e-9:
                raise SimViolation(
                    f"Connect({cmd.node_id}) at {t} before its backoff ended at {reconnect_at[cmd.node_id]}"
                )
        seen_commands[0] = len(sim.commands_seen)

    sim.on_step = on_step

    # --- workload ---------------------------------------------------------------------

    def produce(topic: str, partition: int, acks: int) -> None:
        if core.closed:
            return
        leader = core.cluster.leader_for(topic, partition)
        if leader is None:
            core.request_metadata_update(sim.now)
            return

        def on_result(response: Any, error: KafkaError | None) -> None:
            if error is not None:
                if error.refresh_metadata:
                    core.request_metadata_update(sim.now)
                return
            if response is None:
                return
            for t in response.responses:
                for p in t.partition_responses:
                    if p.error_code in (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, NETWORK_EXCEPTION):
                        core.request_metadata_update(sim.now)

        request = ProduceRequest(
            acks=acks,
            timeout_ms=1000,
            topic_data=[
                TopicProduceData(
                    name=topic, partition_data=[PartitionProduceData(index=partition, records=_batch(b"v"))]
                )
            ],
        )
        core.send(
            request,
            now=sim.now,
            node_id=leader,
            callback=tracker.callback(on_result),
            expect_response=acks != 0,
        )

    def use_coordinator(txn: str) -> None:
        if core.closed:
            return
        node = core.coordinator(txn, COORDINATOR_TRANSACTION, sim.now)
        if node is None:
            return

        def on_result(response: Any, error: KafkaError | None) -> None:
            if error is None and response.error_code in (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE):
                core.mark_coordinator_dead(txn, COORDINATOR_TRANSACTION, sim.now)

        core.send(
            InitProducerIdRequest(transactional_id=txn, transaction_timeout_ms=60000),
            now=sim.now,
            node_id=node,
            callback=tracker.callback(on_result),
        )

    def random_action() -> None:
        if core.closed:
            return
        r = rng.random()
        if r < 0.2:
            core.add_topics([rng.choice(topics)], sim.now)
        elif r < 0.7:
            topic = rng.choice(topics)
            core.add_topics([topic], sim.now)
            parts = core.cluster.partitions_for(topic)
            if parts:
                produce(topic, rng.choice(sorted(parts)), rng.choice([1, 1, 0]))
        elif txn_ids:
            use_coordinator(rng.choice(txn_ids))

    for _ in range(rng.randint(10, 150)):
        sim.at(rng.uniform(0, FAULT_PHASE), random_action)

    # --- faults -------------------------------------------------------------------------

    def fault() -> None:
        kind = rng.choice(["cut", "cut_mid", "down", "leader", "coordinator", "inject", "throttle"])
        now = sim.now
        broker_ids = sorted(cluster.brokers)
        if kind == "cut":
            open_nodes = network.open_nodes()
            if open_nodes:
                node = rng.choice(open_nodes)
                network.cut(node, now)
                log.append(f"{now:.3f} cut {node}")
        elif kind == "cut_mid":
            open_nodes = network.open_nodes()
            if open_nodes:
                node, where = rng.choice(open_nodes), rng.choice(["request", "response"])
                network.cut_mid_frame(node, where)
                log.append(f"{now:.3f} cut {node} mid-{where}")
        elif kind == "down":
            b = rng.choice(broker_ids)
            cluster.broker_down(b)
            network.cut_broker(b, now)
            sim.at(now + rng.uniform(0.1, 5.0), lambda: cluster.broker_up(b))
            log.append(f"{now:.3f} down {b}")
        elif kind == "leader" and cluster.topics:
            t = rng.choice(sorted(cluster.topics))
            p = rng.randrange(len(cluster.topics[t]))
            log.append(f"{now:.3f} leader {t}/{p} -> {cluster.move_leader(t, p)}")
        elif kind == "coordinator" and txn_ids:
            txn = rng.choice(txn_ids)
            log.append(
                f"{now:.3f} coordinator {txn} -> {cluster.move_coordinator(COORDINATOR_TRANSACTION, txn)}"
            )
        elif kind == "inject":
            api, code = rng.choice(
                [
                    (API_PRODUCE, NOT_LEADER_OR_FOLLOWER),
                    (API_PRODUCE, REQUEST_TIMED_OUT),
                    (API_PRODUCE, NETWORK_EXCEPTION),
                    (API_FIND_COORDINATOR, COORDINATOR_NOT_AVAILABLE),
                    (API_FIND_COORDINATOR, NOT_COORDINATOR),
                    (API_INIT_PRODUCER_ID, COORDINATOR_NOT_AVAILABLE),
                    (API_METADATA, LEADER_NOT_AVAILABLE),
                    (API_PRODUCE, LEADER_NOT_AVAILABLE),
                ]
            )
            cluster.inject(api, code, count=rng.randint(1, 3), append=rng.random() < 0.5)
            log.append(f"{now:.3f} inject {api} {code}")
        elif kind == "throttle":
            b = rng.choice(broker_ids)
            cluster.throttle(b, rng.choice([10, 200, 1500]))
            log.append(f"{now:.3f} throttle {b}")

    for _ in range(rng.randint(0, 25)):
        sim.at(rng.uniform(0, FAULT_PHASE), fault)

    sim.run(max_time=FAULT_PHASE)

    # --- settle: no more faults; keep using every partition and coordinator -----------------

    for b in cluster.brokers:
        cluster.broker_up(b)
    cluster._injected.clear()
    core.add_topics(topics, sim.now)

    def keep_using() -> None:
        if core.closed:
            return
        for topic in topics:
            for p in sorted(core.cluster.partitions_for(topic) or ()):
                produce(topic, p, 1)
        for txn in txn_ids:
            use_coordinator(txn)
        sim.at(sim.now + 1.0, keep_using)

    sim.at(sim.now + 0.5, keep_using)

    def converged() -> bool:
        for topic in topics:
            parts = cluster.topics.get(topic)
            if parts is None or core.cluster.partitions_for(topic) != set(range(len(parts))):
                return False
            for p in range(len(parts)):
                if core.cluster.leader_for(topic, p) != cluster.leader(topic, p):
                    return False
        for txn in txn_ids:
            node = core.coordinator(txn, COORDINATOR_TRANSACTION, sim.now)
            if node is None or COORDINATOR_NODE_BASE - node != cluster.coordinator_of(
                COORDINATOR_TRANSACTION, txn
            ):
                return False
        return True

    ok = sim.run(until=converged, max_time=FAULT_PHASE + SETTLE_LIMIT)
    assert ok, f"seed {seed}: no convergence by t={sim.now:.2f}; faults: {log}"
    # Stop the workload, let everything in flight finish, then close.
    core_close_at = sim.now
    sim.clear_actions()
    sim.run(until=lambda: tracker.pending == 0, max_time=core_close_at + 60)
    assert tracker.pending == 0, f"seed {seed}: {tracker.pending} requests never completed"
    core.close(sim.now)
    sim.step()
    assert core.get_timer() is None
    return {
        "steps": sim.steps,
        "sent": tracker.sent,
        "errors": len(tracker.errors),
        "faults": len(log),
        "mid_frame_cuts": network.mid_frame_cuts,
    }


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed-{s}")
def test_client_converges_under_faults(seed: int) -> None:
    print(f"sim seed {seed} (rerun: KPROTO_SIM_SEED={seed} pytest tests/sim/test_client_sim.py)")
    stats = run_scenario(seed)
    assert stats["sent"] >= 0 and stats["steps"] > 0


def test_the_fault_mix_is_not_a_no_op() -> None:
    """Across a few seeds, faults land, requests fail and recover, frames are cut in half."""
    stats = [run_scenario(seed) for seed in range(40)]
    assert sum(s["faults"] for s in stats) > 100
    assert sum(s["errors"] for s in stats) > 20
    assert sum(s["mid_frame_cuts"] for s in stats) > 5

"""The cores' typed events in simulation: what the logs, hooks and metrics are made of.

One consumer joins a group on the simulated cluster; the test reads its
events (``ConsumerCore.events()``, the client's forwarded ones included):
the negotiated API versions, the assignment with member id and generation,
a heartbeat error, a leader that moved, a commit, and the per-request
events the transports turn on for latency metrics and broker hooks.
"""

from __future__ import annotations

import random

from kproto.consumer import (
    CommitCompleted,
    ConsumerConfig,
    GroupRequestFailed,
    PartitionsAssigned,
    PartitionsRevoked,
    TopicPartition,
)
from kproto.consumer.core import ConsumerCore
from kproto.errors import MemberIdRequiredError, RebalanceInProgressError
from kproto.events import Event, MetadataUpdated, NodeReady, RequestCompleted, RequestWritten
from tests.sim.harness import MultiSim, SimCluster

HEARTBEAT = 12
FETCH = 1
OFFSET_COMMIT = 8


def group_member(
    rng: random.Random, partitions: int, **options: object
) -> tuple[SimCluster, MultiSim, ConsumerCore]:
    """One consumer of group ``g`` subscribed to topic ``t`` on a 3-broker simulated cluster."""
    cluster = SimCluster(rng, n_brokers=3, default_partitions=partitions)
    cluster.create_topic("t", 0.0, partitions=partitions)
    sim = MultiSim(cluster, rng)
    cfg = ConsumerConfig.from_kwargs(
        bootstrap_servers=cluster.bootstrap, group_id="g", auto_offset_reset="earliest", **options
    )
    core = ConsumerCore(cfg, now=0.0, rng=random.Random(1))
    core._client.observe_requests = 2  # as the transports' Observer does for broker hooks
    core.subscribe(["t"], now=0.0)
    sim.add("c", core)
    return cluster, sim, core


def test_consumer_events_name_the_broker_the_group_and_the_assignment() -> None:
    cluster, sim, core = group_member(
        random.Random(5), 2,
        heartbeat_interval_ms=100, session_timeout_ms=3000, fetch_max_wait_ms=100, metadata_max_age_ms=500,
    )  # fmt: skip

    def poll(now: float) -> None:
        core.poll(None, now)  # a rebalance a heartbeat announced is acted on here (KIP-62)
        sim.schedule(now + 0.05, poll)

    sim.schedule(0.0, poll)
    events: list[Event] = []
    sim.on_step = lambda: events.extend(core.events())

    def of(cls: type) -> list[Event]:
        return [e for e in events if isinstance(e, cls)]

    assert sim.run(until=lambda: bool(of(PartitionsAssigned)), max_time=30.0)
    (assigned,) = of(PartitionsAssigned)
    assert isinstance(assigned, PartitionsAssigned)
    tps = frozenset({TopicPartition("t", 0), TopicPartition("t", 1)})
    assert assigned.group_id == "g" and assigned.member_id and assigned.generation >= 1
    assert assigned.partitions == assigned.added == tps and not assigned.revoked
    assert assigned.rebalance_time >= 0
    ready = of(NodeReady)
    assert ready and all(isinstance(e, NodeReady) and e.api_versions.get(FETCH, -1) >= 4 for e in ready)

    # A heartbeat refused with REBALANCE_IN_PROGRESS: the error is an event, the member rejoins.
    def group_failures(request: str) -> list[GroupRequestFailed]:
        return [e for e in events if isinstance(e, GroupRequestFailed) and e.request == request]

    # The first JoinGroup is answered MEMBER_ID_REQUIRED (KIP-394): an event too.
    assert [type(e.error) for e in group_failures("JoinGroup")] == [MemberIdRequiredError]
    cluster.inject(HEARTBEAT, RebalanceInProgressError.errno)
    assert sim.run(until=lambda: bool(group_failures("Heartbeat")), max_time=sim.now + 10)
    (failed,) = group_failures("Heartbeat")
    assert isinstance(failed.error, RebalanceInProgressError)
    assert sim.run(until=lambda: len(of(PartitionsAssigned)) == 2, max_time=sim.now + 30)
    revoked = [e for e in of(PartitionsRevoked) if isinstance(e, PartitionsRevoked)]
    assert revoked and revoked[0].partitions == tps and not revoked[0].lost  # eager: revoked before rejoining

    # A leader moves: the next metadata names it.
    old = cluster.leader("t", 0)
    new = cluster.move_leader("t", 0)
    assert sim.run(
        until=lambda: any(isinstance(e, MetadataUpdated) and e.leaders_moved for e in events), max_time=sim.now + 10
    )
    moved = [m for e in events if isinstance(e, MetadataUpdated) for m in e.leaders_moved]
    assert ("t", 0, old, new) in moved

    # A commit.
    core.commit({TopicPartition("t", 0): 0}, sim.now)
    assert sim.run(until=lambda: bool(of(CommitCompleted)), max_time=sim.now + 10)
    (commit,) = of(CommitCompleted)
    assert isinstance(commit, CommitCompleted) and commit.error is None

    # Every request written is answered by a RequestCompleted with its size and latency.
    done = [e for e in of(RequestCompleted) if isinstance(e, RequestCompleted)]
    assert {FETCH, HEARTBEAT, OFFSET_COMMIT} <= {e.api_key for e in done}
    assert all(e.latency >= 0 and e.response_bytes > 8 for e in done)
    assert {e.api_key for e in of(RequestWritten)} >= {e.api_key for e in done}

"""Consumer groups in simulation: several ``ConsumerCore`` members against a SimCluster.

Each scenario is seeded (``pytest tests/sim -k 'seed-123'`` reruns one) and
mixes a fault family with a steady trickle of produced records:

* ``coordinator``: the group coordinator moves (NOT_COORDINATOR, reload);
* ``storm``: members join and leave (LeaveGroup) in quick succession;
* ``crash``: members die without a word (their sessions time out), or the
  coordinator drops a live one (a zombie that must find out and rejoin);
* ``leaders``: partition leaders move, and fetch connections are cut mid-fetch.

Invariants, checked on every step or at the end:

1. no two members own a partition in the same generation (as the members see
   it, and in the assignments the coordinator handed out);
2. committed offsets never go backwards (no scenario seeks);
3. every record produced is delivered at least once to the group.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from kproto.consumer import ConsumerConfig, ConsumerRebalanceListener, TopicPartition
from kproto.consumer.assignors import decode_assignment
from kproto.consumer.core import ConsumerCore
from kproto.protocol.records import RecordBatchBuilder
from tests.sim.harness import MultiSim, SimCluster, SimViolation

TOPIC = "events"
GROUP = "sim-group"
PARTITIONS = 6
KINDS = ("coordinator", "storm", "crash", "leaders")
SEEDS = range(int(os.environ.get("KPROTO_GROUP_SIM_FIRST_SEED", "0")), int(os.environ.get("KPROTO_GROUP_SIM_FIRST_SEED", "0")) + int(os.environ.get("KPROTO_GROUP_SIM_SCENARIOS", "56")))
FAULT_PHASE = 12.0  # faults and production run this long; then the group must settle


class _Listener(ConsumerRebalanceListener):
    def __init__(self, member: _Member) -> None:
        self.member = member

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.member.revoked.append(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.member.assigned.append(set(assigned))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.member.lost.append(set(lost))


class _Member:
    def __init__(self, name: str, core: ConsumerCore) -> None:
        self.name = name
        self.core = core
        self.revoked: list[set[TopicPartition]] = []
        self.assigned: list[set[TopicPartition]] = []
        self.lost: list[set[TopicPartition]] = []
        self.closing = False


class GroupScenario:
    def __init__(self, seed: int, kind: str, strategy: list[str] | None = None) -> None:
        self.seed = seed
        self.kind = kind
        self.rng = random.Random(seed)
        self.cluster = SimCluster(self.rng, n_brokers=3, default_partitions=PARTITIONS)
        self.cluster.create_topic(TOPIC, 0.0, partitions=PARTITIONS)
        self.sim = MultiSim(self.cluster, self.rng)
        self.sim.on_step = self.check_ownership
        self.strategy = self.rng.choice(
            [
                ["range"],
                ["roundrobin"],
                ["sticky"],
                ["range", "roundrobin"],
                ["cooperative-sticky"],
                ["cooperative-sticky"],
            ]
        )
        if strategy is not None:
            self.strategy = strategy
        self.members: dict[str, _Member] = {}
        self.gone: list[_Member] = []
        self._names = 0
        self.produced: dict[tuple[int, int], bytes] = {}
        self.delivered: dict[tuple[int, int], bytes | None] = {}
        #: (generation, tp) -> the member that owned it then (invariant 1).
        self.owners: dict[tuple[int, TopicPartition], str] = {}
        self.crashes = 0

    # --- workload -----------------------------------------------------------------

    def produce(self) -> None:
        p = self.rng.randrange(PARTITIONS)
        log = self.cluster.log(TOPIC, p)
        b = RecordBatchBuilder()
        base = log.end_offset
        n = self.rng.randint(1, 4)
        for i in range(n):
            b.append(1_000 + int(self.sim.now * 1000), f"k{p}".encode(), f"v-{p}-{base + i}".encode())
        code, at = log.append(b.seal())
        assert code == 0 and at == base
        for i in range(n):
            self.produced[(p, base + i)] = f"v-{p}-{base + i}".encode()

    def start_member(self) -> str:
        self._names += 1
        name = f"c{self._names}"
        cfg = ConsumerConfig.from_kwargs(
            bootstrap_servers=self.cluster.bootstrap,
            client_id=name,
            group_id=GROUP,
            auto_offset_reset="earliest",
            session_timeout_ms=3000,
            heartbeat_interval_ms=500,
            max_poll_interval_ms=8000,
            auto_commit_interval_ms=self.rng.choice([200, 500, 1000]),
            partition_assignment_strategy=self.strategy,
            fetch_max_wait_ms=200,
            request_timeout_ms=5000,
            retry_backoff_ms=50,
            max_poll_records=self.rng.choice([5, 50, 500]),
        )
        core = ConsumerCore(cfg, now=self.sim.now, rng=random.Random(self.rng.random()))
        member = self.members[name] = _Member(name, core)
        core.subscribe([TOPIC], now=self.sim.now, listener=_Listener(member))
        self.sim.add(name, core)
        self.sim.schedule(self.sim.now + self.rng.uniform(0.0, 0.1), self._poll, name)
        return name

    def _poll(self, name: str, now: float) -> None:
        member = self.members.get(name)
        if member is None or member.closing:
            return
        for tp, recs in member.core.poll(None, now).items():
            for r in recs:
                self.delivered[(tp.partition, r.offset)] = r.value
        if self.rng.random() < 0.05:
            member.core.commit(None, now)  # a manual commit now and then, on top of auto-commit
        self.sim.schedule(now + self.rng.uniform(0.01, 0.25), self._poll, name)

    def close_member(self, name: str) -> None:
        member = self.members.get(name)
        if member is None or member.closing:
            return
        member.closing = True
        done = member.core.close(self.sim.now)

        def finished(_: Any) -> None:
            if name in self.sim.cores:
                self.sim.crash(name)  # closed: stop driving it (nothing more to say to the brokers)
            self.gone.append(self.members.pop(name))

        done.add_done_callback(finished)

    def crash_member(self, name: str) -> None:
        member = self.members.pop(name, None)
        if member is None:
            return
        self.gone.append(member)
        self.crashes += 1
        self.sim.crash(name)

    # --- invariants -------------------------------------------------------------------

    def check_ownership(self) -> None:
        for name, member in self.members.items():
            group = member.core._group
            if group is None or not group.stable:
                continue
            for tp in member.core.assignment():
                owner = self.owners.setdefault((group.generation, tp), name)
                if owner != name:
                    raise SimViolation(
                        f"seed {self.seed}: {tp} owned by {owner} and {name} in generation {group.generation} "
                        f"at t={self.sim.now:.3f}"
                    )

    def check_coordinator_assignments(self) -> None:
        group = self.cluster.groups[GROUP]
        for generation, plan in group.generations.items():
            seen: dict[TopicPartition, str] = {}
            for mid, raw in plan.items():
                for tp in decode_assignment(raw):
                    assert tp not in seen, f"generation {generation}: {tp} given to {seen[tp]} and {mid}"
                    seen[tp] = mid

    def check_commits_monotonic(self) -> None:
        """Invariant 2: a partition's committed offset never goes backwards.

        Nobody seeks in these scenarios, so every accepted commit must be at
        least the one before it, whichever member and generation sent it.
        A retried commit leaves out partitions a later commit has taken over
        (``ConsumerCore.commit``), which is what keeps this strict.
        """
        group = self.cluster.groups[GROUP]
        last: dict[tuple[str, int], int] = {}
        for t, tp, offset, generation, member in group.commits:
            prev = last.get(tp)
            assert prev is None or offset >= prev, (
                f"seed {self.seed}: commit of {tp} went back from {prev} to {offset} at t={t:.3f} "
                f"(generation {generation}, {member})"
            )
            last[tp] = offset

    def settled(self) -> bool:
        if not self.members or any(m.closing for m in self.members.values()):
            return False
        group = self.cluster.groups.get(GROUP)
        if group is None or group.state != "Stable":
            return False
        gens = set()
        for m in self.members.values():
            g = m.core._group
            if g is None or not g.stable:
                return False
            gens.add(g.generation)
        if gens != {group.generation}:
            return False
        if set(group.members) != {m.core._group.member_id for m in self.members.values() if m.core._group}:
            return False  # a crashed member's session has not timed out yet
        return all(k in self.delivered for k in self.produced)

    # --- the run ------------------------------------------------------------------------

    def run(self) -> None:
        rng, sim = self.rng, self.sim
        for _ in range(rng.randint(2, 4)):
            self.start_member()
        t = 0.0
        while t < FAULT_PHASE:
            t += rng.uniform(0.02, 0.3)
            sim.at(t, self.produce)
        self.schedule_faults()
        sim.run(max_time=FAULT_PHASE)
        if not self.members:
            self.start_member()
        ok = sim.run(until=self.settled, max_time=FAULT_PHASE + 90)
        missing = sorted(k for k in self.produced if k not in self.delivered)
        assert ok, (
            f"seed {self.seed} ({self.kind}): not settled at t={sim.now:.2f}: group "
            f"{self.cluster.groups[GROUP].state} gen {self.cluster.groups[GROUP].generation}, members "
            f"{[(n, m.core._group.state if m.core._group else None) for n, m in self.members.items()]}, "
            f"{len(missing)} records never delivered: {missing[:10]}"
        )
        for key, value in self.produced.items():
            assert self.delivered[key] == value, (
                f"{key}: delivered {self.delivered[key]!r}, produced {value!r}"
            )
        self.check_coordinator_assignments()
        self.check_commits_monotonic()
        # The final generation covers every partition.
        final = set().union(*(m.core.assignment() for m in self.members.values()))
        assert final == {TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
        self.check_faults_happened()

    def check_faults_happened(self) -> None:
        group = self.cluster.groups[GROUP]
        answers = group.answers
        assert answers.get((11, 79), 0) >= 1, "every member's first JoinGroup gets MEMBER_ID_REQUIRED"
        if self.kind == "coordinator":
            assert sum(n for (api, code), n in answers.items() if code == 16) >= 1, "no NOT_COORDINATOR"
        if self.kind == "storm":
            assert group.generation >= 3
        if self.kind == "crash" and self.crashes:
            assert group.expired, "a crashed member's session never timed out"

    def schedule_faults(self) -> None:
        rng, sim = self.rng, self.sim
        times = sorted(rng.uniform(0.5, FAULT_PHASE - 0.5) for _ in range(rng.randint(3, 8)))
        for at in times:
            if self.kind == "coordinator":
                sim.at(at, lambda: self.cluster.move_coordinator(0, GROUP))
            elif self.kind == "storm":
                sim.at(at, self._storm_step)
            elif self.kind == "crash":
                sim.at(at, self._crash_step)
            else:
                sim.at(at, self._leader_step)

    def _storm_step(self) -> None:
        live = sorted(n for n, m in self.members.items() if not m.closing)
        if len(live) < 2 or (len(live) < 6 and self.rng.random() < 0.5):
            self.start_member()
        else:
            self.close_member(self.rng.choice(live))

    def _crash_step(self) -> None:
        live = sorted(n for n, m in self.members.items() if not m.closing)
        roll = self.rng.random()
        if len(live) >= 2 and roll < 0.45:
            self.crash_member(self.rng.choice(live))
        elif live and roll < 0.7:
            # A zombie: the coordinator drops a live member (its heartbeats were lost); the member
            # learns it from UNKNOWN_MEMBER_ID, loses its partitions and joins again.
            group = self.members[self.rng.choice(live)].core._group
            if group is not None and group.member_id:
                self.cluster.group(GROUP).expire(group.member_id, self.sim.now)
        else:
            self.start_member()

    def _leader_step(self) -> None:
        p = self.rng.randrange(PARTITIONS)
        old = self.cluster.leader(TOPIC, p)
        self.cluster.move_leader(TOPIC, p)
        if self.rng.random() < 0.5:
            # Cut one member's connection to the old leader, whatever fetch is in flight on it.
            live = sorted(self.members)
            if live:
                _core, net = self.sim.cores[self.rng.choice(live)]
                for node_id, conn in list(net.conns.items()):
                    if conn.broker is not None and conn.broker.node_id == old:
                        net.cut(node_id, self.sim.now)


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed-{s}" for s in SEEDS])
def test_consumer_group_scenario(seed: int) -> None:
    GroupScenario(seed, KINDS[seed % len(KINDS)]).run()


def test_scenario_is_reproducible() -> None:
    a, b = GroupScenario(7, "storm"), GroupScenario(7, "storm")
    a.run()
    b.run()
    assert a.cluster.groups[GROUP].commits == b.cluster.groups[GROUP].commits
    assert a.sim.steps == b.sim.steps


def test_member_id_required_then_rebalance_on_crash() -> None:
    """KIP-394 first join, then a crashed member's session times out and the survivor takes everything."""
    s = GroupScenario(1000, "crash")
    a = s.start_member()
    b = s.start_member()
    s.sim.run(until=s.settled, max_time=20)
    group = s.cluster.groups[GROUP]
    gen = group.generation
    assert len(group.members) == 2 and all(m.startswith("member-") for m in group.members)
    assert s.members[a].core.assignment() and s.members[b].core.assignment()
    s.crash_member(b)
    assert s.sim.run(
        until=lambda: (
            s.members[a].core.assignment() == {TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
            and s.settled()
        ),
        max_time=40,
    )
    assert group.generation > gen and list(group.members) == [s.members[a].core._group.member_id]
    assert s.members[a].revoked, "the survivor revoked its partitions before rejoining (eager)"


@pytest.mark.parametrize("seed", range(4))
def test_cooperative_rebalance_revokes_only_moved_partitions(seed: int) -> None:
    """KIP-429 in the sim: a third member joins two; each old member revokes just what moves to it."""
    s = GroupScenario(2000 + seed, "storm", strategy=["cooperative-sticky"])
    a, b = s.start_member(), s.start_member()
    assert s.sim.run(until=s.settled, max_time=20)
    s.sim.run(max_time=s.sim.now + 1)  # the members poll: their listeners run
    before = {n: s.members[n].core.assignment() for n in (a, b)}
    assert sorted(len(x) for x in before.values()) == [3, 3]
    marks = {n: (len(s.members[n].revoked), len(s.members[n].assigned)) for n in (a, b)}
    gen = s.cluster.groups[GROUP].generation
    emptied: list[str] = []

    def watch() -> None:
        s.check_ownership()
        emptied.extend(n for n in (a, b) if not s.members[n].core.assignment())

    s.sim.on_step = watch
    c = s.start_member()
    assert s.sim.run(
        until=lambda: s.settled() and all(s.members[n].core.assignment() for n in (a, b, c)), max_time=40
    )
    s.sim.run(max_time=s.sim.now + 1)
    after = {n: s.members[n].core.assignment() for n in (a, b, c)}
    assert sorted(len(x) for x in after.values()) == [2, 2, 2]
    assert s.cluster.groups[GROUP].generation == gen + 2  # one round to revoke, one to hand out
    assert not emptied, "a cooperative member never gives up everything"
    moved: set[TopicPartition] = set()
    for n in (a, b):
        m = s.members[n]
        revoked = m.revoked[marks[n][0] :]
        assert after[n] <= before[n]  # kept the rest
        assert revoked == [before[n] - after[n]] and len(revoked[0]) == 1  # just what moved, once
        assert all(new == set() for new in m.assigned[marks[n][1] :]), (m.assigned, marks[n])
        assert not m.lost
        moved |= revoked[0]
    assert after[c] == moved
    assert set().union(*(s.members[c].assigned)) == moved


def test_eager_rebalance_revokes_everything() -> None:
    """The contrast: with ``sticky`` (eager) the same join revokes every partition first."""
    s = GroupScenario(2100, "storm", strategy=["sticky"])
    a, b = s.start_member(), s.start_member()
    assert s.sim.run(until=s.settled, max_time=20)
    before = {n: s.members[n].core.assignment() for n in (a, b)}
    marks = {n: len(s.members[n].revoked) for n in (a, b)}
    s.start_member()
    assert s.sim.run(
        until=lambda: (
            s.settled() and len(s.members) == 3 and all(m.core.assignment() for m in s.members.values())
        ),
        max_time=40,
    )
    for n in (a, b):
        assert s.members[n].revoked[marks[n]] == before[n]


def test_illegal_generation_on_heartbeat_loses_partitions_and_rejoins() -> None:
    """ILLEGAL_GENERATION: the member's partitions are lost (not revoked); it rejoins with its member id."""
    s = GroupScenario(3000, "crash", strategy=["range"])
    a = s.start_member()
    assert s.sim.run(until=s.settled, max_time=20)
    s.sim.run(max_time=s.sim.now + 1)
    member = s.members[a]
    owned = member.core.assignment()
    group = member.core._group
    assert group is not None and owned
    member_id, generation = group.member_id, group.generation
    s.cluster.inject(12, 22)  # the next Heartbeat answer: ILLEGAL_GENERATION
    assert s.sim.run(until=lambda: bool(member.lost), max_time=s.sim.now + 5)
    assert member.lost == [owned]
    assert s.sim.run(until=lambda: s.settled() and group.generation > generation, max_time=s.sim.now + 20)
    s.sim.run(max_time=s.sim.now + 1)
    assert group.member_id == member_id  # kept its member id, so no MEMBER_ID_REQUIRED round
    assert member.core.assignment() == owned and member.assigned[-1] == owned

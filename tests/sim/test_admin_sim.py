"""The admin core against a simulated cluster whose coordinator moves and whose controller changes.

Each seed runs a workload of admin calls over a fault phase (group
coordinators moved, the controller changed, partition leaders moved,
connections cut mid-request or mid-response, a broker down for a while),
then stops the faults and checks convergence:

- every op finishes by its deadline (a retried op never outlives it), and
  every resource it named has exactly one result or one error;
- what an op reports matches the cluster: a topic reported created exists,
  offsets reported committed are the group's, a group's offsets read back
  after the faults are the last ones written;
- errors are final broker errors or ``KafkaTimeoutError`` (retriable causes
  exhausted), never a crash; after the faults, fresh calls all succeed.

``KPROTO_SIM_SCENARIOS`` sets the number of seeds (default 30);
``KPROTO_SIM_SEED`` runs one seed.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from kproto.admin import AdminConfig, AdminCore, AdminOp, ConfigResource
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from .admin_broker import install
from .harness import Sim, SimCluster, SimNetwork, SimViolation

SCENARIOS = int(os.environ.get("KPROTO_SIM_SCENARIOS", "30"))
ONE_SEED = os.environ.get("KPROTO_SIM_SEED")
SEEDS = [int(ONE_SEED)] if ONE_SEED else list(range(SCENARIOS))

FAULT_PHASE = 20.0
API_TIMEOUT_MS = 8000
#: A broker stays down up to this long: longer than an op's deadline, so some ops time out.
DOWN_MAX = 10.0


def _setup(seed: int) -> tuple[random.Random, SimCluster, AdminCore, Sim]:
    rng = random.Random(seed)
    cluster = SimCluster(rng, rng.randint(2, 4), default_partitions=3)
    install(cluster)
    config = AdminConfig(
        bootstrap_servers=cluster.bootstrap,
        request_timeout_ms=rng.choice([500, 2000, 5000]),
        default_api_timeout_ms=API_TIMEOUT_MS,
        retry_backoff_ms=rng.choice([10, 100, 300]),
        reconnect_backoff_ms=20,
        reconnect_backoff_max_ms=500,
    )
    core = AdminCore(config, now=0.0, rng=random.Random(seed + 1))
    sim = Sim(core, cluster, SimNetwork(cluster, rng))
    tracked: list[AdminOp] = []
    for name in (
        "create_topics",
        "list_offsets",
        "delete_records",
        "alter_consumer_group_offsets",
        "list_consumer_group_offsets",
        "describe_consumer_groups",
    ):
        setattr(core, name, _tracking(getattr(core, name), tracked))

    def no_op_outlives_its_deadline() -> None:
        for op in tracked:
            if not op.done and sim.now > op.deadline:
                raise SimViolation(f"seed {seed}: {op!r} open at {sim.now}, past its deadline {op.deadline}")

    sim.on_step = no_op_outlives_its_deadline
    return rng, cluster, core, sim


def _tracking(method: Any, tracked: list[AdminOp]) -> Any:
    def call(*args: Any, **kwargs: Any) -> AdminOp:
        op: AdminOp = method(*args, **kwargs)
        tracked.append(op)
        return op

    return call


def _check_done(op: AdminOp, keys: set[Any], now: float) -> None:
    if not op.done:
        raise SimViolation(f"{op!r} still open at {now}, deadline {op.deadline}")
    if set(op.results) | set(op.errors) != keys or set(op.results) & set(op.errors):
        raise SimViolation(f"{op!r}: resources {sorted(map(str, keys))} not each settled once")
    for err in op.errors.values():
        if not isinstance(err, KafkaError):
            raise SimViolation(f"{op!r}: error {err!r} is not a KafkaError")


def _faults(rng: random.Random, cluster: SimCluster, sim: Sim, kinds: list[str]) -> None:
    t = 0.5
    while t < FAULT_PHASE:
        kind = rng.choice(kinds)
        if kind == "cut":
            sim.at(t, lambda: sim.network.cut(rng.choice(sim.network.open_nodes() or [0]), sim.now))
        elif kind == "down":
            victim = rng.choice(sorted(cluster.brokers))
            sim.at(t, lambda v=victim: cluster.broker_down(v))  # type: ignore[misc]
            sim.at(t + rng.uniform(0.5, DOWN_MAX), lambda v=victim: cluster.broker_up(v))  # type: ignore[misc]
        elif kind == "controller":
            sim.at(t, lambda: setattr(cluster, "controller_id", rng.choice(sorted(cluster.brokers))))
        elif kind == "coordinator":
            sim.at(t, lambda: cluster.move_coordinator(0, rng.choice(["g0", "g1", "g2"])))
        elif kind == "leader":
            sim.at(
                t, lambda: cluster.move_leader("data", rng.randrange(3)) if "data" in cluster.topics else None
            )
        t += rng.uniform(0.1, 1.5)


def _drain(sim: Sim, ops: list[AdminOp]) -> None:
    # Every broker is back by FAULT_PHASE + DOWN_MAX; every op is done by its deadline.
    sim.run(max_time=FAULT_PHASE + DOWN_MAX + 0.1)
    sim.run(until=lambda: all(op.done for op in ops), max_time=sim.now + API_TIMEOUT_MS / 1000 + 1)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed-{s}")
def test_groups_while_the_coordinator_moves(seed: int) -> None:
    rng, cluster, core, sim = _setup(seed)
    _faults(rng, cluster, sim, ["cut", "coordinator", "coordinator", "down"])
    ops: list[tuple[AdminOp, set[Any], str, dict[TopicPartition, OffsetAndMetadata] | None]] = []
    written: dict[str, list[tuple[AdminOp, dict[TopicPartition, OffsetAndMetadata]]]] = {}

    def issue(t: float) -> None:
        gid = rng.choice(["g0", "g1", "g2"])
        cluster.group(gid)
        if rng.random() < 0.5:
            offs = {TopicPartition("data", p): OffsetAndMetadata(rng.randrange(1000), "") for p in range(3)}
            op = core.alter_consumer_group_offsets(gid, offs, now=sim.now)
            ops.append((op, {gid}, gid, offs))
            written.setdefault(gid, []).append((op, offs))
        elif rng.random() < 0.5:
            op = core.list_consumer_group_offsets(gid, now=sim.now)
            ops.append((op, {gid}, gid, None))
        else:
            op = core.describe_consumer_groups([gid], now=sim.now)
            ops.append((op, {gid}, gid, None))

    t = 0.2
    while t < FAULT_PHASE:
        sim.at(t, lambda t=t: issue(t))  # type: ignore[misc]
        t += rng.uniform(0.2, 2.0)
    sim.run(max_time=FAULT_PHASE)
    _drain(sim, [o for o, *_ in ops])
    for op, keys, gid, offs in ops:
        _check_done(op, keys, sim.now)
        for err in op.errors.values():
            if not isinstance(err, KafkaTimeoutError):
                raise SimViolation(
                    f"seed {seed}: {op!r} failed with {err!r} (only timeouts are allowed here)"
                )
        if offs is not None and gid in op.results and op.results[gid] != {tp: None for tp in offs}:
            raise SimViolation(f"seed {seed}: {op!r} reported {op.results[gid]}")
    # Faults over: the last offsets that succeeded are what the group holds, read through the core.
    for gid, writes in written.items():
        done = [offs for op, offs in writes if gid in op.results]
        check = core.list_consumer_group_offsets(gid, now=sim.now)
        _drain(sim, [check])
        assert gid in check.results, f"seed {seed}: {check.errors}"
        held = {(tp.topic, tp.partition): (o.offset, o.metadata) for tp, o in check.results[gid].items()}
        assert held == cluster.groups[gid].offsets
        if done:
            # The last acknowledged write wins unless a later, timed-out one landed (its answer was lost).
            later = [offs for op, offs in writes if gid not in op.results]
            candidates = [done[-1], *later]
            assert any(check.results[gid] == offs for offs in candidates)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed-{s}")
def test_topics_while_the_controller_changes(seed: int) -> None:
    rng, cluster, core, sim = _setup(seed)
    cluster.create_topic("data", 0.0)
    _faults(rng, cluster, sim, ["cut", "controller", "controller", "down", "leader"])
    creates: list[tuple[AdminOp, str]] = []
    others: list[tuple[AdminOp, set[Any]]] = []
    counter = iter(range(10_000))

    def issue() -> None:
        r = rng.random()
        if r < 0.5:
            name = f"t{next(counter)}"
            creates.append((core.create_topics([name], now=sim.now), name))
        elif r < 0.75:
            specs = {TopicPartition("data", p): -1 for p in range(3)}
            others.append((core.list_offsets(specs, now=sim.now), set(specs)))
        else:
            specs = {TopicPartition("data", p): 0 for p in range(3)}
            others.append((core.delete_records(specs, now=sim.now), set(specs)))

    t = 0.2
    while t < FAULT_PHASE:
        sim.at(t, issue)
        t += rng.uniform(0.2, 1.5)
    sim.run(max_time=FAULT_PHASE)
    _drain(sim, [o for o, _ in creates] + [o for o, _ in others])
    for op, name in creates:
        _check_done(op, {name}, sim.now)
        if name in op.results and name not in cluster.topics:
            raise SimViolation(f"seed {seed}: {name} reported created but absent")
        err = op.errors.get(name)
        # TOPIC_ALREADY_EXISTS: an earlier attempt landed and its answer was lost (Java reports the same).
        if err is not None and not isinstance(err, KafkaTimeoutError | TopicAlreadyExistsError):
            raise SimViolation(f"seed {seed}: create {name} failed with {err!r}")
    for op, keys in others:
        _check_done(op, keys, sim.now)
        for err in op.errors.values():
            if not isinstance(err, KafkaTimeoutError):
                raise SimViolation(f"seed {seed}: {op!r} failed with {err!r}")
    # Faults over: a new controller, a fresh create succeeds at it.
    cluster.controller_id = rng.choice(sorted(cluster.brokers))
    final = core.create_topics(["final"], now=sim.now)
    offsets = core.list_offsets({TopicPartition("data", p): -1 for p in range(3)}, now=sim.now)
    _drain(sim, [final, offsets])
    assert final.results.keys() == {"final"}, f"seed {seed}: {final.errors}"
    assert "final" in cluster.topics
    assert set(offsets.results) == {TopicPartition("data", p) for p in range(3)}, offsets.errors


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed-{s}")
def test_hostile_answers_fail_entries_never_the_core(seed: int) -> None:
    """Brokers whose answers are sometimes corrupted (a flipped byte, cut short,
    junk appended): the core never raises, every op ends by its deadline with
    each resource settled once, and errors are KafkaErrors."""
    rng, cluster, core, sim = _setup(seed)
    cluster.create_topic("data", 0.0)
    for broker in cluster.brokers.values():
        broker.handle = _mangling(broker.handle, random.Random(seed * 7 + broker.node_id))  # type: ignore[method-assign]
    cluster.group("g0")
    work: list[tuple[AdminOp, set[Any]]] = []
    counter = iter(range(10_000))

    def issue() -> None:
        tps = {TopicPartition("data", p): -1 for p in range(3)}
        name = f"t{next(counter)}"
        choice = rng.randrange(6)
        if choice == 0:
            work.append((core.create_topics([name], now=sim.now), {name}))
        elif choice == 1:
            work.append((core.list_offsets(tps, now=sim.now), set(tps)))
        elif choice == 2:
            work.append((core.describe_topics(["data", name], now=sim.now), {"data", name}))
        elif choice == 3:
            work.append((core.list_consumer_group_offsets("g0", now=sim.now), {"g0"}))
        elif choice == 4:
            res = ConfigResource("TOPIC", "data")
            work.append((core.describe_configs([res], now=sim.now), {res.key}))
        else:
            work.append((core.describe_consumer_groups(["g0", "g1"], now=sim.now), {"g0", "g1"}))

    t = 0.1
    while t < FAULT_PHASE:
        sim.at(t, issue)
        t += rng.uniform(0.1, 0.8)
    sim.run(max_time=FAULT_PHASE)
    sim.run(until=lambda: all(op.done for op, _ in work), max_time=FAULT_PHASE + API_TIMEOUT_MS / 1000 + 1)
    for op, keys in work:
        _check_done(op, keys, sim.now)


def _mangling(handle: Any, rng: random.Random) -> Any:
    def mangled(frame: bytes, now: float) -> Any:
        response, throttle = handle(frame, now)
        if not isinstance(response, bytes) or len(response) < 5 or rng.random() > 0.2:
            return response, throttle
        body = bytearray(response)
        how = rng.randrange(3)
        if how == 0:
            i = rng.randrange(4, len(body))  # keep the correlation id: the answer reaches its request
            body[i] ^= 1 << rng.randrange(8)
        elif how == 1:
            del body[rng.randrange(4, len(body)) :]
        else:
            body += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        return bytes(body), throttle

    return mangled

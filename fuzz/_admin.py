"""The admin core against a simulated cluster whose answers the fuzzer mutates.

Used by ``fuzz_admin_core.py``. The cluster is ``tests/sim/harness.py``'s with
the admin APIs of ``tests/sim/admin_broker.py`` (CreateTopics, DescribeConfigs,
the group, ACL, SCRAM, transaction, log-dir and record APIs: real wire bytes
through kproto's codec); their answers pass through :func:`_cores.mutate`
(an interesting number over a field, random bytes, a cut, a repeated span).
The input picks a handful of admin calls (each with its own ``timeout_ms``)
and when they start, then per answer: one or two mutations, or a body it
spells out (see :func:`_hostile`).

Invariants (an AssertionError or any other exception is a finding):

- nothing escapes the core's driving inputs (``receive_data``,
  ``handle_timer``, ``connection_*``) or the admin calls themselves;
- every call ends by its deadline (no wedge), each resource it named settled
  once: a result or a :class:`~kproto.errors.KafkaError`, never both;
  ``op.error`` is a KafkaError or None;
- no growth: receive buffers within the response cap, a few events per
  step (drained as a driver does), and once every call
  is done the engine holds no call, no pending broker list, no topic it
  tracked for them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from _cores import FAST_RETRIES, Script, check_receive_buffers, mutate

from kproto import admin as a
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.errors import KafkaError
from tests.sim.admin_broker import install
from tests.sim.harness import Sim, SimCluster, SimNetwork

TOPIC = "fz"
TPS = [TopicPartition(TOPIC, p) for p in range(2)]
_ACL = a.ACL("User:a", "*", a.ACLOperation.READ, a.ACLPermissionType.ALLOW, a.ResourcePattern(a.ResourceType.TOPIC, TOPIC))
_ANY = a.ACLFilter(
    None,
    None,
    a.ACLOperation.ANY,
    a.ACLPermissionType.ANY,
    a.ResourcePatternFilter(a.ResourceType.ANY, None, a.ACLResourcePatternType.ANY),
)
_TOPIC_RES = a.ConfigResource("TOPIC", TOPIC)

#: Each admin call the input can pick: ``(core, now, timeout_ms) -> (op, the resources it names or None)``.
_Start = Callable[[a.AdminCore, float, "int | None"], tuple[a.AdminOp, "set[Any] | None"]]
CALLS: list[_Start] = [
    lambda c, now, t: (c.create_topics(["n1", TOPIC], now=now, timeout_ms=t), {"n1", TOPIC}),
    lambda c, now, t: (c.delete_topics(["n2"], now=now, timeout_ms=t), {"n2"}),
    lambda c, now, t: (c.create_partitions({TOPIC: a.NewPartitions(4)}, now=now, timeout_ms=t), {TOPIC}),
    lambda c, now, t: (c.list_topics(now=now, timeout_ms=t), {None}),
    lambda c, now, t: (c.describe_topics([TOPIC, "nope"], now=now, timeout_ms=t), {TOPIC, "nope"}),
    lambda c, now, t: (c.describe_topics(None, now=now, timeout_ms=t), {None}),
    lambda c, now, t: (c.describe_cluster(now=now, timeout_ms=t), {None}),
    lambda c, now, t: (c.describe_log_dirs(now=now, timeout_ms=t), None),
    lambda c, now, t: (
        c.describe_configs([_TOPIC_RES, a.ConfigResource("BROKER", "1")], now=now, include_synonyms=True, timeout_ms=t),
        {_TOPIC_RES.key, a.ConfigResource("BROKER", "1").key},
    ),
    lambda c, now, t: (
        c.alter_configs([a.ConfigResource("TOPIC", TOPIC, {"retention.ms": "1"})], now=now, timeout_ms=t),
        {_TOPIC_RES.key},
    ),
    lambda c, now, t: (
        c.alter_configs(
            [a.ConfigResource("TOPIC", TOPIC, {"retention.ms": (a.AlterConfigOp.DELETE, None)}),
             a.ConfigResource("BROKER", "1", {"log.cleaner.threads": "2"})],
            now=now,
            incremental=True,
            timeout_ms=t,
        ),
        {_TOPIC_RES.key, a.ConfigResource("BROKER", "1").key},
    ),
    lambda c, now, t: (c.list_consumer_groups(now=now, timeout_ms=t), None),
    lambda c, now, t: (c.describe_consumer_groups(["g", "h"], now=now, timeout_ms=t), {"g", "h"}),
    lambda c, now, t: (c.list_consumer_group_offsets("g", now=now, timeout_ms=t), {"g"}),
    lambda c, now, t: (c.list_consumer_group_offsets("g", TPS, now=now, require_stable=True, timeout_ms=t), {"g"}),
    lambda c, now, t: (
        c.alter_consumer_group_offsets("g", {TPS[0]: OffsetAndMetadata(3, "m")}, now=now, timeout_ms=t),
        {"g"},
    ),
    lambda c, now, t: (c.delete_consumer_group_offsets("g", TPS, now=now, timeout_ms=t), {"g"}),
    lambda c, now, t: (c.delete_consumer_groups(["h"], now=now, timeout_ms=t), {"h"}),
    lambda c, now, t: (c.delete_records({TPS[0]: 1}, now=now, timeout_ms=t), {TPS[0]}),
    lambda c, now, t: (c.list_offsets({TPS[0]: -1, TPS[1]: -2}, now=now, timeout_ms=t), set(TPS)),
    lambda c, now, t: (c.list_offsets({TPS[1]: a.OffsetSpec.MAX_TIMESTAMP}, now=now, timeout_ms=t), {TPS[1]}),
    lambda c, now, t: (c.elect_leaders(0, TPS, now=now, timeout_ms=t), set(TPS)),
    lambda c, now, t: (c.describe_acls(_ANY, now=now, timeout_ms=t), {_ANY}),
    lambda c, now, t: (c.create_acls([_ACL], now=now, timeout_ms=t), {_ACL}),
    lambda c, now, t: (c.delete_acls([_ANY], now=now, timeout_ms=t), {_ANY}),
    lambda c, now, t: (c.list_transactions(now=now, timeout_ms=t), None),
    lambda c, now, t: (c.describe_transactions(["tx", "ty"], now=now, timeout_ms=t), {"tx", "ty"}),
    lambda c, now, t: (c.fence_producers(["tx"], now=now, timeout_ms=t), {"tx"}),
    lambda c, now, t: (c.describe_producers(TPS, now=now, timeout_ms=t), set(TPS)),
    lambda c, now, t: (c.describe_user_scram_credentials(["u"], now=now, timeout_ms=t), {"u"}),
    lambda c, now, t: (c.describe_user_scram_credentials(now=now, timeout_ms=t), {None}),
    lambda c, now, t: (
        c.alter_user_scram_credentials(
            [a.UserScramCredentialUpsertion("u", "SCRAM-SHA-256", "pw", salt=b"s" * 24),
             a.UserScramCredentialDeletion("v", "SCRAM-SHA-512")],
            now=now,
            timeout_ms=t,
        ),
        {"u", "v"},
    ),
]


#: ApiVersions, Metadata, FindCoordinator: the client's own traffic (fuzz/_cores.py fuzzes it too).
_INFRA = frozenset({18, 3, 10})


def _hostile(broker: Any, s: Script) -> None:
    """``broker`` answers through the input: per answer one or two :func:`_cores.mutate`
    steps, or a body the input spells out (after the correlation id). The client's
    own traffic is left alone unless the input says so, so that most mutations hit
    the admin answers. A request the sim cannot serve (a version or a resource a
    mutated answer led the client to) gets an empty frame: garbage to the client,
    the sim's limit rather than the core's fault."""
    handle = broker.handle

    def answer(frame: bytes, now: float) -> Any:
        try:
            response, throttle = handle(frame, now)
        except (KafkaError, KeyError, ValueError, IndexError):
            return b"", 0
        if not isinstance(response, bytes) or len(response) < 4:
            return response, throttle
        how = s.byte()
        if int.from_bytes(frame[:2], "big") in _INFRA and not how & 0x40:
            return response, throttle
        if how >= 0xF0:
            return response[:4] + s.take(s.byte() << 2 | s.byte() & 3), throttle
        for _ in range(1 + (how & 1)):
            response = mutate(response, s)
        return response, throttle

    broker.handle = answer


def _check_op(op: a.AdminOp, keys: set[Any] | None) -> None:
    assert op.error is None or isinstance(op.error, KafkaError), f"{op!r}: error {op.error!r}"
    for key, err in op.errors.items():
        assert isinstance(err, KafkaError), f"{op!r}: {key!r} failed with {err!r}"
    for key, value in op.results.items():
        assert not isinstance(value, BaseException), f"{op!r}: {key!r} has {value!r} as its result"
    both = set(op.results) & set(op.errors)
    assert not both, f"{op!r}: {both} settled twice"
    settled = set(op.results) | set(op.errors)
    if keys is not None and op.error is None:
        assert settled == keys, f"{op!r}: settled {settled}, asked {keys}"


def run_admin(data: bytes) -> None:
    """Admin calls through mutated answers; each ends by its deadline, settled once."""
    s = Script(data)
    n_calls = 1 + s.byte() % 6
    rng = random.Random(s.u16())
    cluster = SimCluster(rng, n_brokers=1 + s.byte() % 3, default_partitions=2)
    install(cluster)
    for broker in cluster.brokers.values():
        _hostile(broker, s)
    cluster.create_topic(TOPIC, 0.0, partitions=2)
    cluster.group("g").offsets[(TOPIC, 0)] = (5, "")
    cluster.txn_producers["tx"] = (77, 1)
    network = SimNetwork(cluster, rng, latency=(0.0005, 0.005), max_chunk=rng.choice((16, 4096)))
    config = a.AdminConfig(
        bootstrap_servers=cluster.bootstrap,
        request_timeout_ms=500,
        default_api_timeout_ms=2000,
        **FAST_RETRIES,
    )
    core = a.AdminCore(config, now=0.0, rng=random.Random(rng.random()))
    sim = Sim(core, cluster, network)
    ops: list[tuple[a.AdminOp, set[Any] | None]] = []
    plan = [(s.byte() % len(CALLS), s.byte() / 256 * 0.5, (300, 1000, 2000, None)[s.byte() % 4]) for _ in range(n_calls)]

    def start(i: int, timeout_ms: int | None) -> None:
        ops.append(CALLS[i](core, sim.now, timeout_ms))

    for i, at, timeout_ms in plan:
        sim.at(at, lambda i=i, t=timeout_ms: start(i, t))  # type: ignore[misc]

    def check() -> None:
        for op, _keys in ops:
            assert op.done or sim.now <= op.deadline, f"{op!r} open at {sim.now}, past its deadline {op.deadline}"
        check_receive_buffers(core.client)
        events = core.events()  # drained every turn, as a driver does
        assert len(events) <= 64, f"{len(events)} events from one step"

    sim.on_step = check
    # Every call starts by 0.5 s and ends within 2 s of its start.
    sim.run(until=lambda: len(ops) == n_calls and all(op.done for op, _ in ops), max_time=3.0, max_steps=20_000)
    assert len(ops) == n_calls and all(op.done for op, _ in ops), f"calls still open at {sim.now}: {ops}"
    for op, keys in ops:
        _check_op(op, keys)
    engine = core._engine
    assert not engine._calls, f"{len(engine._calls)} calls left in the engine"
    assert not engine._pending_brokers_ops, "ops still waiting for the broker list"
    assert not engine._topic_refs, f"topics still tracked: {engine._topic_refs}"


def seeds() -> dict[str, bytes]:
    """Each call once, clean, then a few calls with a mutation of each kind."""
    out = {f"admin-call{i}": bytes([0, 0, 7, 1, i, 0, 2]) for i in range(len(CALLS))}
    for op in range(3, 8):
        out[f"admin-op{op}"] = bytes([3, 0, 9, 1, 0, 0, 1, 11, 40, 2, 19, 80, 2, 26, 10, 2]) + bytes(
            [0, 0, 0, op, 0, 40, 6, 2, 0, 9] * 4
        )
    return out

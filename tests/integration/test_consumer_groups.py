"""Consumer groups against the real broker: three kproto members share a 6-partition topic.

Each transport runs the same scenario: three members join one group; once
the group is stable every partition is owned by exactly one member and every
record is read once, by its partition's owner; then one member closes and
the other two take over all six partitions. (Tansu starts the rebalance
after a leaver's session timeout, so the scenario uses short sessions.)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import uuid
from typing import Any

import pytest
import trio
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

import transports._consumer_asyncio as ca
import transports._consumer_sync as cs
import transports._consumer_trio as ct
from kproto.consumer import ConsumerRecord, TopicPartition
from kproto.consumer.group import ConsumerRebalanceListener

PARTITIONS = 6
PER_PARTITION = 10
GROUP_OPTS: dict[str, Any] = dict(
    session_timeout_ms=6000, heartbeat_interval_ms=500, auto_offset_reset="earliest", enable_auto_commit=False
)
#: Upper bound for a rebalance on Tansu (it waits for sessions to expire).
REBALANCE_WAIT = 60.0


def make_topic(bootstrap: str) -> str:
    name = f"grp-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        admin.close()
    p = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for part in range(PARTITIONS):
            for i in range(PER_PARTITION):
                p.send(name, value=b"%d-%d" % (part, i), partition=part)
        p.flush(30)
    finally:
        p.close()
    return name


class Recorder(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, frozenset[TopicPartition]]] = []

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", frozenset(revoked)))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.events.append(("assigned", frozenset(assigned)))


async def call(c: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(c, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def scenario(transport: str, bootstrap: str, topic: str, group: str, strategy: str = "range") -> None:
    listeners = [Recorder() for _ in range(3)]
    opts = dict(GROUP_OPTS, partition_assignment_strategy=[strategy])
    if transport == "sync":
        members: list[Any] = [cs.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **opts)
                              for _ in range(3)]
    elif transport == "asyncio":
        members = [ca.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **opts) for _ in range(3)]
        for m in members:
            await m.start()
    else:
        members = [ct.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **opts) for _ in range(3)]
        for m in members:
            await m.__aenter__()
    try:
        for m, listener in zip(members, listeners, strict=True):
            m.subscribe([topic], listener=listener)
        seen: dict[tuple[int, int], list[int]] = {}

        async def poll_round(active: list[int]) -> None:
            for i in active:
                got = await call(members[i], "poll", timeout_ms=50)
                for tp, recs in got.items():
                    assert tp in members[i].assignment()
                    for r in recs:
                        seen.setdefault((r.partition, r.offset), []).append(i)

        def covered(active: list[int]) -> bool:
            owned = [members[i].assignment() for i in active]
            union = set().union(*owned)
            return len(union) == PARTITIONS and sum(len(o) for o in owned) == PARTITIONS and all(owned)

        deadline = time.monotonic() + REBALANCE_WAIT
        while not covered([0, 1, 2]):
            assert time.monotonic() < deadline, [sorted(tp.partition for tp in m.assignment()) for m in members]
            await poll_round([0, 1, 2])
        # What a member read before the group settled, the next owner reads again
        # (eager rebalance, nothing committed). Apache Kafka with
        # group.initial.rebalance.delay.ms=0 forms the group with the first member
        # at once, so that happens there. From the settled generation on, read
        # everything again: each record exactly once, by its partition's owner.
        seen.clear()
        for m in members:
            await call(m, "seek_to_beginning")
        while len(seen) < PARTITIONS * PER_PARTITION:
            assert time.monotonic() < deadline, len(seen)
            await poll_round([0, 1, 2])
        # Each partition has exactly one owner; each record was read once, by that owner.
        owner = {tp.partition: i for i in range(3) for tp in members[i].assignment()}
        assert sorted(owner) == list(range(PARTITIONS))
        assert all(len(who) == 1 for who in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}
        assert all(who[0] == owner[p] for (p, _), who in seen.items())
        for i, listener in enumerate(listeners):
            assert listener.events[-1] == ("assigned", frozenset(members[i].assignment()))

        # One member leaves; the other two take over every partition.
        await call(members[2], "close")
        deadline = time.monotonic() + REBALANCE_WAIT
        while not covered([0, 1]):
            assert time.monotonic() < deadline, [sorted(tp.partition for tp in m.assignment()) for m in members[:2]]
            await poll_round([0, 1])
        assert any(kind == "revoked" for kind, _ in listeners[0].events + listeners[1].events)
    finally:
        for m in reversed(members):  # trio nurseries close in the reverse order of opening
            if transport == "trio":
                await m.__aexit__(None, None, None)
            else:
                await call(m, "close")


@pytest.mark.parametrize(("transport", "strategy"),
                         [("sync", "range"), ("asyncio", "roundrobin"), ("trio", "range"), ("sync", "sticky")])
def test_three_members_share_and_rebalance(transport: str, strategy: str, bootstrap: str) -> None:
    topic = make_topic(bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    if transport == "trio":
        trio.run(functools.partial(scenario, transport, bootstrap, topic, group, strategy))
    else:
        asyncio.run(scenario(transport, bootstrap, topic, group, strategy))


def test_sync_heartbeats_flow_while_the_user_is_busy(bootstrap: str) -> None:
    """Between polls the sync consumer's heartbeat thread keeps the member in its group."""
    topic = make_topic(bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    positions: list[int] = []

    class CommitsOnAssign(ConsumerRebalanceListener):
        # The kafka-python habit: call the consumer from inside its listener (runs inside poll).
        def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
            c.commit({tp: 0 for tp in assigned})
            positions.extend(c.position(tp) for tp in assigned)

    c = cs.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **GROUP_OPTS)
    c.subscribe([topic], listener=CommitsOnAssign())
    try:
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + REBALANCE_WAIT
        while len(c.assignment()) < PARTITIONS:
            assert time.monotonic() < deadline
            for recs in c.poll(timeout_ms=100, max_records=1).values():
                records.extend(recs)
        generation = c._core._group.generation  # type: ignore[union-attr]
        time.sleep(GROUP_OPTS["session_timeout_ms"] / 1000 * 1.5)  # "processing", longer than a session
        while len(records) < PARTITIONS * PER_PARTITION:
            assert time.monotonic() < deadline + 30
            for recs in c.poll(timeout_ms=100).values():
                records.extend(recs)
        assert len(c.assignment()) == PARTITIONS
        assert c._core._group.generation == generation  # type: ignore[union-attr]  # no rebalance happened
        assert len({(r.partition, r.offset) for r in records}) == PARTITIONS * PER_PARTITION
        assert positions == [0] * PARTITIONS
    finally:
        c.close()

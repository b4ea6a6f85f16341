"""Static group membership (KIP-345) against Apache Kafka, on each transport.

Two members with ``group_instance_id`` share a 4-partition topic. One closes:
a static member sends no LeaveGroup, so within its session the other keeps
its partitions and takes none over. The closed member comes back under the
same instance id and gets its old partitions again; the other's stay as they
were, and every record is read. A second live member under an instance id in
use fences the first: its ``poll`` raises ``FencedInstanceIdError`` (KIP-345,
as the Java client's ``FencedInstanceIdException``) and the newcomer holds its
partitions.

Kafka only: on Tansu 0.6 the same scenario with 6 s sessions sometimes left
both static members without partitions for a minute (with 20 s sessions it
passed, at 30 s a run); Kafka is the reference for group semantics.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, Consumer, open_consumer, run, sleep
from _kafka import KafkaCluster
from kafka import KafkaProducer

from kproto.errors import FencedInstanceIdError

PARTITIONS = 4  # what create_topic makes
WAIT = 60.0


async def settle(members: list[Consumer], seen: list[bytes]) -> None:
    """Poll every member until together they own all partitions, each at least one."""
    deadline = time.monotonic() + WAIT
    while True:
        owned = [m.c.assignment() for m in members]
        if all(owned) and len(set().union(*owned)) == PARTITIONS == sum(len(o) for o in owned):
            return
        assert time.monotonic() < deadline, owned
        for m in members:
            for recs in (await m.poll(100)).values():
                seen.extend(r.value for r in recs)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_static_member_comes_back_to_its_partitions(transport: str, kafka: KafkaCluster) -> None:
    topic = kafka.create_topic(f"gs-{uuid.uuid4().hex[:10]}")
    bootstrap = kafka.bootstrap
    group = f"gs-{uuid.uuid4().hex[:8]}"
    opts: dict[str, Any] = dict(
        bootstrap_servers=bootstrap, group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=500,
        auto_offset_reset="earliest", enable_auto_commit=False, partition_assignment_strategy=["range"],
    )  # fmt: skip
    peer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(PARTITIONS * 5):
        peer.send(topic, b"r%d" % i, partition=i % PARTITIONS)
    peer.flush(30)
    peer.close()
    seen: list[bytes] = []
    state: dict[str, Any] = {}

    async def scenario() -> None:
        async with open_consumer(transport, topic, group_instance_id="static-a", **opts) as a:
            async with open_consumer(transport, topic, group_instance_id="static-b", **opts) as b:
                await settle([a, b], seen)
                state["a"], state["b"] = a.c.assignment(), b.c.assignment()
            # b is gone without a LeaveGroup: for a while (well inside b's session) nothing moves to a.
            until = time.monotonic() + 2.0
            while time.monotonic() < until:
                for recs in (await a.poll(100)).values():
                    seen.extend(r.value for r in recs)
                await sleep(transport, 0)
            state["a_alone"] = a.c.assignment()
            async with open_consumer(transport, topic, group_instance_id="static-b", **opts) as b2:
                await settle([a, b2], seen)
                state["a_after"], state["b_after"] = a.c.assignment(), b2.c.assignment()
                deadline = time.monotonic() + WAIT
                while len(set(seen)) < PARTITIONS * 5 and time.monotonic() < deadline:
                    for m in (a, b2):
                        for recs in (await m.poll(100)).values():
                            seen.extend(r.value for r in recs)

    run(transport, scenario)
    assert state["a_alone"] == state["a"]  # no rebalance handed b's partitions to a
    assert state["b_after"] == state["b"]  # b came back to its own partitions
    assert state["a_after"] == state["a"]
    assert set(seen) == {b"r%d" % i for i in range(PARTITIONS * 5)}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_second_member_under_the_same_instance_id_fences_the_first(transport: str, kafka: KafkaCluster) -> None:
    topic = kafka.create_topic(f"gf-{uuid.uuid4().hex[:10]}")
    opts: dict[str, Any] = dict(
        bootstrap_servers=kafka.bootstrap, group_id=f"gf-{uuid.uuid4().hex[:8]}", session_timeout_ms=6000,
        heartbeat_interval_ms=500, auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    seen: list[bytes] = []
    state: dict[str, Any] = {}

    async def scenario() -> None:
        async with open_consumer(transport, topic, group_instance_id="static-x", **opts) as a:
            await settle([a], seen)
            state["a"] = a.c.assignment()
            async with open_consumer(transport, topic, group_instance_id="static-x", **opts) as a2:
                deadline = time.monotonic() + WAIT
                while "fenced" not in state or len(a2.c.assignment()) < PARTITIONS:
                    assert time.monotonic() < deadline, (state, a2.c.assignment())
                    await a2.poll(100)
                    if "fenced" not in state:
                        try:
                            await a.poll(100)
                        except FencedInstanceIdError as exc:
                            state["fenced"] = exc
                state["a2"] = a2.c.assignment()

    run(transport, scenario)
    assert len(state["a"]) == PARTITIONS
    assert isinstance(state["fenced"], FencedInstanceIdError)
    assert "static-x" in str(state["fenced"])
    assert state["a2"] == state["a"]  # the newcomer took the fenced member's partitions

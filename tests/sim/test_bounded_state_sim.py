"""No state that grows for ever (issue 12): long runs on simulated time, sizes measured.

A consumer auto-commits every 10 ms for 10,000 commits while records trickle
in; a producer sends 1,000,000 records. Both run against the simulated
cluster over the wire (the real ``Client`` and its connections), and the
driver drains the core's events on every step as the transports do. At a
checkpoint early in the run and at its end the test walks every container
(list, dict, set, deque, bytearray) reachable from the core through kproto
objects and records its length by attribute path; no container may be
bigger at the end than the largest size seen for its path up to the
checkpoint, plus a small slack for what is in flight at that instant.
Sizes, not RSS: the numbers say which structure grew.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from kproto.consumer import TopicPartition
from kproto.producer import ProducerConfig, ProducerCore
from kproto.protocol.records import RecordBatchBuilder
from tests.sim.harness import Sim, SimCluster, SimNetwork
from tests.sim.test_events_sim import group_member

_CONTAINERS = (list, dict, set, frozenset, deque, bytearray)
#: Slack for what is legitimately in flight at one instant (requests, buffered batches).
SLACK = 64
#: The same for byte buffers (paths ending in " (bytes)"): a few requests' worth.
BYTES_SLACK = 1 << 20


def container_sizes(root: Any) -> dict[str, int]:
    """``attribute path -> length`` of every container reachable from ``root`` through kproto objects.

    Paths name attributes only (``_client._nodes``; ``[]`` for an element), so
    the same structure under another key is one entry (the largest).
    """
    sizes: dict[str, int] = {}
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if depth > 8 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, bytearray):
            key = path + " (bytes)"
            sizes[key] = max(sizes.get(key, 0), len(obj))
            return
        if isinstance(obj, _CONTAINERS):
            sizes[path] = max(sizes.get(path, 0), len(obj))
            if isinstance(obj, frozenset):
                return
            items = list(obj.values()) if isinstance(obj, dict) else list(obj)
            for item in items[:200]:
                walk(item, path + "[]", depth + 1)
            return
        if not type(obj).__module__.startswith("kproto"):
            return
        names: list[str] = list(getattr(obj, "__dict__", {}))
        for cls in type(obj).__mro__:
            names.extend(getattr(cls, "__slots__", ()))
        for name in names:
            try:
                value = getattr(obj, name)
            except AttributeError:
                continue
            walk(value, f"{path}.{name}", depth + 1)

    walk(root, "core", 0)
    return sizes


def assert_bounded(early: dict[str, int], late: dict[str, int]) -> None:
    grown = {
        p: (early.get(p, 0), n)
        for p, n in late.items()
        if n > early.get(p, 0) + (BYTES_SLACK if p.endswith(" (bytes)") else SLACK)
    }
    assert not grown, f"containers grew (path: early -> late): {grown}"


def test_consumer_auto_commit_every_10ms_for_10000_commits_keeps_state_bounded() -> None:
    rng = random.Random(12)
    cluster, sim, core = group_member(
        rng, 3, auto_commit_interval_ms=10, heartbeat_interval_ms=1000, session_timeout_ms=10000,
        fetch_max_wait_ms=500,
    )  # fmt: skip
    consumed = [0]
    events = [0]

    def poll(now: float) -> None:
        consumed[0] += sum(map(len, core.poll(None, now).values()))
        if rng.random() < 0.5:  # a record now and then, so commits carry new offsets
            b = RecordBatchBuilder()
            b.append(1000, None, b"x")
            cluster.log("t", rng.randrange(3)).append(b.seal())
        sim.schedule(now + 0.05, poll)

    def drain() -> None:
        events[0] += len(core.events())  # as the transports' sinks do, every turn

    sim.on_step = drain
    sim.schedule(0.0, poll)

    counters = core._ctx.metrics  # the dict core.metrics() copies, read on every step

    def commits() -> float:
        return counters["commits-total"]

    assert sim.run(until=lambda: commits() >= 2000, max_time=1000.0, max_steps=2_000_000)
    early = container_sizes(core)
    assert sim.run(until=lambda: commits() >= 10_000, max_time=1000.0, max_steps=10_000_000)
    late = container_sizes(core)
    assert_bounded(early, late)
    assert consumed[0] > 100 and events[0] >= 10_000  # the commits' events, drained
    assert core.partition_offsets().keys() == {TopicPartition("t", p) for p in range(3)}


def test_producer_of_1000000_records_keeps_state_bounded() -> None:
    rng = random.Random(7)
    cluster = SimCluster(rng, n_brokers=3, default_partitions=3)
    cfg = ProducerConfig.from_kwargs(bootstrap_servers=cluster.bootstrap, linger_ms=5, batch_size=65536)
    core = ProducerCore(cfg, now=0.0, rng=random.Random(2))
    network = SimNetwork(cluster, rng, latency=(0.0001, 0.002), max_chunk=1 << 20)
    sim = Sim(core, cluster, network)
    total = 1_000_000
    sent = [0]
    done = [0]
    value = b"v" * 10

    def send_some() -> None:
        now = sim.now
        i = sent[0]
        end = min(total, i + 5000)
        send_value = core.send_value
        while i < end and send_value("t", None, value, 1_700_000_000_000, i, now):
            i += 1
        sent[0] = i
        if i < total:
            sim.at(now + 0.001, send_some)

    def drain() -> None:
        for ev in core.events():
            done[0] += len(getattr(ev, "tokens", ()))

    sim.on_step = drain
    sim.at(0.0, send_some)
    assert sim.run(until=lambda: done[0] >= 200_000, max_time=10_000.0, max_steps=5_000_000)
    early = container_sizes(core)
    assert sim.run(until=lambda: done[0] >= total, max_time=10_000.0, max_steps=50_000_000)
    late = container_sizes(core)
    assert_bounded(early, late)
    assert core.pending_count() == 0

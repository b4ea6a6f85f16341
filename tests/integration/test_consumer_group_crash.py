"""A group member dies: two kproto survivors take over its partitions, nothing is lost.

On each transport two in-process members share a 6-partition topic with a
third member running in a separate Python process (a sync kproto consumer).
All three use manual commits (``enable_auto_commit=False``) and commit the
offsets of each poll's records right after processing them. Once the group is
stable (every partition owned by exactly one of the three), the victim process
is killed with SIGKILL (no LeaveGroup); Tansu rebalances after its session
times out and the survivors must own all six partitions and process every
record produced before, during and after the crash. A record may be processed
twice only inside the at-least-once window: the victim processed it at or after
its last successful commit for that partition.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

import transports._consumer_asyncio as ca
import transports._consumer_sync as cs
import transports._consumer_trio as ct
from kproto.consumer import TopicPartition
from kproto.errors import KafkaError

PARTITIONS = 6
BATCH = 60
GROUP_OPTS: dict[str, Any] = dict(
    session_timeout_ms=6000, heartbeat_interval_ms=500, auto_offset_reset="earliest", enable_auto_commit=False
)
#: Hang guard for a rebalance on Tansu (it waits for sessions to expire).
REBALANCE_WAIT = 60.0
REPO = Path(__file__).resolve().parents[2]

#: The victim: a sync kproto member that reports its assignment, every record it
#: processed and every successful commit on stdout (one flushed line each).
VICTIM = textwrap.dedent("""
    import sys
    import transports._consumer_sync as cs
    from kproto.consumer import TopicPartition

    bootstrap, group, topic = sys.argv[1:4]
    opts = dict(session_timeout_ms=6000, heartbeat_interval_ms=500, auto_offset_reset="earliest",
                enable_auto_commit=False)
    c = cs.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **opts)
    c.subscribe([topic])
    print("READY", flush=True)
    last = None
    while True:
        got = c.poll(timeout_ms=100)
        now = sorted(tp.partition for tp in c.assignment())
        if now != last:
            print("ASSIGN " + ",".join(map(str, now)), flush=True)
            last = now
        if not got:
            continue
        offsets = {}
        for tp, recs in got.items():
            for r in recs:
                print("REC %d %d" % (r.partition, r.offset), flush=True)
            offsets[tp] = recs[-1].offset + 1
        try:
            c.commit(offsets)
        except Exception as e:
            print("COMMITFAIL %r" % (e,), flush=True)
        else:
            for tp, off in offsets.items():
                print("COMMIT %d %d" % (tp.partition, off), flush=True)
""")


class Victim:
    """The victim process and what it reported, read by a background thread."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *(p for p in sys.path if p)]))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", VICTIM, bootstrap, group, topic],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
        )
        self.lock = threading.Lock()
        self.ready = False
        self.assignment: set[int] | None = None
        self.processed: list[tuple[int, int]] = []
        self.committed: dict[int, int] = {}  # partition -> last successfully committed offset
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, rest = line.strip().partition(" ")
            with self.lock:
                self.lines.append(line.strip())
                if kind == "READY":
                    self.ready = True
                elif kind == "ASSIGN":
                    self.assignment = {int(p) for p in rest.split(",") if p}
                elif kind == "REC":
                    p, o = rest.split()
                    self.processed.append((int(p), int(o)))
                elif kind == "COMMIT":
                    p, o = rest.split()
                    self.committed[int(p)] = int(o)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            assert self.proc.stderr is not None
            raise AssertionError(f"victim exited {self.proc.returncode}: {self.proc.stderr.read()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.reader.join(10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def make_topic(bootstrap: str) -> str:
    name = f"crash-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        admin.close()
    return name


def produce(producer: KafkaProducer, topic: str, start: int) -> set[tuple[int, int]]:
    """BATCH keyed records; returns their (partition, offset)."""
    futures = [producer.send(topic, key=b"k%d" % (i % 17), value=b"v%d" % i) for i in range(start, start + BATCH)]
    producer.flush(30)
    return {(md.partition, md.offset) for md in (f.get(30) for f in futures)}


async def call(c: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(c, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def scenario(transport: str, bootstrap: str) -> None:
    topic = make_topic(bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    produced = produce(producer, topic, 0)  # before the scenario
    victim = Victim(bootstrap, group, topic)
    members: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while not victim.ready:
            victim.check_alive()
            assert time.monotonic() < deadline, victim.lines
            await (trio.sleep(0.05) if transport == "trio" else asyncio.sleep(0.05))

        if transport == "sync":
            members = [cs.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **GROUP_OPTS) for _ in range(2)]
        elif transport == "asyncio":
            members = [ca.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **GROUP_OPTS) for _ in range(2)]
            for m in members:
                await m.start()
        else:
            members = [ct.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **GROUP_OPTS) for _ in range(2)]
            for m in members:
                await m.__aenter__()
        for m in members:
            m.subscribe([topic])

        # Survivors' processing: (member, partition, offset) per record; failed commits.
        processed: list[tuple[int, int, int]] = []
        commit_failures: list[str] = []

        async def poll_round() -> None:
            for i, m in enumerate(members):
                got = await call(m, "poll", timeout_ms=50)
                offsets: dict[TopicPartition, int] = {}
                for tp, recs in got.items():
                    assert tp in m.assignment()
                    processed.extend((i, r.partition, r.offset) for r in recs)
                    offsets[tp] = recs[-1].offset + 1
                if offsets:
                    try:
                        await call(m, "commit", offsets)
                    except KafkaError as e:
                        commit_failures.append(f"member {i}: {e!r}")

        def seen() -> set[tuple[int, int]]:
            with victim.lock:
                mine = set(victim.processed)
            return mine | {(p, o) for _, p, o in processed}

        def owners(with_victim: bool) -> list[set[int]]:
            owned = [{tp.partition for tp in m.assignment()} for m in members]
            if with_victim:
                with victim.lock:
                    owned.append(set(victim.assignment or ()))
            return owned

        def covered(owned: list[set[int]]) -> bool:
            return set().union(*owned) == set(range(PARTITIONS)) and sum(map(len, owned)) == PARTITIONS \
                and all(owned)

        async def poll_until(done: Any, what: str, with_victim: bool) -> None:
            deadline = time.monotonic() + REBALANCE_WAIT
            while not done():
                if with_victim:
                    victim.check_alive()
                assert time.monotonic() < deadline, (what, owners(with_victim), len(produced - seen()))
                await poll_round()

        # Three members, each partition exactly one owner, the first batch processed.
        await poll_until(lambda: covered(owners(True)) and produced <= seen(), "stable with three", True)
        # More records while the group is stable, processed by the three.
        produced |= produce(producer, topic, BATCH)
        await poll_until(lambda: covered(owners(True)) and produced <= seen(), "second batch", True)
        with victim.lock:
            victim_owned = set(victim.assignment or ())
        assert victim_owned, victim.lines[-20:]

        victim.kill()  # SIGKILL: no LeaveGroup, no final commit
        assert victim.proc.returncode == -signal.SIGKILL
        produced |= produce(producer, topic, 2 * BATCH)  # during the takeover

        await poll_until(lambda: covered(owners(False)) and produced <= seen(), "takeover", False)
        survivors_owned = owners(False)
        assert set().union(*survivors_owned) == set(range(PARTITIONS))

        # Nothing lost.
        assert produced <= seen()
        # Nothing duplicated outside the at-least-once window.
        counts: dict[tuple[int, int], int] = {}
        for key in [*victim.processed, *((p, o) for _, p, o in processed)]:
            counts[key] = counts.get(key, 0) + 1
        dups = {key for key, n in counts.items() if n > 1}
        victim_set = set(victim.processed)
        outside = {
            (p, o) for p, o in dups
            if (p, o) not in victim_set or o < victim.committed.get(p, 0) or counts[(p, o)] > 2
        }
        assert not outside, (sorted(outside), victim.committed, commit_failures)
    finally:
        victim.kill()
        producer.close()
        for m in reversed(members):  # trio nurseries close in the reverse order of opening
            if transport == "trio":
                await m.__aexit__(None, None, None)
            else:
                await call(m, "close")


@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio"])
def test_survivors_take_over_a_killed_member_without_losing_records(transport: str, bootstrap: str) -> None:
    if transport == "trio":
        trio.run(functools.partial(scenario, transport, bootstrap))
    else:
        asyncio.run(scenario(transport, bootstrap))

"""cooperative-sticky (KIP-429) against the real broker: two kproto members on a 4-partition topic.

The first member takes all four partitions; when the second joins, the first
revokes only the two partitions that move (its listener sees just those,
and it keeps the other two without a revocation), the second gets them in
the follow-up round, and every record is read.
"""

from __future__ import annotations

import time
import uuid

from kafka import KafkaProducer

import transports._consumer_sync as cs
from kproto.consumer import TopicPartition
from kproto.consumer.group import ConsumerRebalanceListener

PARTITIONS = 4  # what the broker auto-creates (tests/conftest.py)
PER_PARTITION = 5
OPTS = dict(
    session_timeout_ms=6000,
    heartbeat_interval_ms=500,
    auto_offset_reset="earliest",
    partition_assignment_strategy=["cooperative-sticky"],
    auto_commit_interval_ms=200,
)
WAIT = 60.0


class Recorder(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, frozenset[TopicPartition]]] = []

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", frozenset(revoked)))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.events.append(("assigned", frozenset(assigned)))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.events.append(("lost", frozenset(lost)))


def produce(bootstrap: str, topic: str, tag: bytes) -> set[tuple[int, bytes]]:
    p = KafkaProducer(bootstrap_servers=bootstrap)
    sent = set()
    try:
        for part in range(PARTITIONS):
            for i in range(PER_PARTITION):
                value = b"%s-%d-%d" % (tag, part, i)
                p.send(topic, value=value, partition=part)
                sent.add((part, value))
        p.flush(30)
    finally:
        p.close()
    return sent


def test_two_members_cooperative_sticky(bootstrap: str, topic: str) -> None:
    group = f"coop-{uuid.uuid4().hex[:10]}"
    everything = {TopicPartition(topic, p) for p in range(PARTITIONS)}
    produced = produce(bootstrap, topic, b"a")
    seen: set[tuple[int, bytes]] = set()
    first, second = Recorder(), Recorder()
    c1 = cs.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **OPTS)
    c2 = cs.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **OPTS)
    try:
        c1.subscribe([topic], listener=first)

        def poll(c: cs.KafkaConsumer) -> None:
            for tp, recs in c.poll(timeout_ms=50).items():
                assert tp in c.assignment()
                seen.update((tp.partition, r.value) for r in recs)

        deadline = time.monotonic() + WAIT
        while not (c1.assignment() == everything and produced <= seen):
            assert time.monotonic() < deadline, (c1.assignment(), len(seen))
            poll(c1)
        assert first.events == [("assigned", frozenset(everything))]

        produced |= produce(bootstrap, topic, b"b")
        c2.subscribe([topic], listener=second)
        deadline = time.monotonic() + WAIT
        while not (len(c1.assignment()) == 2 and len(c2.assignment()) == 2 and produced <= seen):
            assert time.monotonic() < deadline, (
                c1.assignment(),
                c2.assignment(),
                first.events,
                second.events,
            )
            poll(c1)
            poll(c2)
            assert not c1.assignment() & c2.assignment()
        kept, moved = c1.assignment(), c2.assignment()
        assert kept | moved == everything
        # The first member revoked just the two partitions that moved, and nothing was lost.
        revocations = [tps for kind, tps in first.events if kind == "revoked"]
        assert revocations == [frozenset(moved)], first.events
        assert not [e for e in first.events + second.events if e[0] == "lost"]
        # The second member was handed exactly those, in the follow-up round.
        assert frozenset(moved) in [tps for kind, tps in second.events if kind == "assigned"]
        assert set().union(*(tps for kind, tps in second.events if kind == "assigned")) == moved
    finally:
        c2.close()
        c1.close()

"""A kproto consumer and a kafka-python consumer in one group (range assignor).

Both advertise the standard consumer protocol; whichever is elected leader
runs the range assignor over both subscriptions. The two assignments must be
disjoint and cover every partition, and each member reads only its own.

Each consumer polls from its own thread, as a real application would. The
kafka-python consumer gets long polls: kafka-python 3.0.12 drops a JoinGroup
result that arrives after ``poll(timeout_ms)`` has returned and sends a fresh
JoinGroup on the next poll, so with Tansu's ~3 s join delay a short poll
timeout can keep it rejoining for ever (seen in CI with 50 ms polls).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from kafka import KafkaConsumer as PeerConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from transports._consumer_sync import KafkaConsumer

PARTITIONS = 6


def test_kproto_and_kafka_python_share_a_range_group(bootstrap: str) -> None:
    topic = f"mix-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    group = f"g-{uuid.uuid4().hex[:8]}"
    opts = dict(group_id=group, session_timeout_ms=6000, heartbeat_interval_ms=500, auto_offset_reset="earliest")
    peer = PeerConsumer(topic, bootstrap_servers=bootstrap, partition_assignment_strategy=_peer_range(), **opts)
    ours = KafkaConsumer(topic, bootstrap_servers=bootstrap, partition_assignment_strategy=["range"], **opts)
    seen: dict[str, set[tuple[str, int]]] = {"theirs": set(), "mine": set()}
    errors: list[BaseException] = []
    stop = threading.Event()

    def run(name: str, consumer: Any, poll_ms: int) -> None:
        try:
            while not stop.is_set():
                consumer.poll(timeout_ms=poll_ms)
                seen[name] = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("theirs", peer, 5000), daemon=True),
        threading.Thread(target=run, args=("mine", ours, 100), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            theirs, mine = seen["theirs"], seen["mine"]
            if theirs and mine and len(theirs | mine) == PARTITIONS:
                break
            assert not errors, errors
            assert time.monotonic() < deadline, (sorted(theirs), sorted(mine))
            time.sleep(0.05)
        assert not theirs & mine
        assert theirs | mine == {(topic, p) for p in range(PARTITIONS)}
        # Range over two members and six partitions: three consecutive partitions each.
        assert sorted(len(x) for x in (theirs, mine)) == [3, 3]
        assert {p for _, p in mine} in ({0, 1, 2}, {3, 4, 5})
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        ours.close()
        peer.close()
    assert not errors, errors


def _peer_range() -> tuple[type, ...]:
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    return (RangePartitionAssignor,)

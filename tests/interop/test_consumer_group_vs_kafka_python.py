"""A kproto consumer and a kafka-python consumer in one group (range assignor).

Both advertise the standard consumer protocol; whichever is elected leader
runs the range assignor over both subscriptions. The two assignments must be
disjoint and cover every partition, and each member reads only its own.
"""

from __future__ import annotations

import time
import uuid

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
    try:
        deadline = time.monotonic() + 60
        while True:
            peer.poll(timeout_ms=50)
            ours.poll(timeout_ms=50)
            theirs = {(tp.topic, tp.partition) for tp in peer.assignment()}
            mine = {(tp.topic, tp.partition) for tp in ours.assignment()}
            if theirs and mine and len(theirs | mine) == PARTITIONS:
                break
            assert time.monotonic() < deadline, (sorted(theirs), sorted(mine))
        assert not theirs & mine
        assert theirs | mine == {(topic, p) for p in range(PARTITIONS)}
        # Range over two members and six partitions: three consecutive partitions each.
        assert sorted(len(x) for x in (theirs, mine)) == [3, 3]
        assert {p for _, p in mine} in ({0, 1, 2}, {3, 4, 5})
    finally:
        ours.close()
        peer.close()


def _peer_range() -> tuple[type, ...]:
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    return (RangePartitionAssignor,)

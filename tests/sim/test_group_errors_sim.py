"""JoinGroup and SyncGroup errors past the rebalance ones, on the simulated cluster.

FENCED_INSTANCE_ID (KIP-345: another member has this group.instance.id) and an
error that is not retriable stop the member: ``poll`` raises it, naming the
request. (consumer/group.py ``_rejoin_or_fail``.)
"""

from __future__ import annotations

import random

import pytest

from kproto.errors import FencedInstanceIdError, GroupAuthorizationFailedError, KafkaError
from tests.sim.test_events_sim import group_member

JOIN_GROUP = 11
SYNC_GROUP = 14


@pytest.mark.parametrize(
    ("api_key", "error", "names"),
    [
        (JOIN_GROUP, FencedInstanceIdError, "'static-1' is used by another member"),
        (SYNC_GROUP, FencedInstanceIdError, "'static-1' is used by another member"),
        (JOIN_GROUP, GroupAuthorizationFailedError, "JoinGroup 'g'"),
        (SYNC_GROUP, GroupAuthorizationFailedError, "SyncGroup 'g'"),
    ],
)
def test_a_fenced_or_refused_member_stops_with_the_error(api_key: int, error: type[KafkaError], names: str) -> None:
    cluster, sim, core = group_member(
        random.Random(11), 2, group_instance_id="static-1", heartbeat_interval_ms=100, session_timeout_ms=3000
    )
    cluster.inject(api_key, error.errno)
    raised: list[KafkaError] = []

    def poll(now: float) -> None:
        try:
            core.poll(None, now)
        except KafkaError as exc:
            raised.append(exc)
            return
        sim.schedule(now + 0.05, poll)

    sim.schedule(0.0, poll)
    assert sim.run(until=lambda: bool(raised), max_time=30.0)
    assert type(raised[0]) is error and names in str(raised[0])
    assert not core.assignment()

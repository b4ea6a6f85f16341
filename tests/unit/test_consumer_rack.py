"""KIP-392 (``client_rack``): the consumer core fetches from the replica its leader names.

A real :class:`ConsumerCore` (with its cluster client) against the scripted
brokers of ``tests/sim/harness.py`` in racks, moved one explicit step at a
time: every request and answer crosses as wire bytes. Fallback to the
leader follows the Java client (``AbstractFetch.selectReadReplica``,
``FetchCollector.handleInitializeErrors``, ``handleFetchFailure``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from kproto.consumer import ConsumerConfig, TopicPartition
from kproto.consumer.core import ConsumerCore
from kproto.protocol.messages import REQUEST_TYPES
from kproto.protocol.records import RecordBatchBuilder
from tests.unit.test_client import T0, Pair

T = "racked"
TP = TopicPartition(T, 0)
API_FETCH = 1
NOT_LEADER_OR_FOLLOWER = 6
REPLICA_NOT_AVAILABLE = 9


class RackPair(Pair):
    """Three brokers in racks r1..r3, one partition, and a ConsumerCore in the rack of a follower."""

    def __init__(self, rack: str | None = None, records: int = 30, **config: Any) -> None:
        super().__init__(n_brokers=3)
        cluster = self.cluster
        cluster.racks = {1: "r1", 2: "r2", 3: "r3"}
        cluster.create_topic(T, 0.0, partitions=1)
        self.leader = cluster.leader(T, 0)
        #: The broker in the consumer's rack (a follower).
        self.near = next(b for b in sorted(cluster.brokers) if b != self.leader)
        self.rack = f"r{self.near}" if rack is None else rack
        log = cluster.log(T, 0)
        for start in range(0, records, 10):
            b = RecordBatchBuilder()
            for i in range(start, start + 10):
                b.append(timestamp_ms=1_000 + i, key=None, value=b"v%d" % i)
            log.append(b.seal())
        #: ``(node_id, request frame)`` of every Fetch the brokers received.
        self.fetch_frames: list[tuple[int, bytes]] = []
        #: Brokers that never answer a Fetch.
        self.silent: set[int] = set()
        for broker in cluster.brokers.values():
            broker.handle = self._recording(broker)  # type: ignore[method-assign]
        config.setdefault("auto_offset_reset", "earliest")
        config.setdefault("metadata_max_age_ms", 60_000)
        self.core = ConsumerCore(
            ConsumerConfig.from_kwargs(bootstrap_servers=cluster.bootstrap, client_rack=self.rack, **config),
            now=T0, rng=random.Random(3),
        )
        self.client = self.core  # type: ignore[assignment]  # Pair drives whatever core it holds
        self.got: list[int] = []

    def _recording(self, broker: Any) -> Any:
        handle = broker.handle

        def recording(frame: bytes, now: float) -> Any:
            if int.from_bytes(frame[:2], "big") == API_FETCH:
                self.fetch_frames.append((broker.node_id, frame))
                if broker.node_id in self.silent:
                    return None, 0  # a black hole: the request stays in flight
            return handle(frame, now)

        return recording

    def run(self, now: float, rounds: int = 12) -> None:
        """Exchange ``rounds`` times and poll what arrived."""
        for _ in range(rounds):
            self.core.handle_timer(now)
            self.settle(now)
            for recs in self.core.poll(None, now).values():
                self.got.extend(r.offset for r in recs)

    def fetch_nodes(self) -> list[int]:
        """The node of each Fetch since the last call, in order."""
        nodes = [n for n, _ in self.fetch_frames]
        self.fetch_frames.clear()
        return nodes


def decode_fetch(frame: bytes) -> tuple[int, Any]:
    version = int.from_bytes(frame[2:4], "big")
    # Header v2: api key, version, correlation id, client id (int16 length), tagged fields.
    pos = 8 + 2 + int.from_bytes(frame[8:10], "big")
    pos += 1  # no tagged fields in the header
    req, end = REQUEST_TYPES[API_FETCH].read(memoryview(frame), pos, version)
    assert end == len(frame)
    return version, req


def started(**kw: Any) -> RackPair:
    """A RackPair whose consumer followed the leader's redirect to the near follower."""
    p = RackPair(**kw)
    p.core.assign([TP], T0)
    p.run(T0)
    return p


def test_fetch_sends_client_rack_and_follows_the_preferred_read_replica() -> None:
    p = RackPair()
    p.core.assign([TP], T0)
    p.run(T0)
    (leader_first, _), *rest = p.fetch_frames
    assert leader_first == p.leader  # no replica known yet: the leader first
    version, req = decode_fetch(p.fetch_frames[0][1])
    assert version == 12 and req.rack_id == p.rack
    # rack_id is the last field of Fetch v12: a compact string, then the empty tagged fields.
    assert p.fetch_frames[0][1].endswith(bytes([len(p.rack) + 1]) + p.rack.encode() + b"\x00")
    # The leader named the replica in our rack; every later Fetch went there.
    assert p.cluster.brokers[p.leader].redirects == 1
    assert {n for n, _ in rest} == {p.near}
    assert p.core.read_replica(TP) == p.near
    assert p.got == list(range(30))
    assert p.cluster.brokers[p.leader].served[0] == 0  # not one record byte came from the leader
    assert p.cluster.brokers[p.near].served[1] > 0
    requests, nbytes = p.core.fetches_by_node()[p.near]
    assert requests - len(rest) in (0, 1) and nbytes > 0  # sent = answered (+ one on its way)
    assert p.core.fetches_by_node()[p.leader][1] == 0


def test_without_client_rack_or_a_replica_in_the_rack_the_leader_serves() -> None:
    for rack in ("", "elsewhere"):
        p = started(rack=rack)
        assert set(p.fetch_nodes()) == {p.leader}
        assert p.cluster.brokers[p.leader].redirects == 0
        assert p.core.read_replica(TP) == p.leader and p.got == list(range(30))


def test_the_preferred_replica_lease_ends_after_metadata_max_age() -> None:
    p = started(metadata_max_age_ms=5_000)
    assert p.core.read_replica(TP) == p.near
    p.fetch_nodes()
    p.run(T0 + 4.9, rounds=1)
    assert p.core.read_replica(TP) == p.near and set(p.fetch_nodes()) == {p.near}
    p.run(T0 + 5.0, rounds=1)
    # Lease over: the leader is asked again (once), and names the replica again.
    nodes = p.fetch_nodes()
    assert nodes.count(p.leader) == 1 and nodes[-1] == p.near
    assert p.cluster.brokers[p.leader].redirects == 2
    assert p.core.read_replica(TP) == p.near


def append(p: RackPair, first: int, n: int) -> None:
    b = RecordBatchBuilder()
    for i in range(first, first + n):
        b.append(timestamp_ms=2_000 + i, key=None, value=b"v%d" % i)
    p.cluster.log(T, 0).append(b.seal())


def test_offset_out_of_range_at_the_replica_goes_to_the_leader_without_a_reset() -> None:
    p = started()
    p.cluster.lag_follower(T, 0, p.near, 30)  # the replica's log ends at 30...
    append(p, 30, 10)  # ...the leader's at 40
    p.core.seek(TP, 35, T0 + 1)
    p.fetch_nodes()
    p.run(T0 + 1, rounds=1)
    nodes = p.fetch_nodes()
    # OFFSET_OUT_OF_RANGE from the replica: the leader next (its selector skips the
    # replica, which lacks offset 35, and serves).
    first_leader = nodes.index(p.leader)
    assert set(nodes[:first_leader]) == {p.near} and set(nodes[first_leader:]) == {p.leader}
    assert p.core.position(TP) == 40  # no reset to earliest
    assert p.got == list(range(30)) + list(range(35, 40))
    assert p.cluster.brokers[p.leader].served[0] > 0


def test_not_leader_or_replica_not_available_from_the_replica_falls_back_and_refreshes() -> None:
    for code in (NOT_LEADER_OR_FOLLOWER, REPLICA_NOT_AVAILABLE):
        p = started(retry_backoff_ms=100)
        metadata_before = sum(k == 3 for b in p.cluster.brokers.values() for k, _ in b.requests)
        p.cluster.fetch_errors[p.near] = [code]
        p.fetch_nodes()
        p.run(T0 + 1, rounds=1)
        assert p.fetch_nodes() == [p.near]  # the error, then the retry backoff
        assert p.core.read_replica(TP) == p.leader  # dropped at once, as Java's requestMetadataUpdate
        metadata_after = sum(k == 3 for b in p.cluster.brokers.values() for k, _ in b.requests)
        assert metadata_after > metadata_before
        append(p, 30, 5)
        p.run(T0 + 1.1, rounds=1)
        nodes = p.fetch_nodes()
        assert nodes[0] == p.leader and set(nodes[1:]) == {p.near}  # asked again, redirected again
        assert p.got == list(range(35))


def test_a_lost_connection_to_the_replica_falls_back_to_the_leader() -> None:
    p = started(retry_backoff_ms=100)
    p.silent.add(p.near)
    p.fetch_nodes()
    p.run(T0 + 1, rounds=1)
    assert set(p.fetch_nodes()) == {p.near}  # one Fetch, in flight for good
    assert p.core.read_replica(TP) == p.near
    p.core.connection_lost(p.near, ConnectionResetError("reset"), T0 + 1)
    assert p.core.read_replica(TP) == p.leader
    p.inbuf.pop(p.near, None)
    p.silent.clear()  # the replica is back: the leader names it again, over a new connection
    append(p, 30, 5)
    p.run(T0 + 1.1, rounds=1)
    nodes = p.fetch_nodes()
    assert nodes[0] == p.leader and set(nodes[1:]) == {p.near}
    assert p.got == list(range(35))


def leave_isr(p: RackPair) -> None:
    p.cluster.leave_isr(T, 0, p.near)


def leave_metadata(p: RackPair) -> None:
    p.cluster.brokers[p.near].up = False  # no longer listed in Metadata
    p.cluster.racks[p.near] = "gone"


@pytest.mark.parametrize("fault", [leave_isr, leave_metadata])
def test_a_replica_out_of_the_isr_or_the_metadata_is_not_read_from(fault: Callable[[RackPair], None]) -> None:
    p = started(retry_backoff_ms=100)
    fault(p)
    p.core._client.request_metadata_update(T0 + 1)
    p.run(T0 + 1, rounds=1)
    cluster = p.core._client.cluster
    assert p.near not in cluster.partition_info(T, 0).isr
    assert (cluster.broker(p.near) is None) == (fault is leave_metadata)
    assert p.core.read_replica(TP) == p.leader
    p.fetch_nodes()
    append(p, 30, 5)
    p.run(T0 + 1.5, rounds=1)
    # The leader's selector skips it too: the leader serves.
    assert set(p.fetch_nodes()) == {p.leader}
    assert p.got == list(range(35))


def test_a_leader_naming_an_unknown_replica_is_asked_again_only_after_the_backoff() -> None:
    p = RackPair(retry_backoff_ms=100)
    p.cluster.brokers[p.leader]._preferred_replica = lambda *_: 99  # type: ignore[method-assign]
    p.core.assign([TP], T0)
    p.run(T0, rounds=3)
    # One Fetch named node 99, which no Metadata lists: no loop of instant redirects...
    assert p.fetch_nodes() == [p.leader] and p.core.read_replica(TP) == p.leader
    p.run(T0 + 0.1, rounds=1)
    # ...the next one waits retry_backoff_ms (and a metadata refresh went out meanwhile).
    assert p.fetch_nodes() == [p.leader]
    assert p.got == []

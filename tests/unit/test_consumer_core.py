"""ConsumerCore driven with scripted broker responses and explicit time.

A scripted client stands in for the cluster client: it records every
request the core sends; the test answers with generated response messages,
encoded to bytes and decoded again at the version a broker would use, so the
core sees exactly what it would see from the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from kproto.consumer import ConsumerConfig, OffsetAndMetadata, TopicPartition
from kproto.consumer.core import ConsumerCore
from kproto.driving import Command
from kproto.errors import (
    IllegalStateError,
    KafkaConfigurationError,
    NoOffsetForPartitionError,
    TopicAuthorizationFailedError,
)
from kproto.protocol.messages import (
    FetchResponse,
    ListOffsetsResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
)
from kproto.protocol.messages import fetch as F
from kproto.protocol.messages import list_offsets as LO
from kproto.protocol.messages import offset_commit as OC
from kproto.protocol.messages import offset_fetch as OF
from kproto.protocol.records import RecordBatchBuilder

T = "topic"
TP0, TP1 = TopicPartition(T, 0), TopicPartition(T, 1)
COORD = 2**31 - 1


class Cluster:
    def __init__(self) -> None:
        self.leaders: dict[tuple[str, int], int] = {(T, 0): 1, (T, 1): 2}

    def leader_for(self, topic: str, partition: int) -> int | None:
        return self.leaders.get((topic, partition))

    def partitions_for(self, topic: str) -> set[int] | None:
        parts = {p for t, p in self.leaders if t == topic}
        return parts or None


class ScriptedClient:
    """Records requests; the test completes them with :meth:`answer`."""

    def __init__(self) -> None:
        self.cluster = Cluster()
        self.sent: list[tuple[Any, Callable[[Any, BaseException | None], None], int | None, int | None]] = []
        self.metadata_updates = 0
        self.topics: set[str] = set()
        self.coordinator_known = True
        self.dead_coordinators = 0

    def connection_made(self, node_id: int, now: float) -> None: ...
    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None: ...
    def receive_data(self, node_id: int, data: bytes, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def commands(self) -> list[Command]:
        return []
    def data_to_send(self) -> list[tuple[int, bytes]]:
        return []
    def get_timer(self) -> float | None:
        return None
    def events(self) -> list[object]:
        return []

    def send(self, request: Any, *, now: float, callback: Callable[[Any, BaseException | None], None],
             node_id: int | None = None, max_version: int | None = None, timeout_ms: int | None = None) -> None:
        self.sent.append((request, callback, node_id, max_version))

    def add_topics(self, topics: Iterable[str], now: float) -> None:
        self.topics |= set(topics)

    def request_metadata_update(self, now: float) -> None:
        self.metadata_updates += 1

    def coordinator(self, key: str, key_type: int, now: float) -> int | None:
        return COORD if self.coordinator_known else None

    def mark_coordinator_dead(self, key: str, key_type: int, now: float) -> None:
        self.dead_coordinators += 1

    responses_with_trailing_bytes = 0

    def versions_sent(self) -> dict[int, int]:
        return {}

    def bootstrap_connected(self) -> bool:
        return True

    def close(self, now: float) -> None: ...

    # --- test helpers -------------------------------------------------------
    def take(self, kind: str) -> list[tuple[Any, Callable[[Any, BaseException | None], None], int | None, int | None]]:
        """Remove and return the outstanding requests of one type (e.g. 'FetchRequest')."""
        mine = [s for s in self.sent if type(s[0]).__name__ == kind]
        self.sent = [s for s in self.sent if type(s[0]).__name__ != kind]
        return mine


def wire(resp: Any, version: int) -> Any:
    return type(resp).decode(resp.encode(version), version)


def records(base: int, n: int, prefix: bytes = b"v") -> bytes:
    b = RecordBatchBuilder()
    for i in range(n):
        b.append(timestamp_ms=1000 + i, key=None, value=prefix + b"%d" % (base + i))
    return b.seal(base_offset=base)


def fetch_response(parts: dict[int, tuple[int, bytes]], hw: int = 100) -> Any:
    """``{partition: (error_code, records)}`` -> a decoded v12 FetchResponse."""
    return wire(FetchResponse(responses=[F.FetchableTopicResponse(topic=T, partitions=[
        F.PartitionData(partition_index=p, error_code=code, high_watermark=hw, last_stable_offset=hw,
                        records=recs)
        for p, (code, recs) in parts.items()])]), 12)


def list_offsets_response(offsets: dict[int, int], code: int = 0) -> Any:
    return wire(ListOffsetsResponse(topics=[LO.ListOffsetsTopicResponse(name=T, partitions=[
        LO.ListOffsetsPartitionResponse(partition_index=p, error_code=code, timestamp=-1, offset=o)
        for p, o in offsets.items()])]), 5)


def make(**kw: Any) -> tuple[ConsumerCore, ScriptedClient]:
    client = ScriptedClient()
    core = ConsumerCore(ConsumerConfig.from_kwargs(**kw), now=0.0, client=client)
    return core, client


def deliver(core: ConsumerCore, cb: Callable[[Any, BaseException | None], None], resp: Any,
            now: float = 0.0) -> None:
    """Complete a request as the client does: inside a driving input, after which the core pumps."""
    cb(resp, None)
    core.handle_timer(now)


def join_as_follower(core: ConsumerCore, client: ScriptedClient, generation: int, partitions: list[int]) -> None:
    """Answer the core's JoinGroup as member "me" led by another, and its SyncGroup with ``partitions`` of T."""
    from kproto.consumer.assignors import encode_assignment
    from kproto.protocol.messages import JoinGroupResponse, SyncGroupResponse

    ((_, cb, _, _),) = client.take("JoinGroupRequest")
    deliver(core, cb, wire(JoinGroupResponse(generation_id=generation, protocol_name="range", leader="other",
                                             member_id="me", members=[]), 5))
    ((sreq, scb, _, _),) = client.take("SyncGroupRequest")
    assert sreq.assignments == []  # a follower assigns nothing
    deliver(core, scb, wire(SyncGroupResponse(assignment=encode_assignment({T: partitions})), 3))


def answer_list_offsets(client: ScriptedClient, offsets: dict[int, int]) -> list[int]:
    """Answer every outstanding ListOffsets; returns the timestamps asked."""
    asked = []
    for req, cb, _node, _mv in client.take("ListOffsetsRequest"):
        parts = [p.partition_index for t in req.topics for p in t.partitions]
        asked += [p.timestamp for t in req.topics for p in t.partitions]
        cb(list_offsets_response({p: offsets[p] for p in parts}), None)
    return asked


def test_assign_resets_then_fetches_per_leader() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0, TP1], now=0.0)
    assert client.topics == {T}
    assert core.position(TP0) is None
    assert answer_list_offsets(client, {0: 5, 1: 7}) == [-2, -2]
    assert (core.position(TP0), core.position(TP1)) == (5, 7)
    fetches = client.take("FetchRequest")
    assert sorted(node for _, _, node, _ in fetches) == [1, 2]
    for req, _cb, node, max_version in fetches:
        assert max_version is None  # the version cap lives in kproto.protocol.versions
        assert (req.session_id, req.session_epoch, req.isolation_level) == (0, 0, 0)  # asks for a session
        assert (req.max_wait_ms, req.min_bytes, req.max_bytes) == (500, 1, 52428800)
        (topic,) = req.topics
        (p,) = topic.partitions
        assert p.fetch_offset == {1: 5, 2: 7}[node]
        assert p.partition_max_bytes == 1048576


def test_latest_is_the_default_reset() -> None:
    core, client = make()
    core.assign([TP0], now=0.0)
    assert answer_list_offsets(client, {0: 42}) == [-1]
    assert core.position(TP0) == 42


def test_poll_returns_records_and_prefetches() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    assert core.poll(None, 0.1) == {}
    ((req, cb, node, _),) = client.take("FetchRequest")
    deliver(core, cb, fetch_response({0: (0, records(0, 3) + records(3, 2))}))
    # The next fetch goes out at once, from the end of what is buffered.
    ((req2, cb2, _, _),) = client.take("FetchRequest")
    assert req2.topics[0].partitions[0].fetch_offset == 5
    assert core.position(TP0) == 0
    got = core.poll(2, 0.2)
    assert [r.value for r in got[TP0]] == [b"v0", b"v1"]
    assert core.position(TP0) == 2
    got = core.poll(None, 0.3)
    assert [r.offset for r in got[TP0]] == [2, 3, 4]
    assert core.position(TP0) == 5
    assert core.highwater(TP0) == 100


def test_seek_drops_buffer_and_stale_fetch() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    core.seek(TP0, 50, now=0.1)
    assert core.position(TP0) == 50
    cb(fetch_response({0: (0, records(0, 3))}), None)  # answer for the old position
    assert core.poll(None, 0.2) == {}
    fetches = client.take("FetchRequest")
    assert [f[0].topics[0].partitions[0].fetch_offset for f in fetches] == [50]
    with pytest.raises(ValueError, match="offset"):
        core.seek(TP0, -1, now=0.3)
    with pytest.raises(IllegalStateError):
        core.seek(TopicPartition("other", 0), 1, now=0.3)


def test_seek_to_beginning_and_end() -> None:
    core, client = make()
    core.assign([TP0, TP1], now=0.0)
    answer_list_offsets(client, {0: 10, 1: 10})
    client.take("FetchRequest")
    core.seek_to_beginning([TP0], now=0.1)
    assert core.position(TP0) is None and core.position(TP1) == 10
    assert answer_list_offsets(client, {0: 0}) == [-2]
    assert core.position(TP0) == 0
    core.seek_to_end([], now=0.2)
    assert answer_list_offsets(client, {0: 99, 1: 98}) == [-1, -1]
    assert (core.position(TP0), core.position(TP1)) == (99, 98)


def test_offset_out_of_range_resets_per_policy() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    client.take("ListOffsetsRequest")  # the reset that the seek overrides
    core.seek(TP0, 1000, now=0.0)
    ((_, cb, _, _),) = client.take("FetchRequest")
    deliver(core, cb, fetch_response({0: (1, b"")}))  # OFFSET_OUT_OF_RANGE
    assert core.position(TP0) is None
    assert answer_list_offsets(client, {0: 3}) == [-2]
    assert core.position(TP0) == 3


def test_offset_out_of_range_without_policy_raises_from_poll() -> None:
    core, client = make(auto_offset_reset="none")
    core.assign([TP0], now=0.0)
    core.seek(TP0, 1000, now=0.0)
    ((_, cb, _, _),) = client.take("FetchRequest")
    cb(fetch_response({0: (1, b"")}), None)
    with pytest.raises(NoOffsetForPartitionError, match="topic-0"):
        core.poll(None, 0.1)
    assert client.take("FetchRequest") == [] and client.take("ListOffsetsRequest") == []
    core.seek(TP0, 0, now=0.2)  # the user chooses; fetching resumes
    assert len(client.take("FetchRequest")) == 1


def test_no_committed_offset_and_no_policy_raises() -> None:
    core, client = make(group_id="g", auto_offset_reset="none", enable_auto_commit=False)
    core.assign([TP0], now=0.0)
    ((req, cb, node, mv),) = client.take("OffsetFetchRequest")
    assert node == COORD and mv is None and req.group_id == "g"
    cb(wire(OffsetFetchResponse(topics=[OF.OffsetFetchResponseTopic(name=T, partitions=[
        OF.OffsetFetchResponsePartition(partition_index=0, committed_offset=-1, metadata="")])]), 7), None)
    with pytest.raises(NoOffsetForPartitionError):
        core.poll(None, 0.1)


def test_committed_offset_is_the_starting_position() -> None:
    core, client = make(group_id="g", enable_auto_commit=False)
    core.assign([TP0], now=0.0)
    ((_, cb, _, _),) = client.take("OffsetFetchRequest")
    cb(wire(OffsetFetchResponse(topics=[OF.OffsetFetchResponseTopic(name=T, partitions=[
        OF.OffsetFetchResponsePartition(partition_index=0, committed_offset=17, metadata="m")])]), 7), None)
    assert core.position(TP0) == 17
    assert client.take("ListOffsetsRequest") == []


def test_not_leader_refreshes_metadata_and_backs_off() -> None:
    core, client = make(auto_offset_reset="earliest", retry_backoff_ms=100)
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    cb(fetch_response({0: (6, b"")}), None)  # NOT_LEADER_OR_FOLLOWER
    assert client.metadata_updates == 1
    assert core.get_timer() == pytest.approx(0.1)
    assert client.take("FetchRequest") == []
    client.cluster.leaders[(T, 0)] = 2
    core.handle_timer(0.1)
    ((_, _, node, _),) = client.take("FetchRequest")
    assert node == 2


def test_fatal_partition_error_surfaces_from_poll() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    cb(fetch_response({0: (29, b"")}), None)  # TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(TopicAuthorizationFailedError):
        core.poll(None, 0.1)


def test_a_drivers_failure_is_raised_from_the_next_poll_once() -> None:
    """``fail`` is how a driver's background thread (the sync heartbeat thread) hands poll its error."""
    core, _ = make()
    error = RuntimeError("the heartbeat thread died")
    core.fail(error)
    assert core.has_buffered()
    with pytest.raises(RuntimeError) as raised:
        core.poll(None, 0.0)
    assert raised.value is error
    assert core.poll(None, 0.0) == {}


def test_pause_keeps_buffer_and_stops_fetching() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    core.pause([TP0])
    assert core.paused() == {TP0}
    cb(fetch_response({0: (0, records(0, 2))}), None)
    assert client.take("FetchRequest") == []
    assert core.poll(None, 0.1) == {}
    core.resume([TP0], now=0.2)
    assert core.paused() == set()
    assert [r.offset for r in core.poll(None, 0.3)[TP0]] == [0, 1]


def test_read_committed_fetch_and_aborted_data() -> None:
    core, client = make(auto_offset_reset="earliest", isolation_level="read_committed")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((req, cb, _, _),) = client.take("FetchRequest")
    assert req.isolation_level == 1
    b = RecordBatchBuilder()
    b.append(timestamp_ms=1, key=None, value=b"aborted")
    txn = b.seal(base_offset=0, producer_id=9, producer_epoch=0, is_transactional=True)
    resp = wire(FetchResponse(responses=[F.FetchableTopicResponse(topic=T, partitions=[
        F.PartitionData(partition_index=0, high_watermark=3, last_stable_offset=3,
                        aborted_transactions=[F.AbortedTransaction(producer_id=9, first_offset=0)],
                        records=txn + records(1, 2))])]), 12)
    cb(resp, None)
    assert [r.value for r in core.poll(None, 0.1)[TP0]] == [b"v1", b"v2"]


def test_commit_needs_group_and_sends_simple_consumer_commit() -> None:
    core, _ = make()
    with pytest.raises(KafkaConfigurationError, match="group_id"):
        core.commit(None, now=0.0)
    with pytest.raises(KafkaConfigurationError, match="group_id"):
        core.committed([TP0], now=0.0)
    core, client = make(group_id="g", enable_auto_commit=False)
    core.assign([TP0], now=0.0)
    client.take("OffsetFetchRequest")
    core.seek(TP0, 12, now=0.0)
    p = core.commit(None, now=0.1)
    ((req, cb, node, mv),) = client.take("OffsetCommitRequest")
    assert (node, mv, req.group_id, req.generation_id_or_member_epoch, req.member_id) == (COORD, None, "g", -1, "")
    assert [(t.name, [(x.partition_index, x.committed_offset) for x in t.partitions]) for t in req.topics] == [
        (T, [(0, 12)])]
    assert not p.done
    cb(wire(OffsetCommitResponse(topics=[OC.OffsetCommitResponseTopic(name=T, partitions=[
        OC.OffsetCommitResponsePartition(partition_index=0, error_code=0)])]), 8), None)
    assert p.done and p.result() == {TP0: OffsetAndMetadata(12, "", -1)}


def test_commit_retries_on_not_coordinator() -> None:
    core, client = make(group_id="g", enable_auto_commit=False, retry_backoff_ms=50)
    p = core.commit({TP0: 3}, now=0.0)
    ((_, cb, _, _),) = client.take("OffsetCommitRequest")
    cb(wire(OffsetCommitResponse(topics=[OC.OffsetCommitResponseTopic(name=T, partitions=[
        OC.OffsetCommitResponsePartition(partition_index=0, error_code=16)])]), 8), None)
    assert client.dead_coordinators == 1 and not p.done
    assert core.get_timer() == pytest.approx(0.05)
    core.handle_timer(0.05)
    ((_, cb, _, _),) = client.take("OffsetCommitRequest")
    cb(wire(OffsetCommitResponse(topics=[OC.OffsetCommitResponseTopic(name=T, partitions=[
        OC.OffsetCommitResponsePartition(partition_index=0, error_code=0)])]), 8), None)
    assert p.result() == {TP0: OffsetAndMetadata(3, "", -1)}


def test_auto_commit_on_its_interval() -> None:
    core, client = make(group_id="g", auto_commit_interval_ms=1000)
    core.assign([TP0], now=0.0)
    client.take("OffsetFetchRequest")
    core.seek(TP0, 8, now=0.0)
    assert core.get_timer() == pytest.approx(1.0)
    core.handle_timer(1.0)
    ((req, cb, _, _),) = client.take("OffsetCommitRequest")
    assert req.topics[0].partitions[0].committed_offset == 8
    cb(wire(OffsetCommitResponse(topics=[OC.OffsetCommitResponseTopic(name=T, partitions=[
        OC.OffsetCommitResponsePartition(partition_index=0, error_code=0)])]), 8), None)
    core.handle_timer(2.0)  # nothing moved: nothing to commit
    assert client.take("OffsetCommitRequest") == []
    done = core.close(2.5)
    assert done.done  # nothing new to commit on close either


def test_subscribe_and_assign_exclude_each_other() -> None:
    core, _ = make()
    core.assign([TP0], now=0.0)
    with pytest.raises(IllegalStateError):
        core.subscribe([T], now=0.0)
    core.unsubscribe(now=0.0)
    core.subscribe([T], now=0.0)
    with pytest.raises(IllegalStateError):
        core.assign([TP0], now=0.0)


def test_subscribe_without_group_assigns_every_partition() -> None:
    core, client = make()
    core.subscribe([T], now=0.0)
    core._update_subscribed_assignment(0.0)  # what a MetadataUpdated event triggers
    assert core.assignment() == {TP0, TP1}
    assert core.subscription() == {T}


def test_group_join_sync_heartbeat_and_rebalance() -> None:
    from kproto.consumer.assignors import decode_subscription, encode_subscription
    from kproto.consumer.group import ConsumerRebalanceListener
    from kproto.protocol.messages import HeartbeatResponse, JoinGroupResponse, SyncGroupResponse
    from kproto.protocol.messages import join_group as JG

    calls: list[tuple[str, set[TopicPartition]]] = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
            calls.append(("revoked", revoked))

        def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
            calls.append(("assigned", assigned))

    core, client = make(group_id="g", enable_auto_commit=False, heartbeat_interval_ms=1000)
    core.subscribe([T], now=0.0, listener=Listener())
    ((req, cb, node, _),) = client.take("JoinGroupRequest")
    assert (node, req.group_id, req.member_id, req.protocol_type) == (COORD, "g", "", "consumer")
    assert [p.name for p in req.protocols] == ["range", "roundrobin"]
    assert list(decode_subscription(req.protocols[0].metadata).topics) == [T]
    # KIP-394: the first JoinGroup is answered with a member id to use.
    deliver(core, cb, wire(JoinGroupResponse(error_code=79, member_id="m1"), 5))
    ((req, cb, _, _),) = client.take("JoinGroupRequest")
    assert req.member_id == "m1"
    members = [JG.JoinGroupResponseMember(member_id=m, metadata=encode_subscription([T])) for m in ("m2", "m1")]
    deliver(core, cb, wire(JoinGroupResponse(generation_id=3, protocol_type="consumer", protocol_name="range",
                                             leader="m1", member_id="m1", members=members), 5))
    ((sreq, scb, _, _),) = client.take("SyncGroupRequest")
    assert (sreq.generation_id, sreq.member_id, sreq.protocol_name) == (3, "m1", "range")
    from kproto.consumer.assignors import decode_assignment

    plan = {a.member_id: decode_assignment(a.assignment) for a in sreq.assignments}
    assert plan == {"m1": {TP0}, "m2": {TP1}}
    deliver(core, scb, wire(SyncGroupResponse(assignment=sreq.assignments[[a.member_id for a in
                                                                            sreq.assignments].index("m1")].assignment), 3))
    assert core.assignment() == {TP0}
    assert calls == []  # listeners run inside poll
    core.poll(None, 0.1)
    assert calls == [("assigned", {TP0})]
    # Heartbeats every heartbeat_interval_ms; a rebalance is joined from the next poll.
    assert core.get_timer() == pytest.approx(1.0)
    core.handle_timer(1.0)
    ((hreq, hcb, _, _),) = client.take("HeartbeatRequest")
    assert (hreq.generation_id, hreq.member_id) == (3, "m1")
    deliver(core, hcb, wire(HeartbeatResponse(error_code=27), 4), 1.0)
    assert client.take("JoinGroupRequest") == [] and core.assignment() == {TP0}
    core.poll(None, 1.1)
    assert calls[-1] == ("revoked", {TP0}) and core.assignment() == set()
    ((req, _, _, _),) = client.take("JoinGroupRequest")
    assert req.member_id == "m1"


def lone_leader_assigns_without_metadata() -> tuple[Any, Any, Any, Any, Any]:
    """A one-member group whose topic has no metadata yet: the leader's SyncGroup assigns nothing.

    Returns the core, the client, the topic's saved leaders, and the SyncGroup request and callback.
    """
    from kproto.consumer.assignors import decode_assignment, encode_subscription
    from kproto.protocol.messages import JoinGroupResponse
    from kproto.protocol.messages import join_group as JG

    core, client = make(group_id="g", enable_auto_commit=False)
    saved, client.cluster.leaders = client.cluster.leaders, {}  # the topic has no metadata yet
    core.subscribe([T], now=0.0)
    ((_, cb, _, _),) = client.take("JoinGroupRequest")
    members = [JG.JoinGroupResponseMember(member_id="m1", metadata=encode_subscription([T]))]
    deliver(core, cb, wire(JoinGroupResponse(generation_id=1, protocol_name="range", leader="m1",
                                             member_id="m1", members=members), 5))
    core.handle_timer(10.0)  # the metadata wait ends without the topic
    ((sreq, scb, _, _),) = client.take("SyncGroupRequest")
    assert [decode_assignment(a.assignment) for a in sreq.assignments] == [set()]
    return core, client, saved, sreq, scb


def test_leader_rejoins_when_a_topic_it_assigned_without_metadata_gets_partitions() -> None:
    """A group formed before its new topic's metadata came assigns nothing; once metadata shows
    the partitions, the leader rejoins so they are assigned (Java's assignment snapshot check)."""
    from kproto.events import MetadataUpdated
    from kproto.protocol.messages import SyncGroupResponse

    core, client, saved, sreq, scb = lone_leader_assigns_without_metadata()
    deliver(core, scb, wire(SyncGroupResponse(assignment=sreq.assignments[0].assignment), 3), 10.0)
    assert core.assignment() == set() and client.take("JoinGroupRequest") == []
    client.cluster.leaders = saved  # the topic's partitions show up in the next metadata
    updates = [MetadataUpdated(version=2, topics=frozenset({T}))]
    client.events = lambda: [updates.pop()] if updates else []  # type: ignore[method-assign]
    core.handle_timer(11.0)
    ((req, _, _, _),) = client.take("JoinGroupRequest")
    assert req.member_id == "m1"


def test_leader_rejoins_when_the_partitions_came_while_its_sync_was_in_flight() -> None:
    """Metadata that shows the partitions between the leader's empty assignment and its
    SyncGroup answer is not lost: the leader rejoins from the next poll."""
    from kproto.events import MetadataUpdated
    from kproto.protocol.messages import SyncGroupResponse

    core, client, saved, sreq, scb = lone_leader_assigns_without_metadata()
    # The partitions show up while the SyncGroup is in flight.
    client.cluster.leaders = saved
    updates = [MetadataUpdated(version=2, topics=frozenset({T}))]
    client.events = lambda: [updates.pop()] if updates else []  # type: ignore[method-assign]
    core.handle_timer(10.5)
    assert updates == [] and client.take("JoinGroupRequest") == []
    deliver(core, scb, wire(SyncGroupResponse(assignment=sreq.assignments[0].assignment), 3), 11.0)
    assert core.assignment() == set()
    core.poll(None, 11.1)
    ((req, _, _, _),) = client.take("JoinGroupRequest")
    assert req.member_id == "m1"


def test_commit_in_a_group_carries_the_generation() -> None:
    from kproto.consumer.assignors import encode_subscription
    from kproto.errors import CommitFailedError
    from kproto.protocol.messages import join_group as JG

    core, client = make(group_id="g", enable_auto_commit=False)
    core.subscribe([T], now=0.0)
    join_as_follower(core, client, 5, [1])
    assert core.assignment() == {TP1}
    p = core.commit({TP1: 4}, now=0.1)
    ((creq, ccb, _, _),) = client.take("OffsetCommitRequest")
    assert (creq.generation_id_or_member_epoch, creq.member_id) == (5, "me")
    deliver(core, ccb, wire(OffsetCommitResponse(topics=[OC.OffsetCommitResponseTopic(name=T, partitions=[
        OC.OffsetCommitResponsePartition(partition_index=1, error_code=22)])]), 8), 0.2)
    with pytest.raises(CommitFailedError):
        p.result()
    assert JG and encode_subscription  # imported for symmetry with the join test


def test_list_offsets_for_times_maps_answers() -> None:
    core, client = make()
    p = core.list_offsets({TP0: 1_000, TP1: 2_000}, now=0.0)
    reqs = client.take("ListOffsetsRequest")
    assert sorted(node for _, _, node, _ in reqs) == [1, 2]
    for req, cb, node, _ in reqs:
        (part,) = req.topics[0].partitions
        assert part.timestamp == {1: 1_000, 2: 2_000}[node]
        if node == 1:
            resp = ListOffsetsResponse(topics=[LO.ListOffsetsTopicResponse(name=T, partitions=[
                LO.ListOffsetsPartitionResponse(partition_index=0, timestamp=1_005, offset=4, leader_epoch=3)])])
        else:  # no record at or after the timestamp: offset -1
            resp = ListOffsetsResponse(topics=[LO.ListOffsetsTopicResponse(name=T, partitions=[
                LO.ListOffsetsPartitionResponse(partition_index=1, timestamp=-1, offset=-1)])])
        deliver(core, cb, wire(resp, 5))
    got = p.result()
    assert (got[TP0].offset, got[TP0].timestamp, got[TP0].leader_epoch) == (4, 1_005, 3)
    assert got[TP1] is None
    with pytest.raises(ValueError):
        core.list_offsets({TP0: -3}, now=0.0)


def test_unknown_leader_waits_for_metadata() -> None:
    core, client = make(retry_backoff_ms=100)
    client.cluster.leaders.pop((T, 1))
    p = core.list_offsets({TP1: -1}, now=0.0)
    assert client.take("ListOffsetsRequest") == [] and client.metadata_updates == 1
    client.cluster.leaders[(T, 1)] = 2
    core.handle_timer(0.1)
    ((_, cb, node, _),) = client.take("ListOffsetsRequest")
    deliver(core, cb, list_offsets_response({1: 9}), 0.2)
    assert node == 2 and p.result()[TP1].offset == 9


def fetch_response_session(session_id: int, parts: dict[int, tuple[int, bytes]], code: int = 0) -> Any:
    return wire(FetchResponse(error_code=code, session_id=session_id, responses=[
        F.FetchableTopicResponse(topic=T, partitions=[
            F.PartitionData(partition_index=p, error_code=c, high_watermark=100, records=r)
            for p, (c, r) in parts.items()])] if parts else []), 12)


def test_fetch_session_full_then_incremental_then_reset() -> None:
    core, client = make(auto_offset_reset="earliest")
    client.cluster.leaders[(T, 1)] = 1  # both partitions on one leader
    core.assign([TP0, TP1], now=0.0)
    answer_list_offsets(client, {0: 0, 1: 0})
    ((req, cb, _, _),) = client.take("FetchRequest")
    # A full fetch asks for a session (id 0, epoch 0) and names every partition.
    assert (req.session_id, req.session_epoch) == (0, 0)
    assert sorted(p.partition for p in req.topics[0].partitions) == [0, 1]
    deliver(core, cb, fetch_response_session(77, {0: (0, records(0, 2))}))
    ((req, cb, _, _),) = client.take("FetchRequest")
    # Incremental: only partition 0 moved; partition 1 stays in the session unnamed.
    assert (req.session_id, req.session_epoch) == (77, 1)
    assert [(p.partition, p.fetch_offset) for p in req.topics[0].partitions] == [(0, 2)]
    assert req.forgotten_topics_data == []
    core.pause([TP1])
    deliver(core, cb, fetch_response_session(77, {}))
    ((req, cb, _, _),) = client.take("FetchRequest")
    assert (req.session_id, req.session_epoch) == (77, 2)
    assert req.topics == []
    assert [(f.topic, list(f.partitions)) for f in req.forgotten_topics_data] == [(T, [1])]
    # The broker lost the session: back to a full fetch that opens a new one.
    deliver(core, cb, fetch_response_session(0, {}, code=70), 0.2)
    core.handle_timer(0.5)
    ((req, cb, _, _),) = client.take("FetchRequest")
    assert (req.session_id, req.session_epoch) == (0, 0)
    assert [(p.partition, p.fetch_offset) for p in req.topics[0].partitions] == [(0, 2)]
    assert [r.offset for r in core.poll(None, 0.6)[TP0]] == [0, 1]


def test_fetch_sessions_can_be_turned_off() -> None:
    core, client = make(auto_offset_reset="earliest", enable_incremental_fetch_sessions=False)
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((req, cb, _, _),) = client.take("FetchRequest")
    assert (req.session_id, req.session_epoch) == (0, -1)
    deliver(core, cb, fetch_response_session(5, {0: (0, records(0, 1))}))
    ((req, _, _, _),) = client.take("FetchRequest")
    assert (req.session_id, req.session_epoch) == (0, -1)


def test_async_listener_callbacks_come_back_as_awaitables() -> None:
    import asyncio

    from kproto.consumer.group import ConsumerRebalanceListener

    seen: list[set[TopicPartition]] = []

    class AsyncListener(ConsumerRebalanceListener):
        async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:  # type: ignore[override]
            seen.append(assigned)

    core, client = make(group_id="g", enable_auto_commit=False)
    core.subscribe([T], now=0.0, listener=AsyncListener())
    join_as_follower(core, client, 1, [0])
    core.before_poll(0.1)
    (aw,) = core.take_awaitables()
    assert seen == []
    asyncio.run(aw)
    assert seen == [{TP0}]
    assert core.take_awaitables() == []


def test_close_leaves_the_group_in_the_form_the_version_carries() -> None:
    """LeaveGroup v3+ (KIP-345) carries ``members``, v0-2 ``member_id``; never both.

    The v3+ form goes first (Apache Kafka 4 answers v5); when the connection
    cannot encode it (a broker without v3), the old form follows, capped at v2.
    """
    from kproto.errors import UnsupportedVersionError
    from kproto.protocol.messages import (
        LeaveGroupRequest,
        LeaveGroupResponse,
    )

    core, client = make(group_id="g", enable_auto_commit=False)
    core.subscribe([T], now=0.0)
    join_as_follower(core, client, 5, [1])
    done = core.close(0.1)
    ((req, cb, node, max_version),) = client.take("LeaveGroupRequest")
    assert (node, max_version) == (COORD, None)
    for v in (3, 5):
        got = LeaveGroupRequest.decode(req.encode(v), v)
        assert (got.group_id, [m.member_id for m in got.members]) == ("g", ["me"])
    assert LeaveGroupRequest.decode(req.encode(5), 5).members[0].reason == "the consumer is closing"
    with pytest.raises(UnsupportedVersionError) as no_v2:
        req.encode(2)
    assert not done.done
    cb(None, no_v2.value)  # what the connection reports when the broker's version cannot carry it
    core.handle_timer(0.2)
    ((old, cb, node, max_version),) = client.take("LeaveGroupRequest")
    assert (node, max_version) == (COORD, 2)
    for v in (0, 2):
        got = LeaveGroupRequest.decode(old.encode(v), v)
        assert (got.group_id, got.member_id) == ("g", "me")
    deliver(core, cb, wire(LeaveGroupResponse(), 0), 0.3)
    assert done.done and client.take("LeaveGroupRequest") == []


def test_close_with_requests_in_flight_is_quiet() -> None:
    from kproto.errors import Cancelled

    core, client = make(group_id="g", auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    ((_, of_cb, _, _),) = client.take("OffsetFetchRequest")
    p = core.list_offsets({TP1: -1}, now=0.0)
    ((_, lo_cb, _, _),) = client.take("ListOffsetsRequest")
    done = core.close(0.1)
    assert done.done and core.closed
    # The client fails what was in flight while closing: nothing may call into it any more.
    of_cb(None, Cancelled("closing"))
    lo_cb(None, Cancelled("closing"))
    assert isinstance(p.exception(), Cancelled)
    core.handle_timer(5.0)
    core.receive_data(1, b"late", 5.0)
    assert core.get_timer() is None

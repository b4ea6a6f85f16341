"""Hypothesis stateful test of the consumer group state machine (kproto/consumer/group.py).

A ``RuleBasedStateMachine`` plays the group coordinator for one
``ConsumerCore`` (group_id set, subscribed to one topic of four partitions)
through a scripted client: hypothesis chooses, step by step, how to answer
the outstanding JoinGroup / SyncGroup / Heartbeat (success, KIP-394
MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
UNKNOWN_MEMBER_ID, NOT_COORDINATOR, a lost connection), when time passes and
when the application polls. Only the core's public surface is used.

Invariants after every step:

- at most one JoinGroup or SyncGroup is outstanding, never both, and at
  most one Heartbeat; no Heartbeat is sent while a JoinGroup is outstanding;
- a Heartbeat carries the generation and member id of the last successful
  JoinGroup;
- eager rebalancing: while a JoinGroup is outstanding the consumer owns no
  partition;
- the listener sees assigned / revoked (or lost) alternating (an empty
  assignment need not be revoked), and what is revoked is exactly what was
  assigned;
- the owned partitions are the last assignment the coordinator gave;
- ``get_timer()`` is never in the past.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kproto.consumer import ConsumerConfig, TopicPartition
from kproto.consumer.assignors import decode_subscription, encode_assignment
from kproto.consumer.core import ConsumerCore
from kproto.consumer.group import ConsumerRebalanceListener
from kproto.driving import Command
from kproto.errors import KafkaConnectionError
from kproto.protocol.messages import (
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    OffsetFetchResponse,
    SyncGroupResponse,
)
from kproto.protocol.messages import join_group as JG

T = "gt"
COORD = 2**31 - 2
PARTS = 4
ALL = frozenset(TopicPartition(T, p) for p in range(PARTS))
Callback = Callable[[Any, BaseException | None], None]

#: Group error codes the coordinator may answer.
MEMBER_ID_REQUIRED = 79
REBALANCE_IN_PROGRESS = 27
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
NOT_COORDINATOR = 16
COORDINATOR_LOAD_IN_PROGRESS = 14


class _Cluster:
    def leader_for(self, topic: str, partition: int) -> int | None:
        return 1 if topic == T and 0 <= partition < PARTS else None

    def partitions_for(self, topic: str) -> set[int] | None:
        return set(range(PARTS)) if topic == T else None


class ScriptedClient:
    """Records requests; the state machine answers them."""

    def __init__(self) -> None:
        self.cluster = _Cluster()
        self.sent: list[tuple[Any, Callback]] = []
        #: A Heartbeat was sent while a JoinGroup was outstanding.
        self.heartbeat_during_join = False

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

    def send(self, request: Any, *, now: float, callback: Callback, node_id: int | None = None,
             max_version: int | None = None, timeout_ms: int | None = None,
             expect_response: bool = True) -> None:  # fmt: skip
        if type(request).__name__ == "HeartbeatRequest" and self.outstanding("JoinGroupRequest"):
            self.heartbeat_during_join = True
        self.sent.append((request, callback))

    def add_topics(self, topics: Iterable[str], now: float) -> None: ...
    def remove_topics(self, topics: Iterable[str], now: float) -> None: ...
    def request_metadata_update(self, now: float) -> None: ...
    def coordinator(self, key: str, key_type: int, now: float) -> int | None:
        return COORD

    def mark_coordinator_dead(self, key: str, key_type: int, now: float) -> None: ...
    responses_with_trailing_bytes = 0

    def versions_sent(self) -> dict[int, int]:
        return {}

    def bootstrap_connected(self) -> bool:
        return True

    def close(self, now: float) -> None: ...

    def take(self, kind: str) -> list[tuple[Any, Callback]]:
        mine = [s for s in self.sent if type(s[0]).__name__ == kind]
        self.sent = [s for s in self.sent if type(s[0]).__name__ != kind]
        return mine

    def outstanding(self, kind: str) -> list[Any]:
        return [r for r, _ in self.sent if type(r).__name__ == kind]


def wire(resp: Any, version: int) -> Any:
    """Through the codec, as the client would hand it over."""
    return type(resp).decode(resp.encode(version), version)


class Listener(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[TopicPartition]]] = []

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.calls.append(("revoked", frozenset(revoked)))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.calls.append(("assigned", frozenset(assigned)))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.calls.append(("lost", frozenset(lost)))


class GroupMachine(RuleBasedStateMachine):
    """The coordinator's side, chosen by hypothesis."""

    def __init__(self) -> None:
        super().__init__()
        self.client = ScriptedClient()
        config = ConsumerConfig.from_kwargs(
            group_id="g",
            enable_auto_commit=False,
            heartbeat_interval_ms=1000,
            session_timeout_ms=10000,
            max_poll_interval_ms=60000,
            retry_backoff_ms=100,
            auto_offset_reset="earliest",
        )
        self.core = ConsumerCore(config, now=0.0, client=self.client)
        self.listener = Listener()
        self.now = 0.0
        self.core.subscribe([T], now=self.now, listener=self.listener)
        self.generation = -1
        self.member_id = ""
        self.given: frozenset[TopicPartition] = frozenset()  # the last assignment handed out

    # --- helpers ---------------------------------------------------------------

    def settle(self) -> None:
        """Answer what the test does not script (offsets, fetches) and run due timers."""
        for _req, cb in self.client.take("OffsetFetchRequest"):
            cb(wire(OffsetFetchResponse(), 5), None)
        for kind in ("FetchRequest", "ListOffsetsRequest", "OffsetCommitRequest", "MetadataRequest"):
            self.client.take(kind)  # left unanswered: not this machine's business
        for _req, cb in self.client.take("LeaveGroupRequest"):
            cb(wire(LeaveGroupResponse(), 3), None)
        self.core.handle_timer(self.now)

    def answer(self, kind: str, response: Any, error: BaseException | None = None) -> None:
        ((_req, cb),) = self.client.take(kind)
        cb(response, error)
        self.settle()

    # --- rules: the coordinator ---------------------------------------------------

    @precondition(lambda self: bool(self.client.outstanding("JoinGroupRequest")))
    @rule(leader=st.booleans(), others=st.integers(0, 2))
    def join_ok(self, leader: bool, others: int) -> None:
        (req,) = self.client.outstanding("JoinGroupRequest")
        member = req.member_id or "m-self"
        self.generation += 1
        self.member_id = member
        members = []
        if leader:
            meta = req.protocols[0].metadata
            assert list(decode_subscription(meta).topics) == [T]
            members = [JG.JoinGroupResponseMember(member_id=m, metadata=meta)
                       for m in [member] + [f"m-other{i}" for i in range(others)]]  # fmt: skip
        resp = JoinGroupResponse(generation_id=self.generation, protocol_type="consumer", protocol_name="range",
                                 leader=member if leader else "m-other0", member_id=member, members=members)  # fmt: skip
        self.answer("JoinGroupRequest", wire(resp, 5))

    @precondition(lambda self: bool(self.client.outstanding("JoinGroupRequest")))
    @rule(code=st.sampled_from([MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
                                NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS]))  # fmt: skip
    def join_error(self, code: int) -> None:
        member = "m-self" if code == MEMBER_ID_REQUIRED else ""
        self.answer("JoinGroupRequest", wire(JoinGroupResponse(error_code=code, member_id=member), 5))

    @precondition(lambda self: bool(self.client.outstanding("SyncGroupRequest")))
    @rule(parts=st.sets(st.integers(0, PARTS - 1)))
    def sync_ok(self, parts: set[int]) -> None:
        (req,) = self.client.outstanding("SyncGroupRequest")
        assert (req.generation_id, req.member_id) == (self.generation, self.member_id)
        mine = frozenset(TopicPartition(T, p) for p in parts)
        if req.assignments:  # we are the leader: use our own plan for ourselves
            (own,) = [a for a in req.assignments if a.member_id == self.member_id]
            blob = own.assignment
            from kproto.consumer.assignors import decode_assignment

            mine = frozenset(decode_assignment(blob))
        else:
            blob = encode_assignment({T: [tp.partition for tp in mine]} if mine else {})
        self.given = mine
        self.answer("SyncGroupRequest", wire(SyncGroupResponse(assignment=blob), 3))

    @precondition(lambda self: bool(self.client.outstanding("SyncGroupRequest")))
    @rule(
        code=st.sampled_from([REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, NOT_COORDINATOR])
    )
    def sync_error(self, code: int) -> None:
        self.answer("SyncGroupRequest", wire(SyncGroupResponse(error_code=code), 3))

    @precondition(lambda self: bool(self.client.outstanding("HeartbeatRequest")))
    @rule(code=st.sampled_from([0, 0, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
                                NOT_COORDINATOR]))  # fmt: skip
    def heartbeat(self, code: int) -> None:
        self.answer("HeartbeatRequest", wire(HeartbeatResponse(error_code=code), 4))

    @precondition(lambda self: any(type(r).__name__ in ("JoinGroupRequest", "SyncGroupRequest", "HeartbeatRequest")
                                   for r, _ in self.client.sent))  # fmt: skip
    @rule(data=st.data())
    def connection_lost(self, data: st.DataObject) -> None:
        kinds = sorted({type(r).__name__ for r, _ in self.client.sent}
                       & {"JoinGroupRequest", "SyncGroupRequest", "HeartbeatRequest"})  # fmt: skip
        kind = data.draw(st.sampled_from(kinds))
        for _req, cb in self.client.take(kind):
            cb(None, KafkaConnectionError("coordinator connection lost"))
        self.settle()

    # --- rules: the application and the clock ---------------------------------------

    @rule(seconds=st.sampled_from([0.05, 0.5, 1.0, 3.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.settle()

    @rule()
    def poll(self) -> None:
        self.core.poll(None, self.now)
        self.settle()

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def one_membership_request_at_a_time(self) -> None:
        joins = self.client.outstanding("JoinGroupRequest")
        syncs = self.client.outstanding("SyncGroupRequest")
        beats = self.client.outstanding("HeartbeatRequest")
        assert len(joins) + len(syncs) <= 1, (joins, syncs)
        assert len(beats) <= 1
        # (one sent before the JoinGroup may still be out: the coordinator copes, as with Java)
        assert not self.client.heartbeat_during_join, "a Heartbeat was sent while a JoinGroup was outstanding"

    @invariant()
    def heartbeats_carry_the_current_generation(self) -> None:
        for req in self.client.outstanding("HeartbeatRequest"):
            assert (req.generation_id, req.member_id) == (self.generation, self.member_id)

    @invariant()
    def eager_no_partition_while_joining(self) -> None:
        if self.client.outstanding("JoinGroupRequest"):
            assert self.core.assignment() == set()

    @invariant()
    def owned_is_what_was_given(self) -> None:
        owned = frozenset(self.core.assignment())
        assert owned <= ALL
        assert not owned or owned == self.given

    @invariant()
    def listener_alternates(self) -> None:
        held: frozenset[TopicPartition] | None = None
        for kind, parts in self.listener.calls:
            if kind == "assigned":
                # an empty assignment is not revoked again before the next one
                assert not held, f"assigned twice: {self.listener.calls}"
                held = parts
            else:
                if held is None:
                    assert parts == frozenset(), f"{kind} without assignment: {self.listener.calls}"
                else:
                    assert parts == held, (kind, parts, held)
                held = None

    @invariant()
    def timer_not_in_the_past(self) -> None:
        timer = self.core.get_timer()
        assert timer is None or timer >= self.now - 1e-9, (timer, self.now)


GroupMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, derandomize=True
)
test_group_state_machine = GroupMachine.TestCase

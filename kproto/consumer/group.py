"""Consumer group membership: the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup).

Theory of operation
-------------------
One :class:`GroupMembership` per consumer that subscribed with a
``group_id``. It is a small state machine driven by the core's pump; every
request goes to the group coordinator (found by the client's
FindCoordinator) on its dedicated connection.

=========  ==========================  ====================================
state      leaves on                   to
=========  ==========================  ====================================
UNJOINED   coordinator known, no       JOINING (JoinGroup sent; assigned
           backoff pending             partitions revoked first: *eager*)
JOINING    JoinGroup ok                SYNCING (leader: assignor runs,
                                       SyncGroup carries the assignments)
JOINING    MEMBER_ID_REQUIRED          JOINING again with the given member
           (KIP-394)                   id, at once
JOINING    other retriable error       UNJOINED (after ``retry_backoff_ms``)
SYNCING    SyncGroup ok                STABLE (assignment applied)
SYNCING    REBALANCE_IN_PROGRESS...    UNJOINED
STABLE     heartbeat REBALANCE_IN_     UNJOINED (revoke, rejoin)
           PROGRESS
STABLE     ILLEGAL_GENERATION /        UNJOINED (partitions *lost*,
           UNKNOWN_MEMBER_ID           generation and member id reset)
STABLE     no poll for                 UNJOINED after LeaveGroup; the next
           ``max_poll_interval_ms``    poll rejoins (as the Java client)
any        FENCED_INSTANCE_ID,         FAILED: the error is raised from
           auth errors                 ``poll``
any        close()/unsubscribe()       LeaveGroup (dynamic members only,
                                       KIP-345), then UNJOINED
=========  ==========================  ====================================

Rebalances are *eager* for range, roundrobin and sticky: every partition is
revoked before a JoinGroup (the listener's ``on_partitions_revoked`` runs,
and with auto-commit the positions are committed first, on the same
connection, so the broker sees the commit before the JoinGroup). The
``sticky`` assignor (KIP-54) keeps partitions where they were across such
rebalances.

With ``cooperative-sticky`` alone (KIP-429; as in Java, a list that mixes it
with eager assignors stays eager) rebalances are *incremental*: a member
keeps its partitions, and keeps consuming them, through the JoinGroup and
SyncGroup; it sends what it owns in its subscription; the leader withholds
any partition that would change owner; after the SyncGroup the member
revokes only the partitions it no longer has (auto-commit first, then
``on_partitions_revoked`` with just those; ``on_partitions_assigned`` gets
just the new ones) and, if it revoked any, rejoins at once so a second round
hands them to their new owners. Losing the member id (ILLEGAL_GENERATION,
UNKNOWN_MEMBER_ID) still loses every partition.

The assignors and the subscription/assignment encoding are in
:mod:`kproto.consumer.assignors`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from kproto.consumer.assignors import (
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
    resolve_assignors,
)
from kproto.consumer.config import ConsumerConfig
from kproto.consumer.context import ClientLike
from kproto.consumer.pending import Pending
from kproto.consumer.types import (
    AnyConsumerEvent,
    GroupRequestFailed,
    PartitionsAssigned,
    PartitionsRevoked,
    TopicPartition,
)
from kproto.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    IllegalGenerationError,
    IllegalStateError,
    MemberIdRequiredError,
    NotCoordinatorError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    UnsupportedVersionError,
    error_from_code,
    is_retriable,
)
from kproto.protocol.messages import (
    ConsumerProtocolSubscription,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)
from kproto.protocol.messages import join_group as _jg
from kproto.protocol.messages import leave_group as _lg
from kproto.protocol.messages import sync_group as _sg

__all__ = [
    "ConsumerRebalanceListener",
    "GroupHost",
    "GroupMembership",
    "MemberState",
]

_PROTOCOL_TYPE: Final = "consumer"
# Wire error codes handled by name.
_COORDINATOR_LOAD_IN_PROGRESS: Final = CoordinatorLoadInProgressError.errno
_COORDINATOR_NOT_AVAILABLE: Final = CoordinatorNotAvailableError.errno
_NOT_COORDINATOR: Final = NotCoordinatorError.errno
_ILLEGAL_GENERATION: Final = IllegalGenerationError.errno
_UNKNOWN_MEMBER_ID: Final = UnknownMemberIdError.errno
_REBALANCE_IN_PROGRESS: Final = RebalanceInProgressError.errno
_MEMBER_ID_REQUIRED: Final = MemberIdRequiredError.errno
_FENCED_INSTANCE_ID: Final = FencedInstanceIdError.errno


class ConsumerRebalanceListener:
    """Callbacks around a rebalance; subclass and pass to ``subscribe(listener=...)``.

    They run inside ``poll``, in the thread that calls it (never in a
    background thread), before ``poll`` looks at records. With the asyncio
    and trio facades they may be ``async def``: ``poll`` awaits them.
    """

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: these partitions stop being consumed (commit here if you commit by hand)."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: the new assignment."""

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """The member lost its partitions without a rebalance (its session expired): do not commit."""
        self.on_partitions_revoked(lost)


if TYPE_CHECKING:

    class RebalanceListener(Protocol):
        """What the membership calls on a listener: :class:`ConsumerRebalanceListener`'s
        methods, by name (kafka-python's listener classes fit too); a method may
        return an awaitable (``async def``, for the asyncio and trio facades)."""

        def on_partitions_revoked(self, revoked: set[TopicPartition], /) -> object: ...
        def on_partitions_assigned(self, assigned: set[TopicPartition], /) -> object: ...
        def on_partitions_lost(self, lost: set[TopicPartition], /) -> object: ...


class MemberState(enum.Enum):
    """See the module docstring's table."""

    UNJOINED = "unjoined"
    JOINING = "joining"
    SYNCING = "syncing"
    STABLE = "stable"
    FAILED = "failed"


class GroupHost(Protocol):
    """What a :class:`GroupMembership` needs from the consumer that owns it.

    :class:`~kproto.consumer.context.ConsumerContext` is one: the client and
    the clock, coordinator and metadata waits, the error queue and deferred
    user callbacks, and the assignment hooks of the core.
    """

    @property
    def config(self) -> ConsumerConfig: ...
    @property
    def client(self) -> ClientLike: ...
    @property
    def now(self) -> float: ...

    def with_coordinator(self, fn: Callable[[int, float], None], now: float) -> None:
        """Run ``fn(node, now)`` once the group coordinator is known."""

    def mark_coordinator_dead(self, now: float) -> None:
        """The coordinator failed a request: find it again."""

    def after_metadata(self, fn: Callable[[float], None], now: float) -> None:
        """Run ``fn(now)`` once after the next metadata update (or the backoff)."""

    def defer(self, fn: Callable[[], object]) -> None:
        """Run a user callback at the start of the next ``poll``."""

    def emit(self, event: AnyConsumerEvent) -> None:
        """Queue an event for ``ConsumerCore.events``."""

    def fail(self, exc: BaseException) -> None:
        """Raise ``exc`` from the next ``poll``."""

    def assigned(self) -> set[TopicPartition]:
        """The partitions the consumer reads now."""

    def set_assignment(self, tps: set[TopicPartition], now: float) -> None:
        """Read exactly these partitions."""

    def commit_consumed(self, now: float) -> object:
        """Commit the consumed positions that changed (auto-commit)."""


class GroupMembership:
    """The membership of one consumer in its group; driven by :class:`ConsumerCore`."""

    def __init__(
        self, host: GroupHost, topics: set[str], listener: RebalanceListener | None, now: float
    ) -> None:
        cfg = host.config
        assert cfg.group_id is not None
        self.host = host
        self.group_id: str = cfg.group_id
        self.instance_id = cfg.group_instance_id
        self.assignors = resolve_assignors(cfg.partition_assignment_strategy)
        #: KIP-429 incremental rebalancing, when every configured assignor supports it (as Java).
        self.cooperative = all(a.cooperative for a in self.assignors)
        self.listener = listener
        self.topics = set(topics)
        self.state = MemberState.UNJOINED
        self.member_id = ""
        self.generation = -1
        self.protocol: str | None = None
        self.leader = False
        #: The partition counts the leader last assigned with (Java's assignment snapshot).
        self._assigned_counts: dict[str, int] | None = None
        self._join_at = now
        self._heartbeat_at: float | None = None
        self._heartbeat_inflight = False
        self._last_poll = now
        self._left_for_poll_timeout = False
        self._inflight = False
        self._leave_sent = False
        #: A rebalance a heartbeat announced, acted on at the next poll.
        self._pending: str | None = None
        self._resubscribe = False
        #: The partitions of the last completed rebalance (the sticky assignor's user data).
        self._owned: set[TopicPartition] = set()
        #: Bumped on every state reset: stale responses are recognised and dropped.
        self._epoch = 0
        #: When the first JoinGroup of the rebalance under way was sent (rebalance latency).
        self._rebalance_started: float | None = None

    # --- what the core calls ---------------------------------------------------------

    @property
    def stable(self) -> bool:
        """True when the assignment is current (heartbeats flow)."""
        return self.state is MemberState.STABLE

    def commit_identity(self) -> tuple[int, str, str | None]:
        """(generation, member id, instance id) for OffsetCommit; -1/"" when not STABLE."""
        if self.state is MemberState.STABLE:
            return self.generation, self.member_id, self.instance_id
        return -1, "", None

    def on_poll(self, now: float) -> None:
        """The user polled: the member is alive; act on a rebalance a heartbeat announced.

        As in the Java client, a rebalance is joined from ``poll`` (the user's
        thread), not from the heartbeat that announced it.
        """
        self._last_poll = now
        if self._left_for_poll_timeout:
            self._left_for_poll_timeout = False
            self.request_rejoin(now)
        pending, self._pending = self._pending, None
        if pending == "rejoin":
            self._reset(now, keep_member=True)
        elif pending == "lost":
            self._lost(now, keep_member=True)
        elif pending == "lost-member":
            self._lost(now, keep_member=False)

    def set_topics(self, topics: set[str], now: float) -> None:
        """The subscription changed (pattern matches): rejoin with it."""
        if topics != self.topics:
            self.topics = set(topics)
            if self.state in (MemberState.JOINING, MemberState.SYNCING):
                self._resubscribe = True  # rejoin once this rebalance completes
            else:
                self.request_rejoin(now)

    def metadata_updated(self, now: float) -> None:
        """The leader rejoins when a topic it assigned has another partition count now (created
        or grown since: a topic without metadata at assignment got nothing), as Java's
        ConsumerCoordinator compares its assignment snapshot with each metadata update."""
        if self.state is MemberState.STABLE and self._assignment_stale():
            self._assigned_counts = None
            self.request_rejoin(now)

    def _assignment_stale(self) -> bool:
        """True for a leader whose assignment used other partition counts than metadata shows now.

        Checked on each metadata update and when the leader's SyncGroup completes:
        metadata that arrived while the SyncGroup was in flight must count too.
        """
        counts = self._assigned_counts
        if counts is None or not self.leader:
            return False
        cluster = self.host.client.cluster
        for topic, assigned in counts.items():
            parts = cluster.partitions_for(topic)
            if parts and len(parts) != assigned:
                return True
        return False

    def request_rejoin(self, now: float) -> None:
        """Start a new rebalance at once (commit-failed, metadata change, poll after timeout)."""
        # A rebalance already under way is not restarted (its JoinGroup would be abandoned).
        if self.state is MemberState.STABLE:
            self._reset(now, keep_member=True)

    def get_timer(self) -> float | None:
        """The membership's next deadline."""
        if self.state is MemberState.FAILED:
            return None
        if self.state is MemberState.UNJOINED:
            # While waiting for the coordinator, the core's pump retries on every input.
            return None if self._left_for_poll_timeout or self._inflight else self._join_at
        if self.state is MemberState.STABLE:
            t = self._last_poll + self.host.config.max_poll_interval_ms / 1000
            if self._heartbeat_at is not None and not self._heartbeat_inflight:
                t = min(t, self._heartbeat_at)
            return t
        return None

    def pump(self, now: float) -> None:
        """Send what is due."""
        st = self.state
        if st is MemberState.UNJOINED:
            if not self._inflight and not self._left_for_poll_timeout and now >= self._join_at:
                self._inflight = True
                self.host.with_coordinator(self._send_join, now)
        elif st is MemberState.STABLE:
            if now - self._last_poll > self.host.config.max_poll_interval_ms / 1000:
                # KIP-62: a member that stops polling leaves, so the group moves on without it.
                self._leave(now, "consumer poll timeout has expired")
                self._revoke(lost=False)
                self._reset(now, keep_member=False)
                self._left_for_poll_timeout = True
                return
            if (self._heartbeat_at is not None and now >= self._heartbeat_at
                    and not self._heartbeat_inflight):
                self._heartbeat_inflight = True
                self.host.with_coordinator(self._send_heartbeat, now)

    def leave(self, now: float) -> Pending[None]:
        """LeaveGroup (dynamic members; a static member keeps its place, KIP-345) and stop.

        The Pending completes when the broker answered (or the request failed).
        """
        done: Pending[None] = Pending()
        if self.member_id and self.state is not MemberState.FAILED:
            self._leave(now, "the consumer is closing", done)
        if not self._leave_sent:
            done.set_result(None)
        self.state = MemberState.FAILED  # terminal: nothing more is sent
        self._epoch += 1
        return done

    # --- internals ---------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        self.state = MemberState.FAILED
        self._epoch += 1
        self.host.fail(exc)

    def _reset(self, now: float, *, keep_member: bool, delay: float = 0.0) -> None:
        # Cooperative members keep their partitions (and consume) through a rebalance;
        # one that lost its member id lost them (``_lost`` cleared them already).
        keep = self.cooperative and keep_member
        if self.state is MemberState.STABLE and not keep:
            self._revoke(lost=False)
        self.state = MemberState.UNJOINED
        self._inflight = False
        self._heartbeat_at = None
        self._heartbeat_inflight = False
        self._epoch += 1
        if not keep_member:
            self.member_id = ""
            self.generation = -1
        self._join_at = now + delay
        if not keep:
            self.host.set_assignment(set(), now)
            if self.cooperative:
                self._owned = set()

    def _revoke(self, *, lost: bool) -> None:
        owned = self.host.assigned()
        if not owned:
            return
        self.host.emit(PartitionsRevoked(group_id=self.group_id, member_id=self.member_id,
                                         generation=self.generation, partitions=frozenset(owned), lost=lost))
        if not lost and self.host.config.enable_auto_commit:
            # Sent before the JoinGroup on the same connection: the broker handles it first.
            self.host.commit_consumed(self.host.now)
        listener = self.listener
        if listener is not None:
            if lost:
                self.host.defer(lambda: listener.on_partitions_lost(owned))
            else:
                self.host.defer(lambda: listener.on_partitions_revoked(owned))

    def _lost(self, now: float, keep_member: bool) -> None:
        self._owned = set()
        if self.state is MemberState.STABLE:
            self._revoke(lost=True)
            self.state = MemberState.UNJOINED  # so _reset does not revoke again
        self._reset(now, keep_member=keep_member)
        if self.cooperative and keep_member:
            self.host.set_assignment(set(), now)  # _reset kept them: a cooperative rejoin would

    def _backoff(self) -> float:
        return self.host.config.retry_backoff_ms / 1000

    def _fenced(self) -> None:
        """FENCED_INSTANCE_ID (KIP-345): another member has our group.instance.id; this one stops."""
        self._fail(FencedInstanceIdError(f"group instance id {self.instance_id!r} is used by another member"))

    def _rejoin_or_fail(self, code: int, now: float, what: str) -> None:
        """A JoinGroup/SyncGroup error past the rebalance and coordinator ones: rejoin after a
        backoff if retriable, else the member fails (``what`` names the request)."""
        if code == _FENCED_INSTANCE_ID:
            self._fenced()
        elif is_retriable(code):
            self._reset(now, keep_member=True, delay=self._backoff())
        else:
            self._fail(error_from_code(code, f"{what} {self.group_id!r}"))

    def _coordinator_error(self, code: int, now: float) -> bool:
        if code in (_COORDINATOR_NOT_AVAILABLE, _NOT_COORDINATOR):
            self.host.mark_coordinator_dead(now)
            return True
        return code == _COORDINATOR_LOAD_IN_PROGRESS

    def _send_join(self, node: int, now: float) -> None:
        cfg = self.host.config
        self.state = MemberState.JOINING
        if self._rebalance_started is None:
            self._rebalance_started = now
        if not self.cooperative:
            self._revoke(lost=False)  # eager: everything goes before the JoinGroup
            self.host.set_assignment(set(), now)
        self.host.client.add_topics(self.topics, now)
        req = JoinGroupRequest(
            group_id=self.group_id,
            session_timeout_ms=cfg.session_timeout_ms,
            rebalance_timeout_ms=cfg.rebalance_timeout(),
            member_id=self.member_id,
            group_instance_id=self.instance_id,
            protocol_type=_PROTOCOL_TYPE,
            protocols=[_jg.JoinGroupRequestProtocol(
                name=a.name, metadata=encode_subscription(self.topics, a.user_data(self._owned, self.generation),
                                                          self._owned if a.cooperative else None))
                for a in self.assignors],
        )
        # The broker answers a JoinGroup only when the rebalance completes (up to the rebalance timeout).
        self._send(req, node, now, self._on_join, timeout_ms=cfg.rebalance_timeout() + cfg.request_timeout_ms)

    def _send(self, req: Any, node: int, now: float, handle: Callable[[Any, BaseException | None, float], None],
              timeout_ms: int | None = None) -> None:
        """Send ``req`` to the coordinator; ``handle`` gets the answer unless the state was reset meanwhile."""
        epoch = self._epoch

        def on_resp(resp: Any, err: BaseException | None) -> None:
            if epoch == self._epoch:
                code = 0 if err is not None else resp.error_code
                if err is not None or code:
                    error = err if err is not None else error_from_code(code, self.group_id)
                    self.host.emit(GroupRequestFailed(group_id=self.group_id,
                                                      request=type(req).__name__.removesuffix("Request"),
                                                      error=error))
                handle(resp, err, self.host.now)

        self.host.client.send(req, now=now, node_id=node, callback=on_resp, timeout_ms=timeout_ms)

    def _no_answer(self, err: BaseException | None, now: float) -> bool:
        """A JoinGroup or SyncGroup ended: on a request error, find the coordinator again and rejoin later."""
        self._inflight = False
        if err is None:
            return False
        self.host.mark_coordinator_dead(now)
        self._reset(now, keep_member=True, delay=self._backoff())
        return True

    def _on_join(self, resp: Any, err: BaseException | None, now: float) -> None:
        if self._no_answer(err, now):
            return
        code = resp.error_code
        if code == _MEMBER_ID_REQUIRED:
            # KIP-394: the broker gave us an id; join again with it straight away.
            self.member_id = resp.member_id
            self._reset(now, keep_member=True)
            return
        if code == _UNKNOWN_MEMBER_ID:
            self._reset(now, keep_member=False)
            return
        if code in (_ILLEGAL_GENERATION, _REBALANCE_IN_PROGRESS) or self._coordinator_error(code, now):
            self._reset(now, keep_member=True, delay=self._backoff())
            return
        if code:
            self._rejoin_or_fail(code, now, "JoinGroup")
            return
        self.member_id = resp.member_id
        self.generation = resp.generation_id
        self.protocol = resp.protocol_name
        self.leader = resp.leader == resp.member_id
        self.state = MemberState.SYNCING
        self._inflight = True
        if not self.leader:
            self.host.with_coordinator(lambda node, now: self._send_sync(node, now, []), now)
            return
        members: dict[str, tuple[list[str], str | None]] = {}
        user_data: dict[str, bytes | None] = {}
        chosen = next((a for a in self.assignors if a.name == self.protocol), None)
        for m in resp.members:
            try:
                sub = decode_subscription(m.metadata)
                data = chosen.member_data(sub) if chosen is not None else None
            except Exception:  # a member we cannot read gets nothing, as the Java leader
                sub, data = ConsumerProtocolSubscription(), None
            members[m.member_id] = (list(sub.topics), m.group_instance_id)
            user_data[m.member_id] = data
        all_topics = {t for topics, _ in members.values() for t in topics}
        missing = [t for t in all_topics if not self.host.client.cluster.partitions_for(t)]
        epoch = self._epoch

        def assign(now: float) -> None:
            if epoch != self._epoch:
                return
            self._assign_and_sync(members, all_topics, now, user_data)

        if missing:
            self.host.client.add_topics(all_topics, now)
            self.host.client.request_metadata_update(now)
            self.host.after_metadata(assign, now)
        else:
            assign(now)

    def _assign_and_sync(self, members: dict[str, tuple[list[str], str | None]], all_topics: set[str],
                         now: float, user_data: dict[str, bytes | None]) -> None:
        cluster = self.host.client.cluster
        counts: dict[str, int] = {}
        for t in all_topics:
            parts = cluster.partitions_for(t)
            if parts:
                # The number listed, as Java's partitionCountForTopic: an index the broker
                # made up (2**31-1) must not make the assignor list 2**31 partitions.
                counts[t] = len(parts)
        assignor = next((a for a in self.assignors if a.name == self.protocol), None)
        if assignor is None:
            self._fail(IllegalStateError(f"the group chose assignor {self.protocol!r}, which this member lacks"))
            return
        plan = assignor.assign(counts, members, user_data)
        self._assigned_counts = {t: counts.get(t, 0) for t in all_topics}
        assignments = [_sg.SyncGroupRequestAssignment(member_id=m, assignment=encode_assignment(plan.get(m, {})))
                       for m in members]
        self.host.with_coordinator(lambda node, now: self._send_sync(node, now, assignments), now)

    def _send_sync(self, node: int, now: float, assignments: list[Any]) -> None:
        req = SyncGroupRequest(
            group_id=self.group_id, generation_id=self.generation, member_id=self.member_id,
            group_instance_id=self.instance_id, protocol_type=_PROTOCOL_TYPE, protocol_name=self.protocol,
            assignments=assignments,
        )
        self._send(req, node, now, self._on_sync)

    def _on_sync(self, resp: Any, err: BaseException | None, now: float) -> None:
        if self._no_answer(err, now):
            return
        code = resp.error_code
        if code == _UNKNOWN_MEMBER_ID:
            self._reset(now, keep_member=False)
            return
        if code in (_ILLEGAL_GENERATION, _REBALANCE_IN_PROGRESS) or self._coordinator_error(code, now):
            self._reset(now, keep_member=code != _ILLEGAL_GENERATION, delay=0.0 if code else self._backoff())
            return
        if code:
            self._rejoin_or_fail(code, now, "SyncGroup")
            return
        try:
            assigned = decode_assignment(resp.assignment)
        except Exception as exc:
            self._fail(exc)
            return
        self.state = MemberState.STABLE
        self._heartbeat_at = now + self.host.config.heartbeat_interval_ms / 1000
        self._last_poll = max(self._last_poll, now)
        listener = self.listener
        before = self.host.assigned()
        started, self._rebalance_started = self._rebalance_started, None
        self.host.emit(PartitionsAssigned(
            group_id=self.group_id, member_id=self.member_id, generation=self.generation,
            partitions=frozenset(assigned), added=frozenset(assigned - before),
            revoked=frozenset(before - assigned), rebalance_time=0.0 if started is None else now - started,
        ))
        if self.cooperative:
            # KIP-429: revoke only what moved away (positions committed first), keep the rest,
            # and rejoin at once if anything was revoked so the next round can hand it out.
            owned = self.host.assigned()
            revoked = owned - assigned
            added = assigned - owned
            if revoked:
                if self.host.config.enable_auto_commit:
                    self.host.commit_consumed(now)
                if listener is not None:
                    self.host.defer(lambda: listener.on_partitions_revoked(set(revoked)))
            self.host.set_assignment(assigned, now)
            self._owned = set(assigned)
            if listener is not None:
                self.host.defer(lambda: listener.on_partitions_assigned(set(added)))
            if revoked:
                self.request_rejoin(now)
                return
        else:
            self.host.set_assignment(assigned, now)
            self._owned = set(assigned)
            if listener is not None:
                self.host.defer(lambda: listener.on_partitions_assigned(set(assigned)))
        if self._resubscribe:
            self._resubscribe = False
            self._pending = "rejoin"  # the subscription changed during the rebalance
        elif self._assignment_stale():
            # Metadata changed between the leader's assignment and its SyncGroup answer
            # (Java's ConsumerCoordinator compares the snapshots on every poll).
            self._assigned_counts = None
            self._pending = "rejoin"

    def _send_heartbeat(self, node: int, now: float) -> None:
        if self.state is not MemberState.STABLE:
            self._heartbeat_inflight = False
            return
        req = HeartbeatRequest(group_id=self.group_id, generation_id=self.generation,
                               member_id=self.member_id, group_instance_id=self.instance_id)
        self._send(req, node, now, self._on_heartbeat)

    def _on_heartbeat(self, resp: Any, err: BaseException | None, now: float) -> None:
        self._heartbeat_inflight = False
        interval = self.host.config.heartbeat_interval_ms / 1000
        if err is not None:
            self.host.mark_coordinator_dead(now)
            self._heartbeat_at = now + self._backoff()
            return
        code = resp.error_code
        if code == 0:
            self._heartbeat_at = now + interval
        elif code == _REBALANCE_IN_PROGRESS:
            self._pending = "rejoin"
            self._heartbeat_at = now + interval
        elif code == _ILLEGAL_GENERATION:
            self._pending = "lost"
            self._heartbeat_at = None
        elif code == _UNKNOWN_MEMBER_ID:
            self._pending = "lost-member"
            self._heartbeat_at = None
        elif code == _FENCED_INSTANCE_ID:
            self._fenced()
        elif self._coordinator_error(code, now) or is_retriable(code):
            self._heartbeat_at = now + self._backoff()
        else:
            self._fail(error_from_code(code, f"Heartbeat {self.group_id!r}"))

    def _leave(self, now: float, reason: str, done: Pending[None] | None = None) -> None:
        self._leave_sent = False
        if self.instance_id is not None:
            return  # KIP-345: a static member keeps its assignment across restarts
        member = self.member_id
        if not member:
            return
        self._leave_sent = True
        # LeaveGroup v3+ (KIP-345) names the leaving members in ``members`` and has no
        # ``member_id``; v0-2 have only ``member_id``. One request cannot carry both, so
        # the v3+ form goes first and a broker without v3 gets the old form (the Java
        # client's LeaveGroupRequest.Builder picks the form by version the same way).
        req = LeaveGroupRequest(group_id=self.group_id, members=[_lg.MemberIdentity(member_id=member, reason=reason)])
        old_form = [LeaveGroupRequest(group_id=self.group_id, member_id=member)]

        def on_resp(resp: Any, err: BaseException | None) -> None:
            if isinstance(err, UnsupportedVersionError) and old_form:
                self.host.with_coordinator(lambda node, now: send(node, now, old_form.pop(), 2), self.host.now)
                return
            if done is not None:
                done.set_result(None)

        def send(node: int, now: float, request: Any = req, max_version: int | None = None) -> None:
            self.host.client.send(request, now=now, node_id=node, callback=on_resp, max_version=max_version)

        self.host.with_coordinator(send, now)


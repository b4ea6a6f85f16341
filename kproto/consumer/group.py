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

Subscriptions and assignments use the standard consumer protocol encoding
(``ConsumerProtocolSubscription``/``Assignment`` with an int16 version
prefix), so kproto members share a group with Java, librdkafka and
kafka-python members.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from kproto.consumer.config import ConsumerConfig
from kproto.consumer.context import ClientLike
from kproto.consumer.pending import Pending
from kproto.consumer.types import TopicPartition
from kproto.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    IllegalGenerationError,
    IllegalStateError,
    KafkaConfigurationError,
    MemberIdRequiredError,
    NotCoordinatorError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    UnsupportedVersionError,
    error_from_code,
    is_retriable,
)
from kproto.protocol.messages import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
)
from kproto.protocol.messages import consumer_protocol_assignment as _cpa
from kproto.protocol.messages import consumer_protocol_subscription as _cps
from kproto.protocol.messages import join_group as _jg
from kproto.protocol.messages import leave_group as _lg
from kproto.protocol.messages import sync_group as _sg

__all__ = [
    "ConsumerRebalanceListener",
    "CooperativeStickyAssignor",
    "GroupMembership",
    "MemberState",
    "PartitionAssignor",
    "RangePartitionAssignor",
    "RoundRobinPartitionAssignor",
    "StickyPartitionAssignor",
    "decode_assignment",
    "decode_subscription",
    "encode_assignment",
    "encode_subscription",
    "resolve_assignors",
]

_I16 = struct.Struct(">h")
#: Versions this client writes; readers of any later version parse the prefix they know.
_SUBSCRIPTION_VERSION: Final = 0
#: The subscription version with ``owned_partitions`` (KIP-429), written by cooperative members.
_OWNED_SUBSCRIPTION_VERSION: Final = 1
_ASSIGNMENT_VERSION: Final = 0
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


# --- the consumer protocol encoding ---------------------------------------------


def encode_subscription(topics: Iterable[str], user_data: bytes | None = None,
                        owned: Iterable[TopicPartition] | None = None) -> bytes:
    """JoinGroup protocol metadata: int16 version + ConsumerProtocolSubscription.

    With ``owned`` (cooperative assignors, KIP-429) the subscription is
    version 1 and carries the partitions the member owns now.
    """
    if owned is None:
        body = ConsumerProtocolSubscription(topics=sorted(topics), user_data=user_data).encode(_SUBSCRIPTION_VERSION)
        return _I16.pack(_SUBSCRIPTION_VERSION) + body
    by_topic: dict[str, list[int]] = {}
    for tp in owned:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    sub = ConsumerProtocolSubscription(
        topics=sorted(topics), user_data=user_data,
        owned_partitions=[_cps.TopicPartition(topic=t, partitions=sorted(ps)) for t, ps in sorted(by_topic.items())])
    return _I16.pack(_OWNED_SUBSCRIPTION_VERSION) + sub.encode(_OWNED_SUBSCRIPTION_VERSION)


def decode_subscription(data: bytes | memoryview) -> ConsumerProtocolSubscription:
    """Parse a member's subscription; a newer version is read as the newest known (its prefix)."""
    mv = memoryview(data)
    version = _I16.unpack_from(mv, 0)[0]
    sub, _ = ConsumerProtocolSubscription.read(mv, 2, min(max(version, 0), ConsumerProtocolSubscription.MAX_VERSION))
    return sub


def encode_assignment(assignment: Mapping[str, Sequence[int]], user_data: bytes | None = None) -> bytes:
    """SyncGroup assignment: int16 version + ConsumerProtocolAssignment."""
    body = ConsumerProtocolAssignment(
        assigned_partitions=[_cpa.TopicPartition(topic=t, partitions=sorted(ps))
                             for t, ps in sorted(assignment.items())],
        user_data=user_data,
    ).encode(_ASSIGNMENT_VERSION)
    return _I16.pack(_ASSIGNMENT_VERSION) + body


def decode_assignment(data: bytes | memoryview) -> set[TopicPartition]:
    """The partitions of a SyncGroup assignment (empty bytes: nothing assigned)."""
    mv = memoryview(data)
    if len(mv) < 2:
        return set()
    version = _I16.unpack_from(mv, 0)[0]
    a, _ = ConsumerProtocolAssignment.read(mv, 2, min(max(version, 0), ConsumerProtocolAssignment.MAX_VERSION))
    return {TopicPartition(tp.topic, p) for tp in a.assigned_partitions for p in tp.partitions}


# --- assignors ------------------------------------------------------------------------


class PartitionAssignor:
    """Base of the leader-side assignors: ``assign`` maps member ids to partitions."""

    #: The protocol name members advertise in JoinGroup.
    name = ""

    def assign(self, partitions: Mapping[str, int], members: Mapping[str, tuple[Sequence[str], str | None]],
               user_data: Mapping[str, bytes | None] | None = None) -> dict[str, dict[str, list[int]]]:
        """Assign partitions.

        Args:
            partitions: topic -> partition count (topics unknown to metadata left out).
            members: member id -> (subscribed topics, group instance id or None).
            user_data: member id -> the ``user_data`` of its subscription (see :meth:`user_data`).

        Returns:
            member id -> topic -> partition ids (every member present, maybe empty).
        """
        raise NotImplementedError

    #: True for assignors that rebalance incrementally (KIP-429): members keep their
    #: partitions through a rebalance and revoke only the ones that move.
    cooperative = False

    def user_data(self, owned: set[TopicPartition], generation: int) -> bytes | None:
        """What this member puts in its subscription for this assignor (None: nothing)."""
        return None

    def member_data(self, subscription: ConsumerProtocolSubscription) -> bytes | None:
        """What :meth:`assign` gets as a member's ``user_data`` from its decoded subscription."""
        return None if subscription.user_data is None else bytes(subscription.user_data)

    @staticmethod
    def _order(members: Mapping[str, tuple[Sequence[str], str | None]], ids: Iterable[str]) -> list[str]:
        # As the Java client: static members sort by instance id, before dynamic ones by member id.
        def key(m: str) -> tuple[int, str]:
            inst = members[m][1]
            return (0, inst) if inst is not None else (1, m)

        return sorted(ids, key=key)


class RangePartitionAssignor(PartitionAssignor):
    """Per topic, consecutive ranges of partitions to the sorted members (the Java ``range``)."""

    name = "range"

    def assign(self, partitions: Mapping[str, int], members: Mapping[str, tuple[Sequence[str], str | None]],
               user_data: Mapping[str, bytes | None] | None = None) -> dict[str, dict[str, list[int]]]:
        out: dict[str, dict[str, list[int]]] = {m: {} for m in members}
        for topic in sorted(partitions):
            subs = self._order(members, (m for m, (topics, _) in members.items() if topic in topics))
            if not subs:
                continue
            count = partitions[topic]
            per, extra = divmod(count, len(subs))
            start = 0
            for i, m in enumerate(subs):
                n = per + (1 if i < extra else 0)
                if n:
                    out[m][topic] = list(range(start, start + n))
                start += n
        return out


class RoundRobinPartitionAssignor(PartitionAssignor):
    """All partitions, sorted by topic then index, dealt to the sorted members in turn (Java ``roundrobin``)."""

    name = "roundrobin"

    def assign(self, partitions: Mapping[str, int], members: Mapping[str, tuple[Sequence[str], str | None]],
               user_data: Mapping[str, bytes | None] | None = None) -> dict[str, dict[str, list[int]]]:
        out: dict[str, dict[str, list[int]]] = {m: {} for m in members}
        order = self._order(members, members)
        if not order:
            return out
        i = 0
        n = len(order)
        for topic in sorted(partitions):
            if not any(topic in members[m][0] for m in order):
                continue
            for p in range(partitions[topic]):
                # Skip members not subscribed to this topic; someone is.
                while topic not in members[order[i % n]][0]:
                    i += 1
                out[order[i % n]].setdefault(topic, []).append(p)
                i += 1
        return out


_I32 = struct.Struct(">i")


def encode_sticky_user_data(owned: Iterable[TopicPartition], generation: int) -> bytes:
    """The Java ``StickyAssignor`` user data v1: [topic, [partition]] then the generation (int32)."""
    by_topic: dict[str, list[int]] = {}
    for tp in owned:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    out = bytearray(_I32.pack(len(by_topic)))
    for topic in sorted(by_topic):
        raw = topic.encode()
        out += _I16.pack(len(raw)) + raw + _I32.pack(len(by_topic[topic]))
        for p in sorted(by_topic[topic]):
            out += _I32.pack(p)
    out += _I32.pack(generation)
    return bytes(out)


def decode_sticky_user_data(data: bytes) -> tuple[set[TopicPartition], int]:
    """Parse :func:`encode_sticky_user_data` (v0, without the generation, reads as generation -1).

    Raises:
        ValueError: malformed data.
    """
    mv = memoryview(data)
    try:
        (n,), pos = _I32.unpack_from(mv, 0), 4
        if n < 0 or n > len(mv):
            raise ValueError(f"bad topic count {n}")
        owned: set[TopicPartition] = set()
        for _ in range(n):
            (ln,) = _I16.unpack_from(mv, pos)
            topic = bytes(mv[pos + 2 : pos + 2 + ln]).decode()
            pos += 2 + ln
            (k,), pos = _I32.unpack_from(mv, pos), pos + 4
            if k < 0 or k * 4 > len(mv) - pos:
                raise ValueError(f"bad partition count {k}")
            for _ in range(k):
                owned.add(TopicPartition(topic, _I32.unpack_from(mv, pos)[0]))
                pos += 4
        generation = _I32.unpack_from(mv, pos)[0] if pos + 4 <= len(mv) else -1
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed sticky assignor user data: {exc}") from None
    return owned, generation


class StickyPartitionAssignor(PartitionAssignor):
    """Balanced, and keeps partitions where they were (KIP-54 ``sticky``; eager rebalancing).

    Each member sends what it owned (and its generation) as user data, in
    the Java ``StickyAssignor`` format. The leader keeps every still-valid
    ownership (on a conflict, the highest generation wins), deals the
    unowned partitions to the least-loaded subscribed members, then moves
    partitions from the most- to the least-loaded member while they differ
    by more than one and the receiver is subscribed to the partition's topic.
    Each move lowers the sum of squared loads, so it ends; with identical
    subscriptions loads end within one of each other.
    """

    name = "sticky"

    def user_data(self, owned: set[TopicPartition], generation: int) -> bytes | None:
        return encode_sticky_user_data(owned, generation)

    def assign(self, partitions: Mapping[str, int], members: Mapping[str, tuple[Sequence[str], str | None]],
               user_data: Mapping[str, bytes | None] | None = None) -> dict[str, dict[str, list[int]]]:
        subs = {m: set(topics) for m, (topics, _) in members.items()}
        previous: list[tuple[int, str, set[TopicPartition]]] = []
        for m, data in (user_data or {}).items():
            if m in members and data:
                try:
                    owned, generation = decode_sticky_user_data(data)
                except ValueError:
                    continue
                previous.append((generation, m, owned))
        owner: dict[TopicPartition, str] = {}
        for _gen, m, owned in sorted(previous, key=lambda x: (-x[0], x[1])):
            for tp in sorted(owned):
                if tp.topic in subs[m] and 0 <= tp.partition < partitions.get(tp.topic, 0) and tp not in owner:
                    owner[tp] = m
        load: dict[str, list[TopicPartition]] = {m: [] for m in members}
        for tp, m in sorted(owner.items()):
            load[m].append(tp)
        everything = [TopicPartition(t, p) for t in sorted(partitions) for p in range(partitions[t])
                      if any(t in s for s in subs.values())]
        for tp in everything:
            if tp in owner:
                continue
            eligible = [m for m in members if tp.topic in subs[m]]
            best = min(eligible, key=lambda m: (len(load[m]), m))
            load[best].append(tp)
        moved = True
        while moved:
            moved = False
            for donor in sorted(members, key=lambda m: (-len(load[m]), m)):
                for receiver in sorted(members, key=lambda m: (len(load[m]), m)):
                    if len(load[donor]) - len(load[receiver]) <= 1:
                        break
                    movable = [tp for tp in load[donor] if tp.topic in subs[receiver]]
                    if movable:
                        tp = movable[-1]
                        load[donor].remove(tp)
                        load[receiver].append(tp)
                        moved = True
                        break
                if moved:
                    break
        out: dict[str, dict[str, list[int]]] = {m: {} for m in members}
        for m, tps in load.items():
            for tp in sorted(tps):
                out[m].setdefault(tp.topic, []).append(tp.partition)
        return out


class CooperativeStickyAssignor(StickyPartitionAssignor):
    """The sticky assignment, rebalanced incrementally (KIP-429 ``cooperative-sticky``).

    Members keep consuming through a rebalance and send what they own in
    their subscription (version 1 ``owned_partitions``; the user data is the
    generation as an int32, as the Java ``CooperativeStickyAssignor``). The
    leader computes the sticky target, then withholds every partition that
    would move from one live owner to another: this round the owner only
    revokes it; the owner then rejoins, and the next round, where nobody owns
    it, hands it to its new member. So no partition has two owners at once.
    """

    name = "cooperative-sticky"
    cooperative = True

    def user_data(self, owned: set[TopicPartition], generation: int) -> bytes | None:
        return _I32.pack(generation)

    def member_data(self, subscription: ConsumerProtocolSubscription) -> bytes | None:
        # Reuse the sticky (KIP-54) layout internally: owned partitions + generation.
        raw = subscription.user_data
        generation = _I32.unpack_from(raw, 0)[0] if raw is not None and len(raw) >= 4 else -1
        owned = {TopicPartition(tp.topic, p) for tp in subscription.owned_partitions or () for p in tp.partitions}
        return encode_sticky_user_data(owned, generation)

    def assign(self, partitions: Mapping[str, int], members: Mapping[str, tuple[Sequence[str], str | None]],
               user_data: Mapping[str, bytes | None] | None = None) -> dict[str, dict[str, list[int]]]:
        target = super().assign(partitions, members, user_data)
        # Who owns each partition now (on a conflict the newest generation, as the sticky pass).
        claims: list[tuple[int, str, set[TopicPartition]]] = []
        for m, data in (user_data or {}).items():
            if m in members and data:
                try:
                    owned, generation = decode_sticky_user_data(data)
                except ValueError:
                    continue
                claims.append((generation, m, owned))
        owner: dict[TopicPartition, str] = {}
        for _gen, m, owned in sorted(claims, key=lambda x: (-x[0], x[1])):
            for tp in owned:
                owner.setdefault(tp, m)
        out: dict[str, dict[str, list[int]]] = {m: {} for m in target}
        for m, topics in target.items():
            for t, ps in topics.items():
                keep = [p for p in ps if owner.get(TopicPartition(t, p), m) == m]
                if keep:
                    out[m][t] = keep
        return out


_BY_NAME: Final[dict[str, type[PartitionAssignor]]] = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "sticky": StickyPartitionAssignor,
    "cooperative-sticky": CooperativeStickyAssignor,
}


def resolve_assignors(strategy: Sequence[Any]) -> list[PartitionAssignor]:
    """``partition_assignment_strategy`` entries (names, classes or instances) -> assignor instances.

    kafka-python's ``RangePartitionAssignor``/``RoundRobinPartitionAssignor``
    classes are accepted by their ``name``.

    Raises:
        KafkaConfigurationError: an entry that is not a known or usable assignor.
    """
    out: list[PartitionAssignor] = []
    for entry in strategy:
        name = entry if isinstance(entry, str) else getattr(entry, "name", None)
        if isinstance(entry, PartitionAssignor):
            out.append(entry)
        elif isinstance(entry, type) and issubclass(entry, PartitionAssignor):
            out.append(entry())
        elif isinstance(name, str) and name in _BY_NAME:
            out.append(_BY_NAME[name]())
        else:
            raise KafkaConfigurationError(
                f"partition_assignment_strategy entry {entry!r} is not supported: use 'range', "
                "'roundrobin', 'sticky' or 'cooperative-sticky'")
    return out


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

    def __init__(self, host: GroupHost, topics: set[str], listener: Any, now: float) -> None:
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

    def _coordinator_error(self, code: int, now: float) -> bool:
        if code in (_COORDINATOR_NOT_AVAILABLE, _NOT_COORDINATOR):
            self.host.mark_coordinator_dead(now)
            return True
        return code == _COORDINATOR_LOAD_IN_PROGRESS

    def _send_join(self, node: int, now: float) -> None:
        cfg = self.host.config
        self.state = MemberState.JOINING
        if not self.cooperative:
            self._revoke(lost=False)  # eager: everything goes before the JoinGroup
            self.host.set_assignment(set(), now)
        self.host.client.add_topics(self.topics, now)
        req = JoinGroupRequest(
            group_id=self.group_id,
            session_timeout_ms=cfg.session_timeout_ms,
            rebalance_timeout_ms=cfg.max_poll_interval_ms,
            member_id=self.member_id,
            group_instance_id=self.instance_id,
            protocol_type=_PROTOCOL_TYPE,
            protocols=[_jg.JoinGroupRequestProtocol(
                name=a.name, metadata=encode_subscription(self.topics, a.user_data(self._owned, self.generation),
                                                          self._owned if a.cooperative else None))
                for a in self.assignors],
        )
        epoch = self._epoch

        def on_resp(resp: Any, err: BaseException | None) -> None:
            if epoch != self._epoch:
                return
            self._on_join(resp, err, self.host.now)

        # The broker answers a JoinGroup only when the rebalance completes (up to the rebalance timeout).
        self.host.client.send(req, now=now, node_id=node, callback=on_resp,
                               timeout_ms=cfg.max_poll_interval_ms + cfg.request_timeout_ms)

    def _on_join(self, resp: Any, err: BaseException | None, now: float) -> None:
        self._inflight = False
        if err is not None:
            self.host.mark_coordinator_dead(now)
            self._reset(now, keep_member=True, delay=self._backoff())
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
        if code == _FENCED_INSTANCE_ID:
            self._fail(FencedInstanceIdError(f"group instance id {self.instance_id!r} is used by another member"))
            return
        if code:
            if is_retriable(code):
                self._reset(now, keep_member=True, delay=self._backoff())
            else:
                self._fail(error_from_code(code, f"JoinGroup {self.group_id!r}"))
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
        assignments = [_sg.SyncGroupRequestAssignment(member_id=m, assignment=encode_assignment(plan.get(m, {})))
                       for m in members]
        self.host.with_coordinator(lambda node, now: self._send_sync(node, now, assignments), now)

    def _send_sync(self, node: int, now: float, assignments: list[Any]) -> None:
        req = SyncGroupRequest(
            group_id=self.group_id, generation_id=self.generation, member_id=self.member_id,
            group_instance_id=self.instance_id, protocol_type=_PROTOCOL_TYPE, protocol_name=self.protocol,
            assignments=assignments,
        )
        epoch = self._epoch

        def on_resp(resp: Any, err: BaseException | None) -> None:
            if epoch != self._epoch:
                return
            self._on_sync(resp, err, self.host.now)

        self.host.client.send(req, now=now, node_id=node, callback=on_resp)

    def _on_sync(self, resp: Any, err: BaseException | None, now: float) -> None:
        self._inflight = False
        if err is not None:
            self.host.mark_coordinator_dead(now)
            self._reset(now, keep_member=True, delay=self._backoff())
            return
        code = resp.error_code
        if code == _UNKNOWN_MEMBER_ID:
            self._reset(now, keep_member=False)
            return
        if code == _FENCED_INSTANCE_ID:
            self._fail(FencedInstanceIdError(f"group instance id {self.instance_id!r} is used by another member"))
            return
        if code in (_ILLEGAL_GENERATION, _REBALANCE_IN_PROGRESS) or self._coordinator_error(code, now):
            self._reset(now, keep_member=code != _ILLEGAL_GENERATION, delay=0.0 if code else self._backoff())
            return
        if code:
            if is_retriable(code):
                self._reset(now, keep_member=True, delay=self._backoff())
            else:
                self._fail(error_from_code(code, f"SyncGroup {self.group_id!r}"))
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

    def _send_heartbeat(self, node: int, now: float) -> None:
        if self.state is not MemberState.STABLE:
            self._heartbeat_inflight = False
            return
        req = HeartbeatRequest(group_id=self.group_id, generation_id=self.generation,
                               member_id=self.member_id, group_instance_id=self.instance_id)
        epoch = self._epoch

        def on_resp(resp: Any, err: BaseException | None) -> None:
            if epoch != self._epoch:
                return
            self._on_heartbeat(resp, err, self.host.now)

        self.host.client.send(req, now=now, node_id=node, callback=on_resp)

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
            self._fail(FencedInstanceIdError(f"group instance id {self.instance_id!r} is used by another member"))
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


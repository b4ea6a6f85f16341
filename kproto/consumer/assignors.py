"""Partition assignors and the consumer protocol encoding of subscriptions and assignments.

The group leader runs an assignor (:class:`RangePartitionAssignor`,
:class:`RoundRobinPartitionAssignor`, :class:`StickyPartitionAssignor`,
:class:`CooperativeStickyAssignor`) over every member's subscription; see
:mod:`kproto.consumer.group` for when and how rebalances run.

Subscriptions and assignments use the standard consumer protocol encoding
(``ConsumerProtocolSubscription``/``Assignment`` with an int16 version
prefix), so kproto members share a group with Java, librdkafka and
kafka-python members.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from kproto.consumer.types import TopicPartition
from kproto.errors import KafkaConfigurationError
from kproto.protocol.messages import ConsumerProtocolAssignment, ConsumerProtocolSubscription
from kproto.protocol.messages import consumer_protocol_assignment as _cpa
from kproto.protocol.messages import consumer_protocol_subscription as _cps

__all__ = [
    "CooperativeStickyAssignor",
    "PartitionAssignor",
    "RangePartitionAssignor",
    "RoundRobinPartitionAssignor",
    "StickyPartitionAssignor",
    "decode_assignment",
    "decode_sticky_user_data",
    "decode_subscription",
    "encode_assignment",
    "encode_sticky_user_data",
    "encode_subscription",
    "resolve_assignors",
]

_I16 = struct.Struct(">h")
#: Versions this client writes; readers of any later version parse the prefix they know.
_SUBSCRIPTION_VERSION: Final = 0
#: The subscription version with ``owned_partitions`` (KIP-429), written by cooperative members.
_OWNED_SUBSCRIPTION_VERSION: Final = 1
_ASSIGNMENT_VERSION: Final = 0


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


def _claims(members: Mapping[str, object],
            user_data: Mapping[str, bytes | None] | None) -> list[tuple[str, set[TopicPartition]]]:
    """What each member says it owned (sticky user data), newest generation first, then by member id.

    Unreadable user data claims nothing, as the Java assignor ignores it.
    """
    claims: list[tuple[int, str, set[TopicPartition]]] = []
    for m, data in (user_data or {}).items():
        if m in members and data:
            try:
                owned, generation = decode_sticky_user_data(data)
            except ValueError:
                continue
            claims.append((generation, m, owned))
    return [(m, owned) for _gen, m, owned in sorted(claims, key=lambda x: (-x[0], x[1]))]


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
        owner: dict[TopicPartition, str] = {}
        for m, owned in _claims(members, user_data):
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
        owner: dict[TopicPartition, str] = {}
        for m, owned in _claims(members, user_data):
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


def resolve_assignors(strategy: Sequence[object]) -> list[PartitionAssignor]:
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

"""The client's view of the cluster: brokers, topics, partitions, leaders.

:class:`ClusterMetadata` is updated only by the client core from Metadata
responses; everything else reads it. ``version`` increases by one on every
applied update, so a reader can tell whether anything may have changed.

Leader epochs (KIP-320): a partition's entry is replaced only if the new
leader epoch is not older than the one we hold. A broker that lags behind
the controller can answer with stale leadership; going back to it would
send produce and fetch requests to a former leader.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

import attrs

from kproto.errors import KafkaError, LeaderNotAvailableError, error_from_code, is_retriable

if TYPE_CHECKING:
    from kproto.protocol.messages import MetadataResponse

__all__ = ["BrokerInfo", "ClusterMetadata", "PartitionInfo"]

_LEADER_NOT_AVAILABLE = LeaderNotAvailableError.errno


class BrokerInfo(NamedTuple):
    """Where a broker listens; unpacks as ``host, port, rack``."""

    host: str
    port: int
    rack: str | None


@attrs.frozen(kw_only=True, slots=True)
class PartitionInfo:
    """One partition as the last applied Metadata response described it."""

    #: Topic name.
    topic: str
    #: Partition index.
    partition: int
    #: Leader broker id, or -1 when there is none.
    leader: int
    #: Leader epoch, or -1 when the broker does not report it (Metadata < v7).
    leader_epoch: int
    #: Brokers holding a replica.
    replicas: tuple[int, ...]
    #: In-sync replicas.
    isr: tuple[int, ...]
    #: Replicas that are offline.
    offline_replicas: tuple[int, ...]
    #: The partition's error code (0 = none; LEADER_NOT_AVAILABLE while electing).
    error_code: int


class ClusterMetadata:
    """Brokers, topics and partition leadership; see the module docstring."""

    def __init__(self) -> None:
        #: Increases on every applied update (0 = nothing known yet).
        self.version = 0
        #: The cluster id the brokers reported, if any.
        self.cluster_id: str | None = None
        #: The controller broker id, or -1.
        self.controller_id = -1
        self._brokers: dict[int, BrokerInfo] = {}
        self._partitions: dict[str, dict[int, PartitionInfo]] = {}
        self._topic_errors: dict[str, int] = {}
        self._topic_ids: dict[str, uuid.UUID] = {}
        self._internal: set[str] = set()
        #: From the last update: ``(topic, partition, old, new)`` for each known partition whose
        #: leader changed (old -1: it had none), and ``topic -> (old, new)`` partition counts that grew.
        self.moved: tuple[tuple[str, int, int, int], ...] = ()
        self.grown: dict[str, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return (
            f"<ClusterMetadata v{self.version} brokers={sorted(self._brokers)} "
            f"topics={sorted(self._partitions)}>"
        )

    # --- queries --------------------------------------------------------------

    @property
    def brokers(self) -> dict[int, BrokerInfo]:
        """Broker id -> address (a copy)."""
        return dict(self._brokers)

    def broker(self, node_id: int) -> BrokerInfo | None:
        """The broker's ``(host, port, rack)``, or None if not in the metadata."""
        return self._brokers.get(node_id)

    @property
    def topics(self) -> set[str]:
        """Topics with partition information."""
        return set(self._partitions)

    def partitions_for(self, topic: str) -> set[int] | None:
        """All partition indexes of ``topic``, or None if the topic is unknown."""
        parts = self._partitions.get(topic)
        return set(parts) if parts is not None else None

    def available_partitions_for(self, topic: str) -> set[int]:
        """Partitions of ``topic`` that have a leader right now."""
        parts = self._partitions.get(topic)
        if not parts:
            return set()
        return {p for p, info in parts.items() if info.leader >= 0}

    def partition_info(self, topic: str, partition: int) -> PartitionInfo | None:
        """Everything known about one partition."""
        parts = self._partitions.get(topic)
        return parts.get(partition) if parts is not None else None

    def leader_for(self, topic: str, partition: int) -> int | None:
        """The leader's broker id, or None if unknown or leaderless."""
        info = self.partition_info(topic, partition)
        if info is None or info.leader < 0:
            return None
        return info.leader

    def leader_epoch_for(self, topic: str, partition: int) -> int | None:
        """The partition's leader epoch, or None if unknown."""
        info = self.partition_info(topic, partition)
        if info is None or info.leader_epoch < 0:
            return None
        return info.leader_epoch

    def topic_error(self, topic: str) -> KafkaError | None:
        """The error the last Metadata response gave for ``topic``, or None."""
        code = self._topic_errors.get(topic, 0)
        return error_from_code(code, f"topic {topic!r}") if code else None

    def topic_id(self, topic: str) -> uuid.UUID | None:
        """The topic's UUID (Metadata v10+), or None."""
        return self._topic_ids.get(topic)

    def is_internal(self, topic: str) -> bool:
        """True for internal topics such as ``__consumer_offsets``."""
        return topic in self._internal

    # --- update ------------------------------------------------------------

    def update(self, response: MetadataResponse) -> tuple[frozenset[str], bool]:
        """Apply a MetadataResponse.

        Returns:
            The topic names it described, and whether it reported something
            transient (a retriable topic or partition error, a partition
            without a leader) that calls for a refresh after ``retry_backoff_ms``.
        """
        self.version += 1
        self.cluster_id = getattr(response, "cluster_id", None)
        self.controller_id = getattr(response, "controller_id", -1)
        self._brokers = {
            b.node_id: BrokerInfo(b.host, b.port, getattr(b, "rack", None)) for b in response.brokers
        }
        described: set[str] = set()
        transient = False
        moved: list[tuple[str, int, int, int]] = []
        self.grown = {}
        for t in response.topics:
            name = t.name
            if name is None:
                continue
            described.add(name)
            if t.error_code:
                self._topic_errors[name] = t.error_code
                if is_retriable(t.error_code):
                    transient = True  # e.g. UNKNOWN_TOPIC_OR_PARTITION while a topic is created
                if t.error_code != _LEADER_NOT_AVAILABLE:
                    self._forget(name)  # LEADER_NOT_AVAILABLE: an election; keep the last known layout
                continue
            self._topic_errors.pop(name, None)
            topic_id = getattr(t, "topic_id", None)
            if topic_id is not None and topic_id.int != 0:
                self._topic_ids[name] = topic_id
            if getattr(t, "is_internal", False):
                self._internal.add(name)
            old = self._partitions.get(name, {})
            parts: dict[int, PartitionInfo] = {}
            for p in t.partitions:
                if p.partition_index < 0:
                    continue  # not a partition: ignore the entry
                info = PartitionInfo(
                    topic=name,
                    partition=p.partition_index,
                    leader=p.leader_id,
                    leader_epoch=getattr(p, "leader_epoch", -1),
                    replicas=tuple(p.replica_nodes),
                    isr=tuple(p.isr_nodes),
                    offline_replicas=tuple(getattr(p, "offline_replicas", ())),
                    error_code=p.error_code,
                )
                if info.leader >= 0 and info.leader not in self._brokers:
                    # A leader the response lists no address for: leaderless for now, as in
                    # the Java client (its Cluster looks the leader up among the brokers).
                    info = attrs.evolve(info, leader=-1)
                prev = old.get(info.partition)
                if prev is not None and 0 <= info.leader_epoch < prev.leader_epoch:
                    info = prev  # KIP-320: stale answer, keep the newer leader
                if info.leader < 0 or (info.error_code and is_retriable(info.error_code)):
                    transient = True
                elif prev is not None and info.leader != prev.leader:  # elected after a leaderless spell too
                    moved.append((name, info.partition, prev.leader, info.leader))
                parts[info.partition] = info
            if old and len(parts) > len(old):
                self.grown[name] = (len(old), len(parts))
            self._partitions[name] = parts
        self.moved = tuple(moved)
        return frozenset(described), transient

    def forget_brokers(self) -> None:
        """Drop the broker list (KIP-899 re-bootstrap); topics, partitions and epochs stay.

        Until the next update, :attr:`brokers` is empty and the client works
        from its bootstrap list; the kept partitions still guard the leader
        epochs of what the next response says (KIP-320).
        """
        if self._brokers:
            self.version += 1
            self._brokers = {}

    def retain_topics(self, topics: Iterable[str]) -> None:
        """Forget topics not in ``topics`` (the client stopped tracking them)."""
        keep = set(topics)
        for name in [n for n in self._partitions if n not in keep]:
            self._forget(name)
        for name in [n for n in self._topic_errors if n not in keep]:
            del self._topic_errors[name]

    def _forget(self, name: str) -> None:
        self._partitions.pop(name, None)
        self._topic_ids.pop(name, None)
        self._internal.discard(name)

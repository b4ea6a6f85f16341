"""Positions: per assigned partition, where the consumer is and what it has buffered.

Each assigned partition has a :class:`PartitionState`:

============  =====================================================
``position``  next offset ``poll`` hands out (None: unknown yet)
``fetch_at``  next offset to fetch: the end of what is buffered, so a
              Fetch for more can be in flight while the user works
              through buffered data (prefetch)
``epoch``     renewed by every seek/reset from one sequence for all
              states; a Fetch, OffsetFetch or ListOffsets answer for
              an older epoch (or an earlier assignment) is dropped
``queue``     :class:`~kproto.consumer.fetcher.PartitionRecords`
              not yet fully handed out, oldest first
``preferred`` the replica to fetch from instead of the leader
              (KIP-392), -1 for none, until ``preferred_until``
============  =====================================================

:class:`Positions` holds the states, the partitions with records ready (in
the order they became ready, so ``poll`` is fair) and the bytes buffered;
:mod:`~kproto.consumer.fetch_sessions` fills the queues and
:mod:`~kproto.consumer.offsets` finds positions for partitions without one.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from typing import Final

from kproto.consumer.fetcher import PartitionRecords
from kproto.consumer.types import TopicPartition
from kproto.errors import IllegalStateError

__all__ = ["EARLIEST", "LATEST", "PartitionState", "Positions"]

#: ListOffsets timestamps (KIP-79).
EARLIEST: Final = -2
LATEST: Final = -1


class PartitionState:
    """Per assigned partition bookkeeping; see the module docstring."""

    __slots__ = ("position", "fetch_at", "epoch", "paused", "queue", "inflight", "reset",
                 "committed_checked", "offset_request", "high_watermark", "retry_at", "leader_epoch",
                 "log_start_offset", "last_stable_offset", "fetched_at", "preferred", "preferred_until",
                 "_epochs")

    def __init__(self, epochs: Iterator[int]) -> None:
        self.position: int | None = None
        self.fetch_at: int | None = None
        #: Drawn from the consumer's one sequence, so an answer to a request made for an
        #: earlier assignment of the same partition (unassigned, then assigned again)
        #: never matches this state either.
        self._epochs = epochs
        self.epoch = next(epochs)
        self.paused = False
        self.queue: deque[PartitionRecords] = deque()
        self.inflight = False
        #: A pending reset: EARLIEST / LATEST, or None.
        self.reset: int | None = None
        self.committed_checked = False
        #: True while an OffsetFetch or ListOffsets for this partition is out.
        self.offset_request = False
        self.high_watermark = -1
        #: From the last Fetch response (-1: unknown); ``records-lead`` is measured from it.
        self.log_start_offset = -1
        #: The fetch response's LastStableOffset (-1 unknown) and when it came (core time, -1.0 never).
        self.last_stable_offset = -1
        self.fetched_at = -1.0
        self.retry_at = 0.0
        self.leader_epoch = -1
        #: The preferred read replica a leader named (KIP-392), or -1, and when that lease
        #: ends (Java: SubscriptionState.updatePreferredReadReplica, metadata.max.age.ms).
        #: Seeks keep it, as in the Java client: it says where the data is, not where to read.
        self.preferred = -1
        self.preferred_until = 0.0

    def bump_epoch(self) -> None:
        """Invalidate every Fetch, OffsetFetch and ListOffsets answer still on its way."""
        self.epoch = next(self._epochs)

    def set_position(self, offset: int) -> None:
        """A known position: fetch from it, forget any reset or lookup in flight."""
        self.position = offset
        self.fetch_at = offset
        self.bump_epoch()
        self.queue.clear()
        self.reset = None
        self.inflight = False
        self.offset_request = False

    def forget_position(self) -> None:
        """No position any more (a reset or a lookup decides the next one)."""
        self.position = None
        self.fetch_at = None
        self.bump_epoch()


class Positions:
    """The assigned partitions' states, which have records ready, and the bytes buffered."""

    __slots__ = ("states", "ready", "buffered_bytes", "_epochs")

    def __init__(self) -> None:
        self.states: dict[TopicPartition, PartitionState] = {}
        #: Partitions whose queue is not empty, in the order they filled (``poll`` rotates).
        self.ready: deque[TopicPartition] = deque()
        #: Bytes of every queue together (``fetch_max_bytes`` bounds it).
        self.buffered_bytes = 0
        #: Seek epochs of every partition state (see PartitionState.epoch).
        self._epochs = itertools.count()

    def state(self, tp: TopicPartition) -> PartitionState:
        """The state of an assigned partition.

        Raises:
            IllegalStateError: ``tp`` is not assigned.
        """
        st = self.states.get(TopicPartition(tp[0], tp[1]))
        if st is None:
            raise IllegalStateError(f"{tp!r} is not assigned to this consumer")
        return st

    def add(self, tp: TopicPartition) -> None:
        """Assign ``tp`` (no position yet)."""
        self.states[tp] = PartitionState(self._epochs)

    def drop(self, tp: TopicPartition) -> None:
        """Unassign ``tp`` and drop what it buffered."""
        st = self.states.pop(tp)
        for pr in st.queue:
            self.buffered_bytes -= pr.nbytes

    def clear_buffer(self, st: PartitionState) -> None:
        """Drop what ``st`` buffered."""
        for pr in st.queue:
            self.buffered_bytes -= pr.nbytes
        st.queue.clear()

    def seek(self, st: PartitionState, offset: int) -> None:
        """Make ``offset`` the next one handed out."""
        self.clear_buffer(st)
        st.set_position(offset)

    def request_reset(self, st: PartitionState, where: int) -> None:
        """Forget the position; find it again through ListOffsets (EARLIEST or LATEST)."""
        self.clear_buffer(st)
        st.forget_position()
        st.inflight = False
        st.offset_request = False
        st.reset = where
        st.retry_at = 0.0

    def refetch(self, st: PartitionState) -> None:
        """Drop what is buffered and fetch again from the position (corrupt data)."""
        self.clear_buffer(st)
        st.fetch_at = st.position
        st.bump_epoch()
        st.inflight = False

    def append(self, tp: TopicPartition, st: PartitionState, pr: PartitionRecords) -> None:
        """Queue fetched records of ``tp`` behind what it has."""
        if not st.queue:
            self.ready.append(tp)
        st.queue.append(pr)
        self.buffered_bytes += pr.nbytes

    def has_ready(self) -> bool:
        """True when a partition that is not paused has records queued."""
        states = self.states
        for tp in self.ready:
            st = states.get(tp)
            if st is not None and st.queue and not st.paused:
                return True
        return False

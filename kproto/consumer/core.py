"""The sans-I/O consumer core: assignment, positions, fetching, offsets, commits.

Theory of operation
-------------------
:class:`ConsumerCore` wraps a cluster :class:`~kproto.client.Client` and is
itself :class:`~kproto.driving.Driven`: every driving input is forwarded to
the client, then :meth:`ConsumerCore._pump` looks at the state and sends
what is due. Each assigned partition has a :class:`_PartitionState`:

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
============  =====================================================

A partition without a position first gets its committed offset (OffsetFetch
to the group coordinator, when ``group_id`` is set), else a reset through
ListOffsets to its leader (``auto_offset_reset``: earliest = -2, latest =
-1; any other policy raises :class:`NoOffsetForPartitionError` from
``poll``).

Fetching: one Fetch in flight per leader, holding every assigned, not
paused partition with a position whose queue holds fewer than
:data:`_MAX_QUEUED` responses, while the bytes buffered stay under
``fetch_max_bytes``. Each leader gets an incremental fetch session
(KIP-227) when it grants one: after a full fetch that opens it, a request
names only the partitions whose fetch offset changed and the ones that left
(``forgotten_topics_data``); FETCH_SESSION_ID_NOT_FOUND or
INVALID_FETCH_SESSION_EPOCH (or a lost connection) falls back to a full
fetch. Fetch is capped at v12 so topics travel by name. Partition errors: OFFSET_OUT_OF_RANGE resets the position per the
policy; leadership and unknown-topic errors refresh metadata and retry
after ``retry_backoff_ms``; anything else is raised from the next ``poll``.

Blocking-looking calls (``committed``, ``commit``, ``list_offsets``,
``fetch_metadata``) return a :class:`Pending`; the facade drives the core
until it is done.

``subscribe`` with a ``group_id`` hands the assignment to a
:class:`~kproto.consumer.group.GroupMembership`, which the pump drives too;
``assign`` (with or without a group) is a manual assignment whose commits
carry generation -1 and no member id ("simple consumer").
"""

from __future__ import annotations

import functools
import itertools
import random
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from kproto.consumer.config import ConsumerConfig
from kproto.consumer.context import ClientLike, ConsumerContext
from kproto.consumer.fetcher import PartitionRecords
from kproto.consumer.pending import Pending
from kproto.consumer.types import (
    CommitCompleted,
    ConsumerEvent,
    ConsumerGroupMetadata,
    ConsumerRecord,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    RecordDeserializationError,
    TopicPartition,
)
from kproto.driving import Command
from kproto.errors import (
    Cancelled,
    CommitFailedError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    FetchSessionIdNotFoundError,
    IllegalGenerationError,
    IllegalStateError,
    InvalidFetchSessionEpochError,
    InvalidGroupIdError,
    KafkaConfigurationError,
    KafkaError,
    KafkaProtocolError,
    NoOffsetForPartitionError,
    NotCoordinatorError,
    OffsetOutOfRangeError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    error_from_code,
    is_retriable,
    needs_metadata_refresh,
)
from kproto.events import BootstrapFailed, MetadataUpdated
from kproto.protocol.messages import (
    FetchRequest,
    ListOffsetsRequest,
    MetadataRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
)
from kproto.protocol.messages import fetch as _fetch
from kproto.protocol.messages import list_offsets as _lo
from kproto.protocol.messages import metadata as _md
from kproto.protocol.messages import offset_commit as _oc
from kproto.protocol.messages import offset_fetch as _of
from kproto.protocol.versions import named_versions

if TYPE_CHECKING:
    from kproto.consumer.group import GroupMembership

__all__ = ["ConsumerCore", "Pending"]

#: Completed fetches buffered per partition before it is fetched again:
#: two means one response being read while the next waits (double buffering).
_MAX_QUEUED: Final = 2
#: ListOffsets timestamps (KIP-79).
_EARLIEST: Final = -2
_LATEST: Final = -1
# Wire error codes handled by name (bound once: read on every Fetch response).
_OFFSET_OUT_OF_RANGE: Final = OffsetOutOfRangeError.errno
_COORDINATOR_LOAD_IN_PROGRESS: Final = CoordinatorLoadInProgressError.errno
_COORDINATOR_ERRORS: Final = (CoordinatorNotAvailableError.errno, NotCoordinatorError.errno)
#: A commit from an old generation.
_REBALANCE_ERRORS: Final = (IllegalGenerationError.errno, UnknownMemberIdError.errno, RebalanceInProgressError.errno)
_SESSION_ERRORS: Final = (FetchSessionIdNotFoundError.errno, InvalidFetchSessionEpochError.errno)
_INTERNAL_TOPICS: Final = frozenset({"__consumer_offsets", "__transaction_state"})


class _FetchSession:
    """A broker's incremental fetch session (KIP-227): its id, next epoch, and partitions."""

    __slots__ = ("id", "epoch", "parts")

    def __init__(self, session_id: int, epoch: int, parts: dict[TopicPartition, int]) -> None:
        self.id = session_id
        self.epoch = epoch
        #: What the broker holds for each partition of the session: the last fetch offset sent.
        self.parts = parts


class _PartitionState:
    """Per assigned partition bookkeeping; see the module docstring."""

    __slots__ = ("position", "fetch_at", "epoch", "paused", "queue", "inflight", "reset",
                 "committed_checked", "offset_request", "high_watermark", "retry_at", "leader_epoch",
                 "_epochs")

    def __init__(self, epochs: Iterator[int]) -> None:
        self.position: int | None = None
        self.fetch_at: int | None = None
        #: Drawn from the core's one sequence, so an answer to a request made for an
        #: earlier assignment of the same partition (unassigned, then assigned again)
        #: never matches this state either.
        self._epochs = epochs
        self.epoch = next(epochs)
        self.paused = False
        self.queue: deque[PartitionRecords] = deque()
        self.inflight = False
        #: A pending reset: _EARLIEST / _LATEST, or None.
        self.reset: int | None = None
        self.committed_checked = False
        #: True while an OffsetFetch or ListOffsets for this partition is out.
        self.offset_request = False
        self.high_watermark = -1
        self.retry_at = 0.0
        self.leader_epoch = -1

    def bump_epoch(self) -> None:
        """Invalidate every Fetch, OffsetFetch and ListOffsets answer still on its way."""
        self.epoch = next(self._epochs)

    def set_position(self, offset: int) -> None:
        self.position = offset
        self.fetch_at = offset
        self.bump_epoch()
        self.queue.clear()
        self.reset = None
        self.inflight = False
        self.offset_request = False


class ConsumerCore:
    """A sans-I/O Kafka consumer (implements :class:`kproto.driving.Driven`).

    Args:
        config: validated options (:meth:`ConsumerConfig.from_kwargs`).
        now: the driver's clock now.
        rng: randomness for the client (node choice, jitter).
        client: a ready cluster client to use (tests, sharing); by default one
            is built from ``config``.
    """

    def __init__(
        self,
        config: ConsumerConfig,
        *,
        now: float,
        rng: random.Random | None = None,
        client: ClientLike | None = None,
    ) -> None:
        self.config = config
        if client is None:
            import attrs

            from kproto.client import Client, ClientConfig

            names = [f.name for f in attrs.fields(ClientConfig)]
            built: ClientLike = Client(ClientConfig(**config.client_kwargs(names)), now=now, rng=rng)
            client = built
        ctx = self._ctx = ConsumerContext(config, client, now)
        ctx.assigned = self.assignment
        ctx.set_assignment = self._set_assignment
        ctx.commit_consumed = self._auto_commit
        #: The cluster client (tests and the facades' error path read these two).
        self._client: ClientLike = client
        self._errors = ctx.errors
        self._metrics = ctx.metrics
        self._states: dict[TopicPartition, _PartitionState] = {}
        #: Seek epochs of every partition state (see _PartitionState.epoch).
        self._epochs = itertools.count()
        self._subscription: set[str] | None = None
        self._pattern: re.Pattern[str] | None = None
        self._user_assigned = False
        self._group: GroupMembership | None = None
        self._close_pending: Pending[None] | None = None
        self._inflight_nodes: set[int] = set()
        self._sessions: dict[int, _FetchSession] = {}
        self._ready: deque[TopicPartition] = deque()
        self._buffered_bytes = 0
        self._events: list[ConsumerEvent] = []
        #: close() was called: no more auto-commits or fetches, only the close's own work.
        self._closing = False
        self._close_done: Pending[None] | None = None
        self._auto_commit_at: float | None = None
        if config.group_id is not None and config.enable_auto_commit:
            self._auto_commit_at = now + config.auto_commit_interval_ms / 1000
        self._last_committed: dict[TopicPartition, int] = {}
        self._commit_seq = 0
        self._latest_commit_for: dict[TopicPartition, int] = {}
        self._all_topics_at: float | None = None

    # --- the Driven surface -------------------------------------------------

    def connection_made(self, node_id: int, now: float) -> None:
        """See :class:`kproto.driving.Driven`."""
        if self._ctx.closed:
            return  # inputs racing with close(): the client is gone
        self._client.connection_made(node_id, now)
        self._pump(now)

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        """See :class:`kproto.driving.Driven`."""
        if self._ctx.closed:
            return  # inputs racing with close(): the client is gone
        self._client.connection_lost(node_id, exc, now)
        self._pump(now)

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        """See :class:`kproto.driving.Driven`."""
        if self._ctx.closed:
            return  # inputs racing with close(): the client is gone
        self._client.receive_data(node_id, data, now)
        self._pump(now)

    def handle_timer(self, now: float) -> None:
        """See :class:`kproto.driving.Driven`."""
        if self._ctx.closed:
            return  # inputs racing with close(): the client is gone
        self._client.handle_timer(now)
        self._pump(now)

    def commands(self) -> list[Command]:
        """See :class:`kproto.driving.Driven`."""
        return self._client.commands()

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """See :class:`kproto.driving.Driven`."""
        return self._client.data_to_send()

    def get_timer(self) -> float | None:
        """See :class:`kproto.driving.Driven`."""
        if self._ctx.closed:
            return None
        t = self._client.get_timer()
        group_t = self._group.get_timer() if self._group is not None else None
        # While closing, the auto-commit interval is no deadline: close() made the last commit.
        auto_commit_at = None if self._closing else self._auto_commit_at
        for own in (self._ctx.retry_at, auto_commit_at, group_t):
            if own is not None and (t is None or own < t):
                t = own
        return t

    def events(self) -> list[ConsumerEvent]:
        """Consumer events (:data:`~kproto.consumer.types.AnyConsumerEvent`) since the last call."""
        ev, self._events = self._events, []
        return ev

    # --- assignment and subscription ---------------------------------------

    def assign(self, partitions: Iterable[TopicPartition], now: float) -> None:
        """Consume exactly these partitions (no group membership).

        Raises:
            IllegalStateError: the consumer is subscribed to topics.
        """
        if self._subscription is not None or self._pattern is not None:
            raise IllegalStateError("assign() after subscribe(); call unsubscribe() first")
        tps = {TopicPartition(tp[0], tp[1]) for tp in partitions}
        for tp in tps:
            if not isinstance(tp.topic, str) or not isinstance(tp.partition, int) or tp.partition < 0:
                raise ValueError(f"not a topic partition: {tp!r}")
        self._user_assigned = bool(tps)
        self._set_assignment(tps, now)

    def _set_assignment(self, tps: set[TopicPartition], now: float) -> None:
        for tp in list(self._states):
            if tp not in tps:
                self._drop_partition(tp)
        for tp in tps:
            if tp not in self._states:
                self._states[tp] = _PartitionState(self._epochs)
        if tps:
            self._client.add_topics({tp.topic for tp in tps}, now)
        self._pump(now)

    def _drop_partition(self, tp: TopicPartition) -> None:
        st = self._states.pop(tp)
        for pr in st.queue:
            self._buffered_bytes -= pr.nbytes
        self._last_committed.pop(tp, None)

    def group_metadata(self) -> ConsumerGroupMetadata:
        """The group id, generation and member id to pass to ``send_offsets_to_transaction``.

        Raises:
            InvalidGroupIdError: The consumer has no ``group_id`` (as Java's
                ``groupMetadata()``).
        """
        group_id = self.config.group_id
        if group_id is None:
            raise InvalidGroupIdError("group_metadata() needs a consumer with a group_id")
        if self._group is None:
            return ConsumerGroupMetadata(group_id, -1, "", self.config.group_instance_id)
        generation, member_id, _ = self._group.commit_identity()
        return ConsumerGroupMetadata(group_id, generation, member_id, self.config.group_instance_id)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads."""
        return set(self._states)

    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None, *, now: float,
                  listener: Any = None) -> None:
        """Read the partitions of ``topics`` (or of topics matching ``pattern``).

        With a ``group_id`` the consumer joins its group and reads what the
        group assigns it (:mod:`kproto.consumer.group`); without one it
        assigns itself every partition of the topics as metadata reveals them.

        Raises:
            IllegalStateError: after ``assign()``.
            ValueError: neither or both of topics and pattern.
            KafkaConfigurationError: an unsupported assignor.
        """
        if self._user_assigned:
            raise IllegalStateError("subscribe() after assign(); call unsubscribe() first")
        topic_list = [topics] if isinstance(topics, str) else list(topics)
        if bool(topic_list) == (pattern is not None):
            raise ValueError("subscribe() needs topics or a pattern, not both")
        if pattern is not None:
            self._pattern = re.compile(pattern)
            self._subscription = None
            self._all_topics_at = now
        else:
            for t in topic_list:
                if not isinstance(t, str) or not t:
                    raise ValueError(f"not a topic name: {t!r}")
            self._subscription = set(topic_list)
            self._pattern = None
            self._client.add_topics(self._subscription, now)
        if self.config.group_id is not None:
            from kproto.consumer.group import GroupMembership

            if self._group is None:
                self._group = GroupMembership(self._ctx, self._subscription or set(), listener, now)
            else:
                self._group.listener = listener
                self._group.set_topics(self._subscription or set(), now)
        self._pump(now)

    def subscription(self) -> set[str] | None:
        """The subscribed topic names (matches so far for a pattern), or None."""
        if self._pattern is not None:
            return {tp.topic for tp in self._states}
        return set(self._subscription) if self._subscription is not None else None

    def unsubscribe(self, now: float) -> None:
        """Drop the subscription or the manual assignment."""
        if self._group is not None:
            self._group.leave(now)
            self._group = None
        self._subscription = None
        self._pattern = None
        self._user_assigned = False
        self._set_assignment(set(), now)

    def _update_subscribed_assignment(self, now: float) -> None:
        if self._subscription is None or self._group is not None:
            return
        cluster = self._client.cluster
        tps: set[TopicPartition] = set()
        for topic in self._subscription:
            parts = cluster.partitions_for(topic)
            if parts:
                tps.update(TopicPartition(topic, p) for p in parts)
        if tps != set(self._states):
            self._set_assignment(tps, now)

    def _on_all_topics(self, resp: Any, now: float) -> None:
        if self._pattern is None:
            return
        pat = self._pattern
        tps: set[TopicPartition] = set()
        for t in resp.topics:
            if t.error_code == 0 and t.name and pat.fullmatch(t.name) and not t.is_internal:
                tps.update(TopicPartition(t.name, p.partition_index) for p in t.partitions)
        if self._group is not None:
            self._group.set_topics({tp.topic for tp in tps}, now)
        elif tps != set(self._states):
            self._set_assignment(tps, now)

    # --- positions ------------------------------------------------------------

    def _state(self, tp: TopicPartition) -> _PartitionState:
        st = self._states.get(TopicPartition(tp[0], tp[1]))
        if st is None:
            raise IllegalStateError(f"{tp!r} is not assigned to this consumer")
        return st

    def position(self, tp: TopicPartition) -> int | None:
        """The next offset ``poll`` returns for ``tp``; None until known.

        Raises:
            IllegalStateError: ``tp`` is not assigned.
        """
        return self._state(tp).position

    def seek(self, tp: TopicPartition, offset: int, now: float) -> None:
        """Make ``offset`` the next one ``poll`` returns for ``tp``.

        Raises:
            ValueError: a negative offset.
            IllegalStateError: ``tp`` is not assigned.
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"seek offset must be an int >= 0, got {offset!r}")
        st = self._state(tp)
        self._clear_buffer(st)
        st.set_position(offset)
        self._pump(now)

    def _clear_buffer(self, st: _PartitionState) -> None:
        for pr in st.queue:
            self._buffered_bytes -= pr.nbytes
        st.queue.clear()

    def seek_to_beginning(self, tps: Iterable[TopicPartition], now: float) -> None:
        """Move each partition (all assigned when empty) to its earliest offset, lazily."""
        self._request_reset(tps, _EARLIEST, now)

    def seek_to_end(self, tps: Iterable[TopicPartition], now: float) -> None:
        """Move each partition (all assigned when empty) to its end offset, lazily."""
        self._request_reset(tps, _LATEST, now)

    def _request_reset(self, tps: Iterable[TopicPartition], where: int, now: float) -> None:
        targets = list(tps) or list(self._states)
        states = [self._state(tp) for tp in targets]
        for st in states:
            self._clear_buffer(st)
            st.position = None
            st.fetch_at = None
            st.bump_epoch()
            st.inflight = False
            st.offset_request = False
            st.reset = where
            st.retry_at = 0.0
        self._pump(now)

    def pause(self, tps: Iterable[TopicPartition]) -> None:
        """Stop fetching and returning records for these partitions."""
        for tp in tps:
            self._state(tp).paused = True

    def resume(self, tps: Iterable[TopicPartition], now: float) -> None:
        """Undo :meth:`pause`."""
        for tp in tps:
            self._state(tp).paused = False
        self._pump(now)

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return {tp for tp, st in self._states.items() if st.paused}

    def highwater(self, tp: TopicPartition) -> int | None:
        """The high watermark from the last fetch of ``tp``, or None."""
        hw = self._state(tp).high_watermark
        return hw if hw >= 0 else None

    # --- poll -------------------------------------------------------------------

    def poll(self, max_records: int | None, now: float) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Hand out buffered records, at most ``max_records`` (``max_poll_records`` if None).

        Never waits: the driver keeps driving until this returns something
        or its timeout ends.

        Raises:
            NoOffsetForPartitionError: a partition needs a reset and
                ``auto_offset_reset`` allows none.
            RecordDeserializationError: a deserializer failed (position stays on the record).
            KafkaError: a fetch error that is not retriable (authorization...).
        """
        self.before_poll(now)
        if self._errors:
            raise self._errors.pop(0)
        n = self.config.max_poll_records if max_records is None else max_records
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        ready = self._ready
        kd = self.config.key_deserializer
        vd = self.config.value_deserializer
        rotations = len(ready)
        while n > 0 and ready and rotations >= 0:
            tp = ready[0]
            st = self._states.get(tp)
            if st is None or not st.queue:
                ready.popleft()
                rotations -= 1
                continue
            if st.paused:
                ready.rotate(-1)
                rotations -= 1
                continue
            pr = st.queue[0]
            try:
                recs = pr.take(n, kd, vd)
            except RecordDeserializationError:
                st.position = pr.position
                if out:
                    break
                raise
            except KafkaError as exc:
                # Corrupt data: drop the rest of this blob and fetch again from the position.
                st.position = pr.position
                self._clear_buffer(st)
                st.fetch_at = st.position
                st.bump_epoch()
                st.inflight = False
                if out:
                    self._errors.append(exc.with_traceback(None))  # no frame (and no cycle) kept
                    break
                raise
            st.position = pr.position
            if recs:
                n -= len(recs)
                prev = out.get(tp)
                if prev is None:
                    out[tp] = recs
                else:
                    prev.extend(recs)
            if pr.exhausted:
                st.queue.popleft()
                self._buffered_bytes -= pr.nbytes
                if not st.queue:
                    ready.popleft()
                    rotations -= 1
        if out:
            self._metrics["records-consumed-total"] += sum(len(v) for v in out.values())
        self._pump(now)
        return out

    def before_poll(self, now: float) -> None:
        """What ``poll`` does first: note the poll (group liveness) and run due user callbacks.

        An async facade calls this itself, then awaits :meth:`take_awaitables`
        (coroutine listeners), before :meth:`poll`.
        """
        if self._group is not None:
            self._group.on_poll(now)
        self._ctx.run_deferred()

    def take_awaitables(self) -> list[Any]:
        """Awaitables returned by listener callbacks (``async def`` listeners); drains them.

        The sync facade closes them unawaited; async facades await them in order.
        """
        return self._ctx.take_awaitables()

    def take_error(self) -> BaseException | None:
        """Pop the oldest error waiting to be raised from ``poll`` (None if none)."""
        return self._errors.pop(0) if self._errors else None

    def has_buffered(self) -> bool:
        """True when ``poll`` would return records (or raise) now."""
        if self._errors:
            return True
        for tp in self._ready:
            st = self._states.get(tp)
            if st is not None and st.queue and not st.paused:
                return True
        return False

    # --- the pump: send what is due ------------------------------------------

    def _pump(self, now: float) -> None:
        ctx = self._ctx
        ctx.now = now
        if ctx.closed:
            return
        if self._close_pending is not None:
            done, self._close_pending = self._close_pending, None
            ctx.closed = True
            self._client.close(now)
            done.set_result(None)
            return
        client = self._client
        for ev in client.events():
            if isinstance(ev, MetadataUpdated):
                self._update_subscribed_assignment(now)
                ctx.metadata_updated(now)
            elif isinstance(ev, BootstrapFailed):
                self._errors.append(ev.error)
        ctx.run_due(now)
        if self._closing:
            # Only the close's own requests (final commit, LeaveGroup) from here on.
            if self._group is not None:
                self._group.pump(now)
            return
        if self._pattern is not None and self._all_topics_at is not None and now >= self._all_topics_at:
            self._all_topics_at = now + self.config.metadata_max_age_ms / 1000
            p = self.fetch_metadata(None, now, pump=False)

            def got(r: Pending[Any]) -> None:
                if r.exception() is None:
                    self._on_all_topics(r.result(), self._ctx.now)

            p.add_done_callback(got)
        if self._auto_commit_at is not None and now >= self._auto_commit_at:
            self._auto_commit_at = now + self.config.auto_commit_interval_ms / 1000
            self._auto_commit(now)
        if self._group is not None:
            self._group.pump(now)
        self._send_offset_requests(now)
        self._send_fetches(now)

    def _backoff(self, st: _PartitionState, now: float) -> None:
        st.retry_at = self._ctx.backoff(now)

    def _send_fetches(self, now: float) -> None:
        if self._buffered_bytes >= self.config.fetch_max_bytes:
            return
        cluster = self._client.cluster
        by_node: dict[int, list[tuple[TopicPartition, _PartitionState]]] = {}
        # Nodes with a partition that waits only for the user to drain its buffer.
        blocked: set[int] = set()
        for tp, st in self._states.items():
            if st.fetch_at is None or st.inflight or st.paused or st.retry_at > now:
                continue
            leader = cluster.leader_for(tp.topic, tp.partition)
            if leader is None or leader < 0 or leader in self._inflight_nodes:
                continue
            if len(st.queue) >= _MAX_QUEUED:
                blocked.add(leader)
                continue
            by_node.setdefault(leader, []).append((tp, st))
        cfg = self.config
        for node, items in by_node.items():
            if node in blocked and all(0 <= st.high_watermark <= (st.fetch_at or 0) for _, st in items):
                # Every partition here is caught up: this Fetch would wait fetch_max_wait_ms
                # at the broker and hold back the partitions being drained. Send it with them.
                continue
            topics: dict[str, list[Any]] = {}
            sent: dict[TopicPartition, tuple[int, int]] = {}
            wanted: dict[TopicPartition, int] = {}
            for tp, st in items:
                assert st.fetch_at is not None
                sent[tp] = (st.epoch, st.fetch_at)
                wanted[tp] = st.fetch_at
                st.inflight = True
            # KIP-227: with a session, send only what changed since the last request and
            # name what left; without one (or when the broker declines: id 0), a full fetch
            # that asks for a session (epoch 0), or -1 when sessions are off.
            session = self._sessions.get(node) if cfg.enable_incremental_fetch_sessions else None
            forgotten: dict[str, list[int]] = {}
            if session is None:
                session_id, epoch = 0, (0 if cfg.enable_incremental_fetch_sessions else -1)
                changed = wanted
            else:
                session_id, epoch = session.id, session.epoch
                changed = {tp: at for tp, at in wanted.items() if session.parts.get(tp) != at}
                for tp in session.parts:
                    if tp not in wanted:
                        forgotten.setdefault(tp.topic, []).append(tp.partition)
            for tp, at in changed.items():
                topics.setdefault(tp.topic, []).append(
                    _fetch.FetchPartition(
                        partition=tp.partition,
                        current_leader_epoch=-1,
                        fetch_offset=at,
                        log_start_offset=-1,
                        partition_max_bytes=cfg.max_partition_fetch_bytes,
                    )
                )
            req = FetchRequest(
                replica_id=-1,
                max_wait_ms=cfg.fetch_max_wait_ms,
                min_bytes=cfg.fetch_min_bytes,
                max_bytes=cfg.fetch_max_bytes,
                isolation_level=1 if cfg.read_committed else 0,
                session_id=session_id,
                session_epoch=epoch,
                topics=[_fetch.FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()],
                forgotten_topics_data=[_fetch.ForgottenTopic(topic=t, partitions=ps) for t, ps in forgotten.items()],
            )
            self._inflight_nodes.add(node)
            self._metrics["fetch-requests-total"] += 1

            def on_fetch(resp: Any, err: BaseException | None, node: int = node,
                         sent: dict[TopicPartition, tuple[int, int]] = sent,
                         wanted: dict[TopicPartition, int] = wanted, full: bool = session is None) -> None:
                self._update_session(node, resp, err, wanted, full)
                self._on_fetch(node, sent, resp, err)

            self._client.send(req, now=now, node_id=node, callback=on_fetch)

    def _update_session(self, node: int, resp: Any, err: BaseException | None,
                        wanted: dict[TopicPartition, int], full: bool) -> None:
        """KIP-227 bookkeeping after a Fetch to ``node``."""
        if not self.config.enable_incremental_fetch_sessions:
            return
        if err is not None or resp.error_code in _SESSION_ERRORS:
            self._sessions.pop(node, None)  # the next fetch is a full one that opens a new session
            return
        if resp.error_code:
            return
        session = self._sessions.get(node)
        if full or session is None:
            if resp.session_id:
                self._sessions[node] = _FetchSession(resp.session_id, 1, wanted)
            else:
                self._sessions.pop(node, None)
        else:
            # Epochs run 1..2**31-1 and wrap to 1 (0 opens a session, -1 closes one).
            session.epoch = session.epoch + 1 if session.epoch < 2**31 - 1 else 1
            session.parts = wanted

    def _on_fetch(self, node: int, sent: dict[TopicPartition, tuple[int, int]], resp: Any,
                  err: BaseException | None) -> None:
        if self._ctx.closed:
            return
        now = self._ctx.now
        self._inflight_nodes.discard(node)
        current: dict[TopicPartition, _PartitionState] = {}
        for tp, (epoch, at) in sent.items():
            st = self._states.get(tp)
            if st is not None and st.epoch == epoch and st.fetch_at == at:
                st.inflight = False
                current[tp] = st
        if err is not None:
            for st in current.values():
                self._backoff(st, now)
            if isinstance(err, KafkaProtocolError):
                self._ctx.report(err)  # bad broker bytes: retried, but never silently
            if getattr(err, "refresh_metadata", False):
                self._client.request_metadata_update(now)
            return
        if resp.error_code:
            exc = error_from_code(resp.error_code)
            for st in current.values():
                self._backoff(st, now)
            if not is_retriable(resp.error_code):
                self._errors.append(exc)
            return
        cfg = self.config
        refresh = False
        # Only partitions this Fetch asked for, each once: as in the Java client (whose
        # FetchResponse.responseData builds a map), a partition listed twice counts once,
        # with its last entry; one not asked for is ignored.
        latest: dict[TopicPartition, Any] = {}
        for topic_resp in resp.responses:
            topic = topic_resp.topic
            for p in topic_resp.partitions:
                tp = TopicPartition(topic, p.partition_index)
                if tp in current:
                    latest[tp] = p
        for tp, p in latest.items():
            st = current[tp]
            code = p.error_code
            if code == 0:
                st.high_watermark = p.high_watermark
                raw = p.records
                if not raw:
                    continue
                buf = raw if type(raw) is bytes else bytes(raw)
                aborted = None
                if cfg.read_committed and p.aborted_transactions:
                    aborted = [(a.first_offset, a.producer_id) for a in p.aborted_transactions]
                at = sent[tp][1]
                try:
                    pr = PartitionRecords(
                        tp, st.epoch, buf, at, high_watermark=p.high_watermark,
                        check_crcs=cfg.check_crcs, read_committed=cfg.read_committed, aborted=aborted,
                        max_decompressed=max(cfg.fetch_max_bytes, 64 * 1024 * 1024),
                    )
                except KafkaError as exc:
                    self._ctx.report(exc)
                    self._backoff(st, now)
                    continue
                if pr.nbytes == 0:
                    continue  # only a partial batch: fetch again (broker caps by bytes)
                self._metrics["bytes-fetched-total"] += pr.nbytes
                st.fetch_at = pr.next_fetch_offset
                if not st.queue:
                    self._ready.append(tp)
                st.queue.append(pr)
                self._buffered_bytes += pr.nbytes
            elif code == _OFFSET_OUT_OF_RANGE:
                if not st.queue and st.position == sent[tp][1]:
                    self._out_of_range(tp, st)
            elif needs_metadata_refresh(code) or is_retriable(code):
                refresh = refresh or needs_metadata_refresh(code)
                self._backoff(st, now)
            else:
                self._errors.append(error_from_code(code, f"fetch {tp.topic}-{tp.partition}"))
                self._backoff(st, now)
        if refresh:
            self._client.request_metadata_update(now)

    def _out_of_range(self, tp: TopicPartition, st: _PartitionState) -> None:
        policy = self.config.reset_policy
        if policy == "none":
            self._park_no_offset(tp, st, f"offset {st.position} out of range")
            return
        st.position = None
        st.fetch_at = None
        st.bump_epoch()
        st.reset = _EARLIEST if policy == "earliest" else _LATEST

    # --- committed offsets and resets ----------------------------------------

    def _park_no_offset(self, tp: TopicPartition, st: _PartitionState, why: str) -> None:
        """No position and no reset allowed: stop the partition until the user seeks."""
        st.position = None
        st.fetch_at = None
        st.bump_epoch()
        st.reset = None
        st.committed_checked = True
        st.offset_request = True
        self._errors.append(NoOffsetForPartitionError(
            f"{why} for {tp.topic}-{tp.partition} and auto_offset_reset="
            f"{self.config.auto_offset_reset!r} allows no reset; seek() to choose a position"))

    def _send_offset_requests(self, now: float) -> None:
        need_committed: list[TopicPartition] = []
        need_reset: dict[int, list[TopicPartition]] = {}
        policy = self.config.reset_policy
        for tp, st in self._states.items():
            if st.position is not None or st.offset_request or st.retry_at > now:
                continue
            if st.reset is None and not st.committed_checked and self.config.group_id is not None:
                need_committed.append(tp)
                continue
            if st.reset is None:
                if policy == "none":
                    self._park_no_offset(tp, st, "no committed offset")
                    continue
                st.reset = _EARLIEST if policy == "earliest" else _LATEST
            need_reset.setdefault(st.reset, []).append(tp)
        if need_committed:
            for tp in need_committed:
                self._states[tp].offset_request = True
            p = self.committed(need_committed, now, pump=False)
            epochs = {tp: self._states[tp].epoch for tp in need_committed}
            p.add_done_callback(functools.partial(self._on_committed_for_position, epochs=epochs))
        for where, tps in need_reset.items():
            for tp in tps:
                self._states[tp].offset_request = True
            epochs = {tp: self._states[tp].epoch for tp in tps}
            lp = self._list_offsets({tp: where for tp in tps}, now)
            lp.add_done_callback(functools.partial(self._on_reset, epochs=epochs))

    def _on_committed_for_position(self, p: Pending[dict[TopicPartition, OffsetAndMetadata | None]],
                                   epochs: dict[TopicPartition, int]) -> None:
        now = self._ctx.now
        exc = p.exception()
        self._ctx.surface(exc)
        for tp, epoch in epochs.items():
            st = self._states.get(tp)
            if st is None or st.epoch != epoch:
                continue
            st.offset_request = False
            if exc is not None:
                self._backoff(st, now)
                continue
            om = p.result().get(tp)
            st.committed_checked = True
            if om is not None and om.offset >= 0:
                st.set_position(om.offset)
        self._pump(now)

    def _on_reset(self, p: Pending[dict[TopicPartition, OffsetAndTimestamp | None]],
                  epochs: dict[TopicPartition, int]) -> None:
        now = self._ctx.now
        exc = p.exception()
        self._ctx.surface(exc)
        for tp, epoch in epochs.items():
            st = self._states.get(tp)
            if st is None or st.epoch != epoch:
                continue
            st.offset_request = False
            if exc is not None:
                self._backoff(st, now)
                continue
            ot = p.result().get(tp)
            if ot is None:
                self._backoff(st, now)
                continue
            st.set_position(ot.offset)
        self._pump(now)

    def list_offsets(self, timestamps: Mapping[TopicPartition, int],
                     now: float) -> Pending[dict[TopicPartition, OffsetAndTimestamp | None]]:
        """ListOffsets for each partition at a timestamp (-2 earliest, -1 latest).

        The Pending's value maps each partition to the first offset whose
        timestamp is at or after the one asked (None if there is none).
        Unknown partitions wait for metadata; retriable errors are retried
        until ``request_timeout_ms``.
        """
        for ts in timestamps.values():
            if isinstance(ts, bool) or not isinstance(ts, int) or ts < -2:
                raise ValueError(f"timestamps must be ints >= 0 (or -1/-2), got {ts!r}")
        self._client.add_topics({tp[0] for tp in timestamps}, now)
        p = self._list_offsets({TopicPartition(tp[0], tp[1]): ts for tp, ts in timestamps.items()}, now)
        self._pump(now)
        return p

    def _list_offsets(self, timestamps: dict[TopicPartition, int],
                      now: float) -> Pending[dict[TopicPartition, OffsetAndTimestamp | None]]:
        result: Pending[dict[TopicPartition, OffsetAndTimestamp | None]] = Pending()
        answers: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        remaining = dict(timestamps)
        deadline = now + self.config.request_timeout_ms / 1000
        isolation = 1 if self.config.read_committed else 0

        def attempt(now: float) -> None:
            if result.done:
                return
            if not remaining:
                result.set_result(answers)
                return
            if now > deadline:
                result.set_error(KafkaError(
                    f"timed out listing offsets for {sorted(remaining)} (no leader or retriable errors)"))
                return
            cluster = self._client.cluster
            by_node: dict[int, dict[TopicPartition, int]] = {}
            waiting = False
            for tp, ts in remaining.items():
                leader = cluster.leader_for(tp.topic, tp.partition)
                if leader is None or leader < 0:
                    waiting = True
                    continue
                by_node.setdefault(leader, {})[tp] = ts
            if waiting:
                self._client.add_topics({tp.topic for tp in remaining}, now)
                self._client.request_metadata_update(now)
            outstanding = [len(by_node)]
            if not by_node:
                # Retry as soon as new metadata arrives, or after the backoff at the latest.
                self._ctx.after_metadata(attempt, now)
                return
            for node, tps in by_node.items():
                topics: dict[str, list[Any]] = {}
                for tp, ts in tps.items():
                    topics.setdefault(tp.topic, []).append(_lo.ListOffsetsPartition(
                        partition_index=tp.partition, current_leader_epoch=-1, timestamp=ts))
                req = ListOffsetsRequest(
                    replica_id=-1, isolation_level=isolation,
                    topics=[_lo.ListOffsetsTopic(name=t, partitions=ps) for t, ps in topics.items()])

                def on_resp(resp: Any, err: BaseException | None,
                            tps: dict[TopicPartition, int] = tps, node: int = node) -> None:
                    if self._ctx.closed:
                        result.set_error(err or Cancelled("the consumer is closed"))
                        return
                    now = self._ctx.now
                    retry = False
                    if err is not None:
                        retry = True
                    else:
                        for t in resp.topics:
                            for pr in t.partitions:
                                tp = TopicPartition(t.name, pr.partition_index)
                                if tp not in tps:
                                    continue
                                code = pr.error_code
                                if code == 0:
                                    off = pr.offset
                                    if off < -1:  # -1: no such offset; anything lower is not an offset
                                        result.set_error(KafkaProtocolError(
                                            f"ListOffsets {tp}: node {node} answered offset {off}"))
                                        return
                                    answers[tp] = (None if off < 0 else
                                                   OffsetAndTimestamp(off, pr.timestamp, pr.leader_epoch))
                                    remaining.pop(tp, None)
                                elif is_retriable(code) or needs_metadata_refresh(code):
                                    retry = True
                                    if needs_metadata_refresh(code):
                                        self._client.request_metadata_update(now)
                                else:
                                    result.set_error(error_from_code(code, f"ListOffsets {tp}"))
                                    return
                    outstanding[0] -= 1
                    if outstanding[0] == 0:
                        if retry and remaining:
                            self._ctx.later(attempt, now)
                        else:
                            attempt(now)

                self._client.send(req, now=now, node_id=node, callback=on_resp)

        attempt(now)
        return result

    def _need_group(self, what: str) -> str:
        if self.config.group_id is None:
            raise KafkaConfigurationError(
                f"{what} needs a group_id: offsets are stored per consumer group; "
                "pass group_id=... to the consumer")
        return self.config.group_id

    def committed(self, tps: Iterable[TopicPartition], now: float,
                  *, pump: bool = True) -> Pending[dict[TopicPartition, OffsetAndMetadata | None]]:
        """The group's committed offsets (OffsetFetch to the coordinator).

        Raises:
            KafkaConfigurationError: no ``group_id``.
        """
        group = self._need_group("committed()")
        wanted = [TopicPartition(tp[0], tp[1]) for tp in tps]
        result: Pending[dict[TopicPartition, OffsetAndMetadata | None]] = Pending()
        deadline = now + self.config.request_timeout_ms / 1000

        def send(node: int, now: float) -> None:
            topics: dict[str, list[int]] = {}
            for tp in wanted:
                topics.setdefault(tp.topic, []).append(tp.partition)
            req = OffsetFetchRequest(
                group_id=group,
                topics=[_of.OffsetFetchRequestTopic(name=t, partition_indexes=ps) for t, ps in topics.items()],
                require_stable=True,
            )

            def on_resp(resp: Any, err: BaseException | None) -> None:
                if self._ctx.closed:
                    result.set_error(err or Cancelled("the consumer is closed"))
                    return
                now = self._ctx.now
                code = 0 if err is not None else resp.error_code
                if err is not None or code:
                    exc = err or error_from_code(code, "OffsetFetch")
                    if code in _COORDINATOR_ERRORS or err is not None:
                        self._ctx.mark_coordinator_dead(now)
                    if (err is not None or is_retriable(code)) and now < deadline:
                        self._ctx.later(lambda now: self._ctx.with_coordinator(send, now), now)
                    else:
                        result.set_error(exc)
                    return
                out: dict[TopicPartition, OffsetAndMetadata | None] = {tp: None for tp in wanted}
                for t in resp.topics:
                    for pr in t.partitions:
                        tp = TopicPartition(t.name, pr.partition_index)
                        if tp not in out:
                            continue  # not asked for
                        if pr.committed_offset < -1:  # -1: none committed; anything lower is not an offset
                            result.set_error(KafkaProtocolError(
                                f"OffsetFetch {tp}: node {node} answered offset {pr.committed_offset}"))
                            return
                        if pr.error_code:
                            if is_retriable(pr.error_code) and now < deadline:
                                self._ctx.later(lambda now: self._ctx.with_coordinator(send, now), now)
                                return
                            result.set_error(error_from_code(pr.error_code, f"OffsetFetch {tp}"))
                            return
                        if pr.committed_offset >= 0:
                            out[tp] = OffsetAndMetadata(pr.committed_offset, pr.metadata or "",
                                                        pr.committed_leader_epoch)
                result.set_result(out)

            self._client.send(req, now=now, node_id=node, callback=on_resp)

        self._ctx.with_coordinator(send, now)
        if pump:
            self._pump(now)
        return result

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None,
               now: float, *, pump: bool = True) -> Pending[dict[TopicPartition, OffsetAndMetadata]]:
        """Commit offsets (the consumed positions when None) to the group.

        As a consumer without group membership ("simple consumer"), the
        commit carries generation -1 and an empty member id, which Kafka
        accepts for a group with no active members.

        Raises:
            KafkaConfigurationError: no ``group_id``.
        """
        group = self._need_group("commit()")
        if offsets is None:
            to_commit = {tp: OffsetAndMetadata(st.position, "", -1)
                         for tp, st in self._states.items() if st.position is not None}
        else:
            to_commit = {}
            for tp, om in offsets.items():
                if isinstance(om, int):
                    om = OffsetAndMetadata(om, "", -1)
                elif not isinstance(om, OffsetAndMetadata):
                    om = OffsetAndMetadata(*om)
                if om.offset < 0:
                    raise ValueError(f"cannot commit a negative offset for {tp!r}: {om.offset}")
                to_commit[TopicPartition(tp[0], tp[1])] = om
        result: Pending[dict[TopicPartition, OffsetAndMetadata]] = Pending()
        if not to_commit:
            result.set_result({})
            return result
        deadline = now + self.config.request_timeout_ms / 1000
        # Every commit gets a number; a retry leaves out the partitions that a
        # later commit has taken over, so a retried older offset can never land
        # after a newer one and move the committed offset backwards.
        self._commit_seq += 1
        seq = self._commit_seq
        latest = self._latest_commit_for
        for tp in to_commit:
            latest[tp] = seq

        def send(node: int, now: float) -> None:
            topics: dict[str, list[Any]] = {}
            current = {tp: om for tp, om in to_commit.items() if latest.get(tp) == seq}
            if not current:
                # Superseded entirely by later commits, which report their own outcome.
                result.set_result(dict(to_commit))
                return
            for tp, om in current.items():
                topics.setdefault(tp.topic, []).append(_oc.OffsetCommitRequestPartition(
                    partition_index=tp.partition, committed_offset=om.offset,
                    committed_leader_epoch=om.leader_epoch, committed_metadata=om.metadata))
            generation, member, instance = (self._group.commit_identity() if self._group is not None
                                            else (-1, "", None))
            req = OffsetCommitRequest(
                group_id=group, generation_id_or_member_epoch=generation, member_id=member,
                group_instance_id=instance, retention_time_ms=-1,
                topics=[_oc.OffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in topics.items()],
            )

            def on_resp(resp: Any, err: BaseException | None) -> None:
                if self._ctx.closed:
                    result.set_error(err or Cancelled("the consumer is closed"))
                    return
                now = self._ctx.now
                first: BaseException | None = err
                retry = err is not None
                if err is None:
                    for t in resp.topics:
                        for pr in t.partitions:
                            code = pr.error_code
                            if code in _REBALANCE_ERRORS:
                                # The group moved on: these offsets belong to an old generation.
                                if first is None:
                                    first = CommitFailedError(
                                        "commit failed: the group rebalanced (generation or member id is "
                                        f"no longer valid, error {code}); the partitions may be reassigned")
                                if self._group is not None:
                                    self._group.request_rejoin(now)
                            elif code:
                                if code in (_COORDINATOR_LOAD_IN_PROGRESS, *_COORDINATOR_ERRORS) or \
                                        is_retriable(code):
                                    retry = True
                                if first is None:
                                    first = error_from_code(code, f"OffsetCommit {t.name}-{pr.partition_index}")
                                if code in _COORDINATOR_ERRORS:
                                    self._ctx.mark_coordinator_dead(now)
                else:
                    self._ctx.mark_coordinator_dead(now)
                if first is not None and retry and now < deadline:
                    self._ctx.later(lambda now: self._ctx.with_coordinator(send, now), now)
                    return
                if first is None:
                    self._metrics["commits-total"] += 1
                    for tp, om in current.items():
                        self._last_committed[tp] = om.offset
                    result.set_result(dict(to_commit))
                else:
                    result.set_error(first)
                self._events.append(CommitCompleted(offsets=dict(to_commit), error=first))

            self._client.send(req, now=now, node_id=node, callback=on_resp)

        self._ctx.with_coordinator(send, now)
        if pump:
            self._pump(now)
        return result

    def _auto_commit(self, now: float) -> Pending[dict[TopicPartition, OffsetAndMetadata]] | None:
        if self._group is not None and not self._group.stable:
            return None  # mid-rebalance the group would refuse it (no valid generation)
        changed = {tp: OffsetAndMetadata(st.position, "", -1) for tp, st in self._states.items()
                   if st.position is not None and self._last_committed.get(tp) != st.position}
        if not changed:
            return None
        p = self.commit(changed, now, pump=False)
        cb = self.config.default_offset_commit_callback
        if cb is not None:
            user_cb = cb

            def done(r: Pending[dict[TopicPartition, OffsetAndMetadata]]) -> None:
                user_cb(changed, r.exception())

            p.add_done_callback(done)
        return p

    # --- metadata ---------------------------------------------------------------

    def fetch_metadata(self, topics: Iterable[str] | None, now: float,
                       *, pump: bool = True) -> Pending[Any]:
        """A Metadata request for ``topics`` (all topics when None), sent to any node.

        The Pending's value is the raw ``MetadataResponse``.
        """
        result: Pending[Any] = Pending()
        deadline = now + self.config.request_timeout_ms / 1000
        names = None if topics is None else list(topics)

        def attempt(now: float) -> None:
            req = MetadataRequest(
                topics=None if names is None else [_md.MetadataRequestTopic(name=t) for t in names],
                allow_auto_topic_creation=False,
            )

            def on_resp(resp: Any, err: BaseException | None) -> None:
                if err is not None:
                    if self._ctx.now < deadline and not isinstance(err, Cancelled):
                        self._ctx.later(attempt, self._ctx.now)
                    else:
                        result.set_error(err)
                    return
                result.set_result(resp)

            self._client.send(req, now=now, callback=on_resp)

        attempt(now)
        if pump:
            self._pump(now)
        return result

    def topics_from(self, resp: Any) -> dict[str, set[int]]:
        """``{topic: partitions}`` from a MetadataResponse, honouring ``exclude_internal_topics``."""
        out: dict[str, set[int]] = {}
        for t in resp.topics:
            if t.error_code or not t.name:
                continue
            if self.config.exclude_internal_topics and (t.is_internal or t.name in _INTERNAL_TOPICS):
                continue
            out[t.name] = {p.partition_index for p in t.partitions}
        return out

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """Partitions of ``topic`` from the client's metadata cache (None if unknown)."""
        parts = self._client.cluster.partitions_for(topic)
        return set(parts) if parts is not None else None

    def add_topics(self, topics: Iterable[str], now: float) -> None:
        """Have the client track (and fetch metadata for) these topics."""
        self._client.add_topics(set(topics), now)
        self._pump(now)

    def bootstrap_connected(self) -> bool:
        """True once a bootstrap server answered."""
        return self._client.bootstrap_connected()

    def metrics(self) -> dict[str, float]:
        """Counters: records consumed, bytes and fetches, commits, bytes buffered."""
        m = dict(self._metrics)
        m["buffered-bytes"] = float(self._buffered_bytes)
        m["responses-with-trailing-bytes-total"] = float(self._client.responses_with_trailing_bytes)
        return m

    def api_versions(self) -> dict[str, float]:
        """The version of each API last sent, by name (``{"Fetch": 12.0, ...}``)."""
        return named_versions(self._client.versions_sent())

    # --- close ------------------------------------------------------------------

    def close(self, now: float, autocommit: bool = True) -> Pending[None]:
        """Commit positions if asked (and auto-commit is on), then close the client.

        The Pending completes when the final commit finished (or failed);
        the driver then stops. Further calls raise ``IllegalStateError``.
        """
        done: Pending[None] = Pending()
        if self._ctx.closed:
            done.set_result(None)
            return done
        if self._close_done is not None:
            return self._close_done  # already closing: the same completion
        self._close_done = done
        p = None
        if autocommit and self.config.group_id is not None and self.config.enable_auto_commit:
            p = self._auto_commit(now)
        self._closing = True

        def close_client(_: object = None) -> None:
            # Often called from a response callback inside the client: close it from the
            # next pump, once the client's own input has returned.
            self._close_pending = done

        def leave(_: object = None) -> None:
            group, self._group = self._group, None
            if group is None:
                close_client()
            else:
                group.leave(self._ctx.now).add_done_callback(close_client)

        if p is None:
            leave()
        else:
            p.add_done_callback(leave)
        self._pump(now)
        return done

    @property
    def closed(self) -> bool:
        """True after :meth:`close` finished."""
        return self._ctx.closed

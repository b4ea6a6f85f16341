"""The sans-I/O consumer core: the API the facades drive, ``poll`` and the pump.

Theory of operation
-------------------
:class:`ConsumerCore` wraps a cluster :class:`~kproto.client.Client` and is
itself :class:`~kproto.driving.Driven`: every driving input is forwarded to
the client, then :meth:`ConsumerCore._pump` looks at the state and sends
what is due. The work is split along its seams (as franz-go's consumer):

=========================  ================================================
module                     holds
=========================  ================================================
:mod:`.positions`          per partition state: position, fetch offset,
                           seek epoch, queue of fetched records
:mod:`.offsets`            finding positions (OffsetFetch, resets through
                           ListOffsets) and committing them (OffsetCommit)
:mod:`.fetch_sessions`     one Fetch per leader, KIP-227 sessions, answers
                           into the partition queues
:mod:`.fetcher`            the record decoder (:class:`PartitionRecords`),
                           the hot path ``poll`` reads from
:mod:`.group`              group membership (JoinGroup, SyncGroup,
                           Heartbeat, LeaveGroup); :mod:`.assignors`
:mod:`.context`            what they share: client, clock, error queue,
                           retries, coordinator and metadata waits
=========================  ================================================

Dependencies run one way: ``core`` -> ``fetch_sessions`` -> ``offsets`` ->
``group`` -> ``context``; ``positions`` and ``fetcher`` are leaves. The
parts talk to each other through public methods; the group member sees its
host only through :class:`~kproto.consumer.group.GroupHost`.

One pump pass: run client events (``MetadataUpdated`` re-reads a
subscription and wakes metadata waiters), coordinator waiters and due
retries; then, unless closing, the pattern-subscription metadata refresh,
auto-commit, the group member, position lookups, and fetches.

Blocking-looking calls (``committed``, ``commit``, ``list_offsets``,
``fetch_metadata``) return a :class:`Pending`; the facade drives the core
until it is done.

``subscribe`` with a ``group_id`` hands the assignment to a
:class:`~kproto.consumer.group.GroupMembership`, which the pump drives too;
``assign`` (with or without a group) is a manual assignment whose commits
carry generation -1 and no member id ("simple consumer").
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from kproto.consumer.config import ConsumerConfig
from kproto.consumer.context import ClientLike, ConsumerContext
from kproto.consumer.fetch_sessions import FetchSessions
from kproto.consumer.group import GroupMembership
from kproto.consumer.offsets import Offsets
from kproto.consumer.pending import Pending
from kproto.consumer.positions import EARLIEST, LATEST, Positions
from kproto.consumer.types import (
    AnyConsumerEvent,
    ConsumerGroupMetadata,
    ConsumerRecord,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    RecordDeserializationError,
    TopicPartition,
)
from kproto.driving import ClientDriven
from kproto.errors import Cancelled, IllegalStateError, InvalidGroupIdError, KafkaError, KafkaTimeoutError
from kproto.events import BootstrapFailed, MetadataUpdated
from kproto.protocol.messages import MetadataRequest
from kproto.protocol.messages import metadata as _md
from kproto.protocol.versions import named_versions

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from kproto.consumer.group import RebalanceListener
    from kproto.protocol.messages import MetadataResponse

__all__ = ["ConsumerCore", "Pending"]

_INTERNAL_TOPICS: Final = frozenset({"__consumer_offsets", "__transaction_state"})
_P = TypeVar("_P")


class ConsumerCore(ClientDriven):
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
            from kproto.client import Client

            built: ClientLike = Client(config.client_config(), now=now, rng=rng)
            client = built
        ctx = self._ctx = ConsumerContext(config, client, now)
        ctx.assigned = self.assignment
        ctx.set_assignment = self._set_assignment
        #: The cluster client (tests and the facades' error path read these two).
        self._client: ClientLike = client
        self._errors = ctx.errors
        self._metrics = ctx.metrics
        self._positions = positions = Positions()
        self._offsets = offsets = Offsets(ctx, positions, self._pump)
        self._fetches = FetchSessions(ctx, positions, offsets)
        ctx.commit_consumed = offsets.auto_commit
        self._subscription: set[str] | None = None
        self._pattern: re.Pattern[str] | None = None
        self._user_assigned = False
        self._close_pending: Pending[None] | None = None
        #: close() was called: no more auto-commits or fetches, only the close's own work.
        self._closing = False
        self._close_done: Pending[None] | None = None
        self._auto_commit_at: float | None = None
        if config.group_id is not None and config.enable_auto_commit:
            self._auto_commit_at = now + config.auto_commit_interval_ms / 1000
        self._all_topics_at: float | None = None

    @property
    def _group(self) -> GroupMembership | None:
        """The group membership (None without ``subscribe`` and a ``group_id``); commits use it too."""
        return self._offsets.member

    @_group.setter
    def _group(self, member: GroupMembership | None) -> None:
        self._offsets.member = member

    @property
    def _buffered_bytes(self) -> int:
        """Bytes of fetched records not yet handed out (the fuzz harness checks the bound)."""
        return self._positions.buffered_bytes

    # --- the Driven surface -------------------------------------------------

    def _input(self, now: float) -> bool:
        if self._ctx.closed:
            return False  # inputs racing with close(): the client is gone
        self._ctx.now = now  # response callbacks run inside the client's input: their clock
        return True

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

    def events(self) -> list[AnyConsumerEvent]:
        """Consumer events (:data:`~kproto.consumer.types.AnyConsumerEvent`) since the last call."""
        return self._ctx.take_events()

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
        positions = self._positions
        for tp in list(positions.states):
            if tp not in tps:
                positions.drop(tp)
                self._offsets.last_committed.pop(tp, None)
        for tp in tps:
            if tp not in positions.states:
                positions.add(tp)
        if tps:
            self._client.add_topics({tp.topic for tp in tps}, now)
        self._pump(now)

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
        return set(self._positions.states)

    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None, *, now: float,
                  listener: RebalanceListener | None = None) -> None:
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
            if self._group is None:
                self._group = GroupMembership(self._ctx, self._subscription or set(), listener, now)
            else:
                self._group.listener = listener
                self._group.set_topics(self._subscription or set(), now)
        self._pump(now)

    def subscription(self) -> set[str] | None:
        """The subscribed topic names (matches so far for a pattern), or None."""
        if self._pattern is not None:
            return {tp.topic for tp in self._positions.states}
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
        if tps != set(self._positions.states):
            self._set_assignment(tps, now)

    def _on_all_topics(self, resp: Any, now: float) -> None:
        if self._pattern is None:
            return
        pat = self._pattern
        tps: set[TopicPartition] = set()
        for name, parts in self.topics_from(resp).items():  # honours exclude_internal_topics
            if pat.fullmatch(name):
                tps.update(TopicPartition(name, p) for p in parts)
        if self._group is not None:
            self._group.set_topics({tp.topic for tp in tps}, now)
        elif tps != set(self._positions.states):
            self._set_assignment(tps, now)

    # --- positions ------------------------------------------------------------

    def position(self, tp: TopicPartition) -> int | None:
        """The next offset ``poll`` returns for ``tp``; None until known.

        Raises:
            IllegalStateError: ``tp`` is not assigned.
        """
        return self._positions.state(tp).position

    def seek(self, tp: TopicPartition, offset: int, now: float) -> None:
        """Make ``offset`` the next one ``poll`` returns for ``tp``.

        Raises:
            ValueError: a negative offset.
            IllegalStateError: ``tp`` is not assigned.
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"seek offset must be an int >= 0, got {offset!r}")
        positions = self._positions
        positions.seek(positions.state(tp), offset)
        self._pump(now)

    def seek_to_beginning(self, tps: Iterable[TopicPartition], now: float) -> None:
        """Move each partition (all assigned when empty) to its earliest offset, lazily."""
        self._request_reset(tps, EARLIEST, now)

    def seek_to_end(self, tps: Iterable[TopicPartition], now: float) -> None:
        """Move each partition (all assigned when empty) to its end offset, lazily."""
        self._request_reset(tps, LATEST, now)

    def _request_reset(self, tps: Iterable[TopicPartition], where: int, now: float) -> None:
        positions = self._positions
        targets = list(tps) or list(positions.states)
        states = [positions.state(tp) for tp in targets]
        for st in states:
            positions.request_reset(st, where)
        self._pump(now)

    def pause(self, tps: Iterable[TopicPartition]) -> None:
        """Stop fetching and returning records for these partitions."""
        for tp in tps:
            self._positions.state(tp).paused = True

    def resume(self, tps: Iterable[TopicPartition], now: float) -> None:
        """Undo :meth:`pause`."""
        for tp in tps:
            self._positions.state(tp).paused = False
        self._pump(now)

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return {tp for tp, st in self._positions.states.items() if st.paused}

    def read_replica(self, tp: TopicPartition) -> int | None:
        """The node the next Fetch for ``tp`` goes to (None while its leader is unknown).

        That is the preferred read replica a leader named (KIP-392, with
        ``client_rack``) while it may be used, else the leader.

        Raises:
            IllegalStateError: ``tp`` is not assigned.
        """
        st = self._positions.state(tp)
        tp = TopicPartition(tp[0], tp[1])
        leader: int | None = self._client.cluster.leader_for(tp.topic, tp.partition)
        if leader is not None and st.preferred >= 0 and not self._fetches.replica_state(tp, st, self._ctx.now):
            return st.preferred
        return leader

    def fetches_by_node(self) -> dict[int, tuple[int, int]]:
        """Per node id: ``(Fetch requests sent, record bytes received)`` so far."""
        f = self._fetches
        return {n: (k, f.bytes_by_node.get(n, 0)) for n, k in f.requests_by_node.items()}

    def highwater(self, tp: TopicPartition) -> int | None:
        """The high watermark from the last fetch of ``tp``, or None."""
        hw = self._positions.state(tp).high_watermark
        return hw if hw >= 0 else None

    def partition_offsets(self) -> dict[TopicPartition, tuple[int, int, int]]:
        """``(position, high watermark, log start offset)`` of each assigned partition
        whose position is known (-1 where a fetch has not told yet): lag and lead metrics."""
        return {
            tp: (st.position, st.high_watermark, st.log_start_offset)
            for tp, st in self._positions.states.items()
            if st.position is not None
        }

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        """The LastStableOffset from the last fetch of ``tp`` (KIP-98), or None."""
        lso = self._positions.state(tp).last_stable_offset
        return lso if lso >= 0 else None

    def last_fetch_time(self, tp: TopicPartition) -> float | None:
        """About when (core time: that of the input before its callback ran) the last fetch
        response for ``tp`` came, or None."""
        at = self._positions.state(tp).fetched_at
        return at if at >= 0 else None

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
        positions = self._positions
        states = positions.states
        ready = positions.ready
        kd = self.config.key_deserializer
        vd = self.config.value_deserializer
        rotations = len(ready)
        while n > 0 and ready and rotations >= 0:
            tp = ready[0]
            st = states.get(tp)
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
                positions.refetch(st)
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
                positions.buffered_bytes -= pr.nbytes
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

    def take_awaitables(self) -> list[Awaitable[object]]:
        """Awaitables returned by listener callbacks (``async def`` listeners); drains them.

        The sync facade closes them unawaited; async facades await them in order.
        """
        return self._ctx.take_awaitables()

    def fail(self, exc: BaseException) -> None:
        """Raise ``exc`` from the next ``poll`` (a driver's own failure, such as its heartbeat thread's)."""
        self._ctx.fail(exc)

    def take_error(self) -> BaseException | None:
        """Pop the oldest error waiting to be raised from ``poll`` (None if none)."""
        return self._errors.pop(0) if self._errors else None

    def has_buffered(self) -> bool:
        """True when ``poll`` would return records (or raise) now."""
        return bool(self._errors) or self._positions.has_ready()

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
            ctx.events.append(ev)  # forwarded: the driver logs them and hands them to hooks
            if isinstance(ev, MetadataUpdated):
                self._update_subscribed_assignment(now)
                ctx.metadata_updated(now)
                if self._group is not None:
                    self._group.metadata_updated(now)
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
            self._offsets.auto_commit(now)
        if self._group is not None:
            self._group.pump(now)
        self._offsets.send_requests(now)
        self._fetches.send(now)

    _after_input = _pump

    # --- offsets ---------------------------------------------------------------

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
        p = self._offsets.list_offsets({TopicPartition(tp[0], tp[1]): ts for tp, ts in timestamps.items()}, now)
        self._pump(now)
        return p

    def committed(self, tps: Iterable[TopicPartition], now: float,
                  *, pump: bool = True) -> Pending[dict[TopicPartition, OffsetAndMetadata | None]]:
        """The group's committed offsets (OffsetFetch to the coordinator).

        Raises:
            KafkaConfigurationError: no ``group_id``.
        """
        return self._pumped(self._offsets.committed(tps, now), now, pump)

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None,
               now: float, *, pump: bool = True) -> Pending[dict[TopicPartition, OffsetAndMetadata]]:
        """Commit offsets (the consumed positions when None) to the group.

        As a consumer without group membership ("simple consumer"), the
        commit carries generation -1 and an empty member id, which Kafka
        accepts for a group with no active members.

        Raises:
            KafkaConfigurationError: no ``group_id``.
        """
        return self._pumped(self._offsets.commit(offsets, now), now, pump)

    # --- metadata ---------------------------------------------------------------

    def fetch_metadata(self, topics: Iterable[str] | None, now: float,
                       *, pump: bool = True) -> Pending[MetadataResponse]:
        """A Metadata request for ``topics`` (all topics when None), sent to any node.

        The Pending's value is the raw ``MetadataResponse``.
        """
        result: Pending[MetadataResponse] = Pending()
        deadline = now + self.config.request_timeout_ms / 1000
        names = None if topics is None else list(topics)

        def attempt(now: float) -> None:
            req = MetadataRequest(
                topics=None if names is None else [_md.MetadataRequestTopic(name=t) for t in names],
                allow_auto_topic_creation=False,
            )

            def on_resp(resp: Any, err: BaseException | None) -> None:
                if err is not None:
                    if isinstance(err, Cancelled):
                        result.set_error(err)
                    elif self._ctx.now < deadline:
                        self._ctx.later(attempt, self._ctx.now)
                    else:
                        # Out of retries: a timeout naming the last failure, as list_offsets and
                        # Java's partitionsFor (TimeoutException) do, whichever deadline came first.
                        timeout = KafkaTimeoutError(f"no metadata within request_timeout_ms: {err}")
                        timeout.__cause__ = err
                        result.set_error(timeout)
                    return
                result.set_result(resp)

            self._client.send(req, now=now, callback=on_resp)

        attempt(now)
        return self._pumped(result, now, pump)

    def _pumped(self, result: _P, now: float, pump: bool) -> _P:
        """``result`` (a call's Pending), after a pump unless the caller pumps itself (``pump=False``)."""
        if pump:
            self._pump(now)
        return result

    def topics_from(self, resp: MetadataResponse) -> dict[str, set[int]]:
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

    @property
    def client(self) -> ClientLike:
        """The cluster client this core fetches through (its metrics, errors and events)."""
        return self._client

    def metrics(self) -> dict[str, float]:
        """Counters: records consumed, bytes and fetches, commits, bytes buffered."""
        m = dict(self._metrics)
        m["buffered-bytes"] = float(self._positions.buffered_bytes)
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
            p = self._offsets.auto_commit(now)
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

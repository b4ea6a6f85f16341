"""Offsets: finding positions (committed offsets, resets through ListOffsets) and committing them.

A partition without a position first gets its committed offset (OffsetFetch
to the group coordinator, when ``group_id`` is set), else a reset through
ListOffsets to its leader (``auto_offset_reset``: earliest = -2, latest =
-1; any other policy raises :class:`~kproto.errors.NoOffsetForPartitionError`
from ``poll``). Each answer is matched to the partition state's epoch
(:mod:`~kproto.consumer.positions`), so one made stale by a seek is dropped.

Commits (OffsetCommit) carry the group member's generation and member id
(:meth:`~kproto.consumer.group.GroupMembership.commit_identity`), or -1 and
no member id for a manual assignment ("simple consumer").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from kproto.consumer.context import ConsumerContext
from kproto.consumer.group import GroupMembership
from kproto.consumer.pending import Pending
from kproto.consumer.positions import EARLIEST, LATEST, PartitionState, Positions
from kproto.consumer.types import (
    CommitCompleted,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    TopicPartition,
)
from kproto.errors import (
    Cancelled,
    CommitFailedError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    IllegalGenerationError,
    KafkaConfigurationError,
    KafkaProtocolError,
    KafkaTimeoutError,
    NoOffsetForPartitionError,
    NotCoordinatorError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    error_from_code,
    is_retriable,
    needs_metadata_refresh,
)
from kproto.protocol.messages import ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest
from kproto.protocol.messages import list_offsets as _lo
from kproto.protocol.messages import offset_commit as _oc
from kproto.protocol.messages import offset_fetch as _of

__all__ = ["Offsets"]

# Wire error codes handled by name.
_COORDINATOR_LOAD_IN_PROGRESS: Final = CoordinatorLoadInProgressError.errno
_COORDINATOR_ERRORS: Final = (CoordinatorNotAvailableError.errno, NotCoordinatorError.errno)
#: A commit from an old generation.
_REBALANCE_ERRORS: Final = (IllegalGenerationError.errno, UnknownMemberIdError.errno, RebalanceInProgressError.errno)


class Offsets:
    """Resets, ListOffsets, OffsetFetch and OffsetCommit for one consumer.

    Args:
        ctx: the consumer's shared services.
        positions: the partition states whose positions this finds.
        pump: the core's pump, run when a lookup set positions (so fetching starts at once).
    """

    def __init__(self, ctx: ConsumerContext, positions: Positions, pump: Callable[[float], None]) -> None:
        self._ctx = ctx
        self._config = ctx.config
        self._positions = positions
        self._pump = pump
        #: The group membership whose identity commits carry (None: manual assignment).
        self.member: GroupMembership | None = None
        #: The offset last committed per partition (auto-commit skips unchanged ones).
        self.last_committed: dict[TopicPartition, int] = {}
        self._commit_seq = 0
        self._latest_commit_for: dict[TopicPartition, int] = {}

    def out_of_range(self, tp: TopicPartition, st: PartitionState) -> None:
        """OFFSET_OUT_OF_RANGE from a Fetch: reset per ``auto_offset_reset`` (or park the partition)."""
        policy = self._config.reset_policy
        if policy == "none":
            self.park_no_offset(tp, st, f"offset {st.position} out of range")
            return
        st.forget_position()
        st.reset = EARLIEST if policy == "earliest" else LATEST

    def park_no_offset(self, tp: TopicPartition, st: PartitionState, why: str) -> None:
        """No position and no reset allowed: stop the partition until the user seeks."""
        st.forget_position()
        st.reset = None
        st.committed_checked = True
        st.offset_request = True
        self._ctx.fail(NoOffsetForPartitionError(
            f"{why} for {tp.topic}-{tp.partition} and auto_offset_reset="
            f"{self._config.auto_offset_reset!r} allows no reset; seek() to choose a position"))

    def send_requests(self, now: float) -> None:
        """Look up positions for the partitions without one: committed offsets first, then resets."""
        need_committed: list[TopicPartition] = []
        need_reset: dict[int, list[TopicPartition]] = {}
        policy = self._config.reset_policy
        for tp, st in self._positions.states.items():
            if st.position is not None or st.offset_request or st.retry_at > now:
                continue
            if st.reset is None and not st.committed_checked and self._config.group_id is not None:
                need_committed.append(tp)
                continue
            if st.reset is None:
                if policy == "none":
                    self.park_no_offset(tp, st, "no committed offset")
                    continue
                st.reset = EARLIEST if policy == "earliest" else LATEST
            need_reset.setdefault(st.reset, []).append(tp)
        if need_committed:
            for tp in need_committed:
                self._positions.states[tp].offset_request = True
            p = self.committed(need_committed, now)
            epochs = {tp: self._positions.states[tp].epoch for tp in need_committed}
            p.add_done_callback(functools.partial(self._on_lookup, epochs=epochs, committed=True))
        for where, tps in need_reset.items():
            for tp in tps:
                self._positions.states[tp].offset_request = True
            epochs = {tp: self._positions.states[tp].epoch for tp in tps}
            lp = self.list_offsets({tp: where for tp in tps}, now)
            lp.add_done_callback(functools.partial(self._on_lookup, epochs=epochs, committed=False))

    def _on_lookup(self, p: Pending[Any], epochs: dict[TopicPartition, int], *, committed: bool) -> None:
        """Positions from an OffsetFetch (``committed``) or a ListOffsets reset, if still current."""
        now = self._ctx.now
        exc = p.exception()
        self._ctx.surface(exc)
        found: Mapping[TopicPartition, OffsetAndMetadata | OffsetAndTimestamp | None] = (
            {} if exc is not None else p.result())
        for tp, epoch in epochs.items():
            st = self._positions.states.get(tp)
            if st is None or st.epoch != epoch:
                continue
            st.offset_request = False
            at = found.get(tp)
            if committed and exc is None:
                st.committed_checked = True  # none committed: a reset follows
                if at is not None and at.offset >= 0:
                    st.set_position(at.offset)
            elif at is None:
                st.retry_at = self._ctx.backoff(now)
            else:
                st.set_position(at.offset)
        self._pump(now)

    def list_offsets(self, timestamps: dict[TopicPartition, int],
                     now: float) -> Pending[dict[TopicPartition, OffsetAndTimestamp | None]]:
        """ListOffsets to each partition's leader; retried (metadata, retriable errors) until the timeout."""
        result: Pending[dict[TopicPartition, OffsetAndTimestamp | None]] = Pending()
        answers: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        remaining = dict(timestamps)
        deadline = now + self._config.request_timeout_ms / 1000
        isolation = 1 if self._config.read_committed else 0

        def attempt(now: float) -> None:
            if result.done:
                return
            if not remaining:
                result.set_result(answers)
                return
            if now > deadline:
                # kafka-python (and Java's offsetsForTimes) raise a timeout error here.
                result.set_error(KafkaTimeoutError(
                    f"timed out listing offsets for {sorted(remaining)} (no leader or retriable errors)"))
                return
            cluster = self._ctx.client.cluster
            by_node: dict[int, dict[TopicPartition, int]] = {}
            waiting = False
            for tp, ts in remaining.items():
                leader = cluster.leader_for(tp.topic, tp.partition)
                if leader is None or leader < 0:
                    waiting = True
                    continue
                by_node.setdefault(leader, {})[tp] = ts
            if waiting:
                self._ctx.client.add_topics({tp.topic for tp in remaining}, now)
                self._ctx.client.request_metadata_update(now)
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
                                        self._ctx.client.request_metadata_update(now)
                                else:
                                    result.set_error(error_from_code(code, f"ListOffsets {tp}"))
                                    return
                    outstanding[0] -= 1
                    if outstanding[0] == 0:
                        if retry and remaining:
                            self._ctx.later(attempt, now)
                        else:
                            attempt(now)

                self._ctx.client.send(req, now=now, node_id=node, callback=on_resp)

        attempt(now)
        return result

    def need_group(self, what: str) -> str:
        """The group id ``what`` needs, or raise KafkaConfigurationError."""
        if self._config.group_id is None:
            raise KafkaConfigurationError(
                f"{what} needs a group_id: offsets are stored per consumer group; "
                "pass group_id=... to the consumer")
        return self._config.group_id

    def committed(self, tps: Iterable[TopicPartition],
                  now: float) -> Pending[dict[TopicPartition, OffsetAndMetadata | None]]:
        """The group's committed offsets (OffsetFetch to the coordinator).

        Raises:
            KafkaConfigurationError: no ``group_id``.
        """
        group = self.need_group("committed()")
        wanted = [TopicPartition(tp[0], tp[1]) for tp in tps]
        result: Pending[dict[TopicPartition, OffsetAndMetadata | None]] = Pending()
        deadline = now + self._config.request_timeout_ms / 1000

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

            self._ctx.client.send(req, now=now, node_id=node, callback=on_resp)

        self._ctx.with_coordinator(send, now)
        return result

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None,
               now: float) -> Pending[dict[TopicPartition, OffsetAndMetadata]]:
        """Commit offsets (the consumed positions when None) to the group.

        As a consumer without group membership ("simple consumer"), the
        commit carries generation -1 and an empty member id, which Kafka
        accepts for a group with no active members.

        Raises:
            KafkaConfigurationError: no ``group_id``.
        """
        group = self.need_group("commit()")
        if offsets is None:
            to_commit = {tp: OffsetAndMetadata(st.position, "", -1)
                         for tp, st in self._positions.states.items() if st.position is not None}
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
        deadline = now + self._config.request_timeout_ms / 1000
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
            generation, member, instance = (self.member.commit_identity() if self.member is not None
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
                                if self.member is not None:
                                    self.member.request_rejoin(now)
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
                    self._ctx.metrics["commits-total"] += 1
                    for tp, om in current.items():
                        self.last_committed[tp] = om.offset
                    result.set_result(dict(to_commit))
                else:
                    result.set_error(first)
                self._ctx.events.append(CommitCompleted(offsets=dict(to_commit), error=first))

            self._ctx.client.send(req, now=now, node_id=node, callback=on_resp)

        self._ctx.with_coordinator(send, now)
        return result

    def auto_commit(self, now: float) -> Pending[dict[TopicPartition, OffsetAndMetadata]] | None:
        """Commit the positions that changed since their last commit (None: nothing to commit)."""
        if self.member is not None and not self.member.stable:
            return None  # mid-rebalance the group would refuse it (no valid generation)
        changed = {tp: OffsetAndMetadata(st.position, "", -1) for tp, st in self._positions.states.items()
                   if st.position is not None and self.last_committed.get(tp) != st.position}
        if not changed:
            return None
        p = self.commit(changed, now)
        cb = self._config.default_offset_commit_callback
        if cb is not None:
            user_cb = cb

            def done(r: Pending[dict[TopicPartition, OffsetAndMetadata]]) -> None:
                user_cb(changed, r.exception())

            p.add_done_callback(done)
        return p

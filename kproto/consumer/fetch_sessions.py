"""Fetch requests: one per leader, in its incremental fetch session (KIP-227).

Fetching: one Fetch in flight per leader, holding every assigned, not
paused partition with a position whose queue holds fewer than
:data:`MAX_QUEUED` responses, while the bytes buffered stay under
``fetch_max_bytes``. Each leader gets an incremental fetch session
(KIP-227) when it grants one: after a full fetch that opens it, a request
names only the partitions whose fetch offset changed and the ones that left
(``forgotten_topics_data``); FETCH_SESSION_ID_NOT_FOUND or
INVALID_FETCH_SESSION_EPOCH (or a lost connection) falls back to a full
fetch. Fetch is capped at v12 so topics travel by name.

Fetching from the closest replica (KIP-392): with ``client_rack`` set, every
Fetch carries it as ``rack_id`` (v11+). A leader whose replica selector finds
a better replica for that rack answers a partition with no records and its
``preferred_read_replica``; that partition is then fetched from the replica
(in that node's own fetch session) until the lease ends after
``metadata_max_age_ms``, as the Java client's ``SubscriptionState``. The
leader is used again, as in the Java ``AbstractFetch`` / ``FetchCollector``,
when the replica is missing from the metadata or offline (metadata refresh),
has left the ISR, a Fetch to it fails (lost connection, timeout), or it
answers the partition with an error: OFFSET_OUT_OF_RANGE from a replica is
no reset, only a fetch from the leader.

Answers become :class:`~kproto.consumer.fetcher.PartitionRecords` (the
decoder) queued on the partition's state (:mod:`~kproto.consumer.positions`).
Partition errors: OFFSET_OUT_OF_RANGE resets the position per the policy
(:meth:`~kproto.consumer.offsets.Offsets.out_of_range`); leadership and
unknown-topic errors refresh metadata and retry after ``retry_backoff_ms``;
anything else is raised from the next ``poll``.
"""

from __future__ import annotations

from typing import Any, Final

from kproto.consumer.context import ConsumerContext
from kproto.consumer.fetcher import PartitionRecords
from kproto.consumer.offsets import Offsets
from kproto.consumer.positions import PartitionState, Positions
from kproto.consumer.types import TopicPartition
from kproto.errors import (
    FetchSessionIdNotFoundError,
    InvalidFetchSessionEpochError,
    KafkaError,
    KafkaProtocolError,
    OffsetOutOfRangeError,
    error_from_code,
    is_retriable,
    needs_metadata_refresh,
)
from kproto.protocol.messages import FetchRequest
from kproto.protocol.messages import fetch as _fetch

__all__ = ["MAX_QUEUED", "FetchSession", "FetchSessions"]

#: Completed fetches buffered per partition before it is fetched again:
#: two means one response being read while the next waits (double buffering).
MAX_QUEUED: Final = 2
# Wire error codes handled by name (bound once: read on every Fetch response).
_OFFSET_OUT_OF_RANGE: Final = OffsetOutOfRangeError.errno
_SESSION_ERRORS: Final = (FetchSessionIdNotFoundError.errno, InvalidFetchSessionEpochError.errno)


class FetchSession:
    """A broker's incremental fetch session (KIP-227): its id, next epoch, and partitions."""

    __slots__ = ("id", "epoch", "parts")

    def __init__(self, session_id: int, epoch: int, parts: dict[TopicPartition, int]) -> None:
        self.id = session_id
        self.epoch = epoch
        #: What the broker holds for each partition of the session: the last fetch offset sent.
        self.parts = parts


class FetchSessions:
    """Sends the Fetch requests and files their answers into the partition queues."""

    def __init__(self, ctx: ConsumerContext, positions: Positions, offsets: Offsets) -> None:
        self._ctx = ctx
        self._config = ctx.config
        self._positions = positions
        self._offsets = offsets
        #: Leaders with a Fetch in flight (one at a time each).
        self.inflight_nodes: set[int] = set()
        #: The open session of each node that granted one.
        self.sessions: dict[int, FetchSession] = {}
        #: Fetch requests sent and record bytes received, per node (leaders and
        #: preferred read replicas alike).
        self.requests_by_node: dict[int, int] = {}
        self.bytes_by_node: dict[int, int] = {}

    def replica_state(self, tp: TopicPartition, st: PartitionState, now: float) -> int:
        """Whether ``st.preferred`` may be fetched from (KIP-392); no side effect.

        Returns:
            0: yes; 1: no, its lease ended or metadata says it left the ISR;
            2: no, metadata does not list it as a live replica (refresh it).
        """
        if now >= st.preferred_until:
            return 1
        cluster = self._ctx.client.cluster
        info = cluster.partition_info(tp.topic, tp.partition)
        replica = st.preferred
        if (info is None or cluster.broker(replica) is None or replica not in info.replicas
                or replica in info.offline_replicas):
            return 2
        # Java checks only that the node is online; a replica out of the ISR lags the
        # leader, so reading it would only delay records the leader has: use the leader.
        return 1 if replica not in info.isr else 0

    def _select_replica(self, tp: TopicPartition, st: PartitionState, leader: int, now: float) -> int | None:
        """The node to fetch ``tp`` from: its preferred read replica if usable, else the leader
        (None: neither before ``retry_backoff_ms``)."""
        why = self.replica_state(tp, st, now)
        if not why:
            return st.preferred
        st.preferred = -1
        if why == 2:
            # Java AbstractFetch.selectReadReplica: perhaps stale metadata, so refresh it. Unlike
            # Java, wait the retry backoff first: a leader that keeps naming a node the metadata
            # lacks would otherwise get a Fetch, answered at once, in a tight loop.
            self._ctx.client.request_metadata_update(now)
            st.retry_at = self._ctx.backoff(now)
            return None
        return leader

    def send(self, now: float) -> None:
        if self._positions.buffered_bytes >= self._config.fetch_max_bytes:
            return
        cluster = self._ctx.client.cluster
        by_node: dict[int, list[tuple[TopicPartition, PartitionState]]] = {}
        # Nodes with a partition that waits only for the user to drain its buffer.
        blocked: set[int] = set()
        for tp, st in self._positions.states.items():
            if st.fetch_at is None or st.inflight or st.paused or st.retry_at > now:
                continue
            node = cluster.leader_for(tp.topic, tp.partition)
            if node is None or node < 0:
                continue
            if st.preferred >= 0:
                node = self._select_replica(tp, st, node, now)
            if node is None or node in self.inflight_nodes:
                continue
            if len(st.queue) >= MAX_QUEUED:
                blocked.add(node)
                continue
            by_node.setdefault(node, []).append((tp, st))
        cfg = self._config
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
            session = self.sessions.get(node) if cfg.enable_incremental_fetch_sessions else None
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
                rack_id=cfg.client_rack or "",
            )
            self.inflight_nodes.add(node)
            self._ctx.metrics["fetch-requests-total"] += 1
            self.requests_by_node[node] = self.requests_by_node.get(node, 0) + 1

            def on_fetch(resp: Any, err: BaseException | None, node: int = node,
                         sent: dict[TopicPartition, tuple[int, int]] = sent,
                         wanted: dict[TopicPartition, int] = wanted, full: bool = session is None) -> None:
                self._update_session(node, resp, err, wanted, full)
                self._on_fetch(node, sent, resp, err)

            self._ctx.client.send(req, now=now, node_id=node, callback=on_fetch)

    def _update_session(self, node: int, resp: Any, err: BaseException | None,
                        wanted: dict[TopicPartition, int], full: bool) -> None:
        """KIP-227 bookkeeping after a Fetch to ``node``."""
        if not self._config.enable_incremental_fetch_sessions:
            return
        if err is not None or resp.error_code in _SESSION_ERRORS:
            self.sessions.pop(node, None)  # the next fetch is a full one that opens a new session
            return
        if resp.error_code:
            return
        session = self.sessions.get(node)
        if full or session is None:
            if resp.session_id:
                self.sessions[node] = FetchSession(resp.session_id, 1, wanted)
            else:
                self.sessions.pop(node, None)
        else:
            # Epochs run 1..2**31-1 and wrap to 1 (0 opens a session, -1 closes one).
            session.epoch = session.epoch + 1 if session.epoch < 2**31 - 1 else 1
            session.parts = wanted

    def _on_fetch(self, node: int, sent: dict[TopicPartition, tuple[int, int]], resp: Any,
                  err: BaseException | None) -> None:
        if self._ctx.closed:
            return
        ctx = self._ctx
        now = ctx.now
        positions = self._positions
        self.inflight_nodes.discard(node)
        current: dict[TopicPartition, PartitionState] = {}
        for tp, (epoch, at) in sent.items():
            st = positions.states.get(tp)
            if st is not None and st.epoch == epoch and st.fetch_at == at:
                st.inflight = False
                current[tp] = st
        if err is not None:
            for st in current.values():
                st.retry_at = self._ctx.backoff(now)
            for tp in sent:
                # Java AbstractFetch.handleFetchFailure: the replica failed, go back to the leader.
                st_any = positions.states.get(tp)
                if st_any is not None and st_any.preferred == node:
                    st_any.preferred = -1
            if isinstance(err, KafkaProtocolError):
                self._ctx.report(err)  # bad broker bytes: retried, but never silently
            if isinstance(err, KafkaError) and err.refresh_metadata:
                self._ctx.client.request_metadata_update(now)
            return
        if resp.error_code:
            exc = error_from_code(resp.error_code)
            for st in current.values():
                st.retry_at = self._ctx.backoff(now)
            if not is_retriable(resp.error_code):
                self._ctx.fail(exc)
            return
        cfg = self._config
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
                if p.preferred_read_replica >= 0:
                    # KIP-392: read from this replica until the lease ends (Java: metadata.max.age.ms).
                    st.preferred = p.preferred_read_replica
                    st.preferred_until = now + cfg.metadata_max_age_ms / 1000
                st.high_watermark = p.high_watermark
                st.log_start_offset = p.log_start_offset
                st.last_stable_offset = p.last_stable_offset
                st.fetched_at = now
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
                    st.retry_at = self._ctx.backoff(now)
                    continue
                if pr.nbytes == 0:
                    continue  # only a partial batch: fetch again (broker caps by bytes)
                self._ctx.metrics["bytes-fetched-total"] += pr.nbytes
                self.bytes_by_node[node] = self.bytes_by_node.get(node, 0) + pr.nbytes
                st.fetch_at = pr.next_fetch_offset
                positions.append(tp, st, pr)
            elif code == _OFFSET_OUT_OF_RANGE:
                if st.preferred >= 0:
                    # Java FetchCollector: a replica's range is not the leader's (it may lag):
                    # no reset, fetch from the leader next.
                    st.preferred = -1
                elif not st.queue and st.position == sent[tp][1]:
                    self._offsets.out_of_range(tp, st)
            elif needs_metadata_refresh(code) or is_retriable(code):
                # NOT_LEADER_OR_FOLLOWER, REPLICA_NOT_AVAILABLE...: Java's requestMetadataUpdate
                # also drops the preferred read replica.
                st.preferred = -1
                refresh = refresh or needs_metadata_refresh(code)
                st.retry_at = self._ctx.backoff(now)
            else:
                st.preferred = -1
                self._ctx.fail(error_from_code(code, f"fetch {tp.topic}-{tp.partition}"))
                st.retry_at = self._ctx.backoff(now)
        if refresh:
            self._ctx.client.request_metadata_update(now)

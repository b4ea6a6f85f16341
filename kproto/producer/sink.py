"""The sink: batches into Produce requests per node, their answers, retries and outcomes.

``drain()`` runs when the driver pulls (``commands()``/``data_to_send()``/
``handle_timer()``) and something may have become sendable: for every
partition whose oldest batch is ready, the batch is sealed (header,
compression, CRC) and, grouped by leader, put into one Produce request per
node (one batch per partition per request, at most ``max_request_size``
bytes) as long as the node is ready and has fewer than
``max_in_flight_requests_per_connection`` requests in flight. So under load,
while requests are in flight, records pile up into fuller batches; when
idle, every record leaves at once (``linger_ms=0``).

Each answer delivers, retries, splits or fails its batches (the batch
lifecycle and the idempotent error rules are in :mod:`kproto.producer.core`);
the outcomes become :class:`RecordsDelivered` and :class:`DeliveryFailed`
events.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Final

from kproto.errors import (
    DuplicateSequenceNumberError,
    IllegalArgumentError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasAfterAppendError,
    OutOfOrderSequenceNumberError,
    RequestTimedOutError,
    UnknownProducerIdError,
    UnknownServerError,
    error_from_code,
)
from kproto.events import ClientEvent
from kproto.producer.accumulator import (
    CLOSED,
    DONE,
    IN_FLIGHT,
    OPEN,
    PartitionState,
    ProducerBatch,
    RecordAccumulator,
)
from kproto.producer.config import ProducerConfig
from kproto.producer.events import BatchRetried, DeliveryFailed, ProducerEvent, RecordsDelivered
from kproto.producer.idempotence import SEQ_WRAP, IdempotenceState, seq_before
from kproto.producer.transactions import TransactionManager
from kproto.protocol.compression import codec_id, compress
from kproto.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    ProduceResponse,
    TopicProduceData,
)
from kproto.protocol.records import encode_batch, read_batches, restamp_batch

if TYPE_CHECKING:
    from kproto.client import Client

__all__ = ["ProducerMetrics", "Sink"]

#: Bytes a partition adds to a Produce request besides its batch (index,
#: records length; generous for the flexible versions' varints).
_PARTITION_OVERHEAD: Final = 16
#: Request header, acks, timeout, topic array, topic name, and slack.
_REQUEST_OVERHEAD: Final = 128
#: The offset after a record is an int64 too (issue 15): records end at 2**63-2.
_MAX_OFFSET: Final = 2**63 - 1
#: Record batch attribute bit 4: the batch belongs to a transaction (KIP-98).
_TRANSACTIONAL_ATTR: Final = 0x10

# Broker error codes the sink acts on (module constants: read on every answer).
_ERR_MESSAGE_TOO_LARGE: Final = MessageSizeTooLargeError.errno
_ERR_OUT_OF_ORDER_SEQUENCE: Final = OutOfOrderSequenceNumberError.errno
_ERR_DUPLICATE_SEQUENCE: Final = DuplicateSequenceNumberError.errno
_ERR_INVALID_PRODUCER_EPOCH: Final = InvalidProducerEpochError.errno
_STATE_LOST_CODES: Final = frozenset((UnknownProducerIdError.errno, InvalidProducerEpochError.errno))
#: Answers that do not rule out that the batch was written: REQUEST_TIMED_OUT
#: (the leader wrote it, replication timed out), NOT_ENOUGH_REPLICAS_AFTER_APPEND,
#: and -1 (no answer for the partition). A lost connection is the same.
_MAYBE_WRITTEN_CODES: Final = frozenset(
    (RequestTimedOutError.errno, NotEnoughReplicasAfterAppendError.errno, -1)
)


class ProducerMetrics:
    """Counters behind :meth:`ProducerCore.metrics`."""

    __slots__ = (
        "start", "records_sent", "bytes_sent", "batches", "batch_bytes", "batch_bytes_max", "requests",
        "latency_sum", "latency_max", "latency_count", "record_errors", "record_retries",
        "window_start", "window_base", "uncompressed_bytes", "compressed_bytes",
    )  # fmt: skip

    def __init__(self, now: float) -> None:
        self.start = now
        self.records_sent = 0
        self.bytes_sent = 0
        self.batches = 0
        self.batch_bytes = 0
        self.batch_bytes_max = 0
        self.requests = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.latency_count = 0
        self.record_errors = 0
        self.record_retries = 0
        self.window_start = now
        self.window_base = (0, 0, 0, 0)
        #: Record bytes before and after compression (compressed batches only).
        self.uncompressed_bytes = 0
        self.compressed_bytes = 0


class Sink:
    """Drains the accumulator into Produce requests and settles their answers (see the module docstring).

    It is also the :class:`kproto.producer.transactions.TransactionHost` of
    the transaction manager, if any (:attr:`txn`).

    Args:
        config: validated options.
        client: the :class:`kproto.client.Client`.
        accumulator: the batches.
        ids: the producer id and sequences.
        now: the driver's clock now.
    """

    def __init__(
        self,
        config: ProducerConfig,
        client: Client,
        accumulator: RecordAccumulator,
        ids: IdempotenceState,
        now: float,
    ) -> None:
        self._client = client
        self._acc = accumulator
        self._ids = ids
        self._config = config
        self._codec = codec_id(config.compression_type)
        self._txn_attr = _TRANSACTIONAL_ATTR if config.transactional_id is not None else 0
        self._retry_backoff = config.retry_backoff_ms / 1000
        self._retries = config.retries
        #: The transaction manager (set by the core with a transactional_id).
        self.txn: TransactionManager | None = None
        self.metrics = ProducerMetrics(now)
        self._events: list[ProducerEvent] = []
        #: When the last drain ran.
        self.last_drain = -1e300
        #: Retry times of re-queued batches (a heap).
        self._retry_times: list[float] = []
        self.inflight_requests = 0
        self._inflight_batches = 0
        #: Produce requests in flight per node (our own count: the client may queue).
        self._node_inflight: dict[int, int] = {}
        accumulator.report_failure = self.report_failure

    # --- the transaction manager's host (TransactionHost) ---------------------------

    @property
    def now(self) -> float:
        """The latest time a call or a driving input brought."""
        return self._acc.now

    def wake(self) -> None:
        """Something may have become sendable: the next pull drains."""
        self._acc.dirty = True

    def flush(self, now: float) -> None:
        """Make every buffered batch sendable now."""
        self._acc.flush(now)

    def pending_count(self) -> int:
        """Records accepted and not yet delivered or failed."""
        return self._acc.pending_count()

    def fail_unsent(self, error: KafkaError) -> None:
        """Fail every batch and waiting record not on the wire (a transaction aborts)."""
        self._acc.fail_waiting(error)
        for b in self._acc.unsent():
            self._acc.remove(b)
            if b.base_seq >= 0:
                # A retried batch: its sequence was used and now never will
                # be; the abort ends with an epoch bump that restarts them.
                self._ids.want_bump()
            self.fail(b, error, unknown_outcome=False)

    # --- outcomes --------------------------------------------------------------------

    def take_events(self) -> list[ProducerEvent]:
        """Deliveries and failures since the last call."""
        ev = self._events
        self._events = []
        return ev

    def node_inflight(self) -> dict[int, int]:
        """Produce requests in flight per node."""
        return dict(self._node_inflight)

    def forward(self, events: list[ClientEvent]) -> None:
        """Queue the client's events behind the deliveries so far (the core forwards them)."""
        self._events.extend(events)

    def report_failure(
        self, topic: str, partition: int, error: KafkaError, tokens: list[object], abortable: bool
    ) -> None:
        """Records that will never be sent; ``abortable``: the transaction cannot commit now."""
        self.metrics.record_errors += len(tokens)
        self._events.append(DeliveryFailed(topic=topic, partition=partition, error=error, tokens=tokens))
        if abortable and self.txn is not None:  # transactions: records failed make it abortable
            self.txn.on_failed(error)

    def fail(self, b: ProducerBatch, error: KafkaError, *, unknown_outcome: bool) -> None:
        """``b`` failed with ``error``; ``unknown_outcome``: a sequenced attempt may be on the broker."""
        if unknown_outcome:
            self._ids.want_bump()
        self._acc.release(b)
        tokens = b.tokens
        b.tokens = []
        b.pieces = []
        b.payload = None
        self.report_failure(b.part.topic, b.part.partition, error, tokens, True)

    def fail_all(self, error: KafkaError) -> None:
        """Fail every record not yet delivered (abort)."""
        self._acc.fail_waiting(error)
        for b in self._acc.not_done():
            self.fail(b, error, unknown_outcome=False)
        self._acc.clear()

    def expire(self, now: float) -> None:
        """Fail batches past ``delivery_timeout_ms`` and records past ``max_block_ms`` (KIP-91)."""
        for b in self._acc.expired(now):
            ps = b.part
            err = KafkaTimeoutError(
                f"expiring {b.count} record(s) for {ps.topic}-{ps.partition}: "
                f"{(now - b.created) * 1000:.0f} ms has passed since batch creation"
            )
            # A sequenced batch may or may not be on the broker: unresolved.
            if b.base_seq >= 0:
                ps.lost = True
            self.fail(b, err, unknown_outcome=b.base_seq >= 0)
        self._acc.expire_waiting(now)

    def get_timer(self, t: float | None) -> float | None:
        """The earlier of ``t`` and the sink's next deadline: a retry, a producer id, a coordinator request."""
        retry = self._retry_times
        last = self.last_drain
        while retry and retry[0] <= last:
            heapq.heappop(retry)
        if retry and (t is None or retry[0] < t):
            t = retry[0]
        due = self._ids.timer(last)
        if due is not None and (t is None or due < t):
            t = due
        if self.txn is not None:  # transactions: a backed-off coordinator request
            due = self.txn.get_timer()
            if due is not None and (t is None or due < t):
                t = due
        return t

    # --- draining: batches into Produce requests --------------------------------

    def _ready_head(self, ps: PartitionState, now: float) -> ProducerBatch | None:
        """The partition's next batch to send if it may be sent now."""
        b = ps.queue[0]
        if b.state == OPEN:
            if b.linger_at > now and not self._acc.closed:
                return None
        elif b.retry_at > now:
            return None
        if self._ids.holds_back(ps, b):
            return None
        return b

    def drain(self, now: float) -> None:
        """Send what is ready (see the module docstring)."""
        # Only after something that can make a batch sendable: an input (an
        # answer, a connection, a timer), a new or closed batch, flush/close.
        # The driver pulls commands() and data_to_send() every turn; under
        # load most turns change nothing and skip the scan of the partitions.
        acc = self._acc
        txn = self.txn
        if txn is not None:  # transactions: the next coordinator request
            txn.poll(now)
        if not acc.dirty:
            return
        acc.dirty = False
        self.last_drain = now
        if self._ids.enabled and not self._ids.ready(now, self._inflight_batches):
            return
        if not acc.queued:
            return
        fatal = self._ids.fatal
        if fatal is not None:
            for b in acc.unsent():
                acc.remove(b)
                self.fail(b, fatal, unknown_outcome=False)
            return
        client = self._client
        cluster = client.cluster
        by_node: dict[int, list[PartitionState]] = {}
        blocked: set[int] = set()
        missing_leader = False
        for ps in acc.queued:
            if self._ready_head(ps, now) is None:
                continue
            if txn is not None and ps not in txn.added:  # transactions: AddPartitionsToTxn first
                txn.want(ps)
                continue
            leader = cluster.leader_for(ps.topic, ps.partition)
            if leader is None or leader < 0:
                missing_leader = True
                continue
            node_parts = by_node.get(leader)
            if node_parts is None:
                if leader in blocked:
                    continue
                if not client.is_ready(leader):
                    try:
                        client.ensure_connected(leader, now)
                    except IllegalArgumentError:  # a leader kept from older metadata, address gone
                        missing_leader = True
                        continue
                    blocked.add(leader)
                    continue
                node_parts = by_node[leader] = []
            node_parts.append(ps)
        if missing_leader:
            client.request_metadata_update(now)
        if txn is not None:
            txn.poll(now)
        max_in_flight = self._config.max_in_flight_requests_per_connection
        for node, parts in by_node.items():
            while parts and self._node_inflight.get(node, 0) < max_in_flight:
                if not self._send_request(node, parts, now):
                    break

    def _send_request(self, node: int, parts: list[PartitionState], now: float) -> bool:
        """Build and send one Produce request to ``node`` from the heads of ``parts``."""
        acc = self._acc
        cfg = self._config
        size = _REQUEST_OVERHEAD
        batches: list[ProducerBatch] = []
        topic_data: dict[str, list[PartitionProduceData]] = {}
        keep: list[PartitionState] = []
        for ps in parts:
            if not ps.queue:
                continue
            b = self._ready_head(ps, now)
            if b is None:
                continue
            if b.state == OPEN:
                acc.close_batch(b)  # sealed from here on, even if it waits for the next request
            if self._ids.enabled:
                self._ids.assign(ps, b)
            payload = self._seal(b)
            n = len(payload) + _PARTITION_OVERHEAD + (0 if ps.topic in topic_data else len(ps.topic) + 8)
            if batches and size + n > cfg.max_request_size:
                keep.append(ps)  # next request
                continue
            size += n
            acc.take_head(ps)
            if ps.queue:
                keep.append(ps)
            b.state = IN_FLIGHT
            b.attempts += 1
            b.sent_at = now
            ps.inflight.append(b)
            batches.append(b)
            pd = PartitionProduceData(index=ps.partition, records=payload)
            lst = topic_data.get(ps.topic)
            if lst is None:
                topic_data[ps.topic] = [pd]
            else:
                lst.append(pd)
        parts[:] = keep
        if not batches:
            return False
        request = ProduceRequest(
            transactional_id=cfg.transactional_id,
            acks=cfg.acks,
            timeout_ms=cfg.request_timeout_ms,
            topic_data=[TopicProduceData(name=t, partition_data=pds) for t, pds in topic_data.items()],
        )
        self.inflight_requests += 1
        self._inflight_batches += len(batches)
        self._node_inflight[node] = self._node_inflight.get(node, 0) + 1
        self.metrics.requests += 1
        expect = cfg.acks != 0

        def on_response(response: ProduceResponse | None, error: KafkaError | None) -> None:
            self._on_produce_response(node, batches, now, response, error)

        self._client.send(request, now=now, node_id=node, callback=on_response, expect_response=expect)
        return True

    def _seal(self, b: ProducerBatch) -> bytearray:
        """Encode ``b`` (once) and stamp the current producer id/epoch/sequence into it."""
        payload = b.payload
        pid, epoch = self._ids.stamp()
        if payload is None:
            records = b.encoded()
            b.pieces = []
            if self._codec:
                m = self.metrics
                m.uncompressed_bytes += len(records)
                records = compress(self._codec, records)
                m.compressed_bytes += len(records)
            payload = encode_batch(
                records,
                count=b.count,
                base_timestamp=b.base_ts,
                max_timestamp=b.max_ts,
                attributes=self._codec | self._txn_attr,
                producer_id=pid,
                producer_epoch=epoch,
                base_sequence=b.base_seq,
            )
            m = self.metrics
            m.batches += 1
            m.batch_bytes += len(payload)
            if len(payload) > m.batch_bytes_max:
                m.batch_bytes_max = len(payload)
        elif b.sealed_seq == b.base_seq and b.sealed_pid == pid and b.sealed_epoch == epoch:
            return payload
        else:
            restamp_batch(payload, pid, epoch, b.base_seq)
        b.payload = payload
        b.sealed_seq, b.sealed_pid, b.sealed_epoch = b.base_seq, pid, epoch
        return payload

    # --- answers --------------------------------------------------------------------

    def _on_produce_response(
        self,
        node: int,
        batches: list[ProducerBatch],
        sent_at: float,
        response: ProduceResponse | None,
        error: KafkaError | None,
    ) -> None:
        now = self._acc.now
        self.inflight_requests -= 1
        self._node_inflight[node] -= 1
        self._inflight_batches -= len(batches)
        m = self.metrics
        latency = now - sent_at
        m.latency_sum += latency
        m.latency_count += 1
        if latency > m.latency_max:
            m.latency_max = latency
        for b in batches:
            b.part.inflight.remove(b)
        if error is not None:
            for b in batches:
                self._batch_error(b, error, 0, now)
            return
        if response is None:  # acks=0: the bytes were handed to the driver
            for b in batches:
                self._delivered(b, -1, -1)
            return
        by_tp: dict[tuple[str, int], ProducerBatch | None] = {
            (b.part.topic, b.part.partition): b for b in batches
        }
        for tr in response.responses:
            for pr in tr.partition_responses:
                hit = by_tp.pop((tr.name, pr.index), None)
                if hit is None:
                    continue
                code = pr.error_code
                if code == 0 or code == _ERR_DUPLICATE_SEQUENCE:
                    base = pr.base_offset
                    if not -1 <= base <= _MAX_OFFSET - hit.count:
                        base = -1  # written, but the broker's offset is impossible: report it unknown
                    self._delivered(hit, base, pr.log_append_time_ms)
                else:
                    msg = pr.error_message
                    if not msg and pr.record_errors:
                        msg = "; ".join(
                            f"record {e.batch_index}: {e.batch_index_error_message}" for e in pr.record_errors
                        )
                    self._batch_error(hit, error_from_code(code, msg), code, now)
        for left in by_tp.values():
            if left is not None:
                self._batch_error(
                    left, UnknownServerError("the response did not mention this partition"), -1, now
                )

    def _delivered(self, b: ProducerBatch, base_offset: int, log_append_time_ms: int) -> None:
        self._ids.acknowledged(b)
        if b.state == DONE:  # expired while in flight; the user was already told
            return
        m = self.metrics
        m.records_sent += b.count
        m.bytes_sent += b.size
        self._acc.release(b)
        ps = b.part
        self._events.append(
            RecordsDelivered(
                topic=ps.topic,
                partition=ps.partition,
                base_offset=base_offset,
                log_append_time_ms=log_append_time_ms,
                tokens=b.tokens,
            )
        )
        b.tokens = []
        b.payload = None

    def _batch_error(self, b: ProducerBatch, error: KafkaError, code: int, now: float) -> None:
        """``b`` came back with ``error`` (``code`` 0 if no broker error code): retry or fail."""
        if getattr(error, "refresh_metadata", False):
            self._client.request_metadata_update(now)
        ids = self._ids
        idempotent = ids.enabled
        if b.state == DONE:
            if idempotent and b.base_seq >= 0:
                ids.want_bump()
            return
        ps = b.part
        if code == _ERR_MESSAGE_TOO_LARGE and b.count > 1:
            # As the Java client: split the batch in two and send the halves;
            # idempotent sequences stay contiguous (this attempt was refused).
            self._split(b, now)
            return
        if code == 0 or code in _MAYBE_WRITTEN_CODES:
            b.maybe_written = True
        if idempotent:
            if (
                code == _ERR_OUT_OF_ORDER_SEQUENCE
                and b.sealed_epoch == ids.epoch
                and seq_before(b.base_seq + b.count - 1, ps.acked_next)
            ):
                # The broker acknowledged a later sequence of this epoch, and it
                # only accepts sequences in order: an earlier attempt of this
                # batch was written (its answer was lost) and has since left the
                # broker's 5-batch duplicate window. Delivered, offset unknown.
                self._delivered(b, -1, -1)
                return
            if code == _ERR_OUT_OF_ORDER_SEQUENCE or code in _STATE_LOST_CODES:
                # Not the next expected batch: an earlier one is missing (failed,
                # or still in flight to a new leader): retry in order. The next
                # expected one: the broker lost our state (KIP-360): bump.
                if code == _ERR_INVALID_PRODUCER_EPOCH or not (b.reseq or b.base_seq != ps.acked_next):
                    ids.want_bump()
                    if self.txn is not None:
                        # transactions: abortable (fenced: fatal); abort_transaction
                        # bumps the epoch (KIP-360), not this batch.
                        self.fail(b, error, unknown_outcome=False)
                        return
                    ps.lost = True
                self._requeue(b, now, count=False, error=error)
                return
        definite = not b.maybe_written  # no attempt can have been written
        if (
            getattr(error, "retriable", False)
            and b.attempts <= self._retries
            and now + self._retry_backoff < b.deadline
        ):
            self._requeue(b, now, count=True, error=error)
            return
        if idempotent and b.base_seq >= 0 and definite:
            ids.shift_sequences(ps, b)
        if idempotent and b.base_seq >= 0 and not definite:
            ps.lost = True
        self.fail(b, error, unknown_outcome=idempotent and b.base_seq >= 0 and not definite)

    def _split(self, b: ProducerBatch, now: float) -> None:
        """Replace ``b`` (refused as too large) by two batches of half its records each."""
        payload = b.payload
        assert payload is not None
        (batch,) = read_batches(bytes(payload))
        self.metrics.record_retries += b.count
        seq = b.base_seq
        for nb in self._acc.split(b, batch.records()):
            if seq >= 0:
                nb.base_seq = seq
                seq = (seq + nb.count) % SEQ_WRAP
            self._requeue(nb, now - self._retry_backoff, count=False)  # no backoff

    def _requeue(self, b: ProducerBatch, now: float, *, count: bool, error: KafkaError | None = None) -> None:
        """Put ``b`` back in its partition's queue, in creation order, after a backoff.

        With ``error`` (why the broker refused it) a :class:`BatchRetried` event says so.
        """
        if error is not None:
            self._events.append(BatchRetried(topic=b.part.topic, partition=b.part.partition, records=b.count,
                                             attempt=b.attempts, error=error))
        b.state = CLOSED
        b.retry_at = now + self._retry_backoff
        heapq.heappush(self._retry_times, b.retry_at)
        if count:
            self.metrics.record_retries += b.count
        self._acc.put_back(b)

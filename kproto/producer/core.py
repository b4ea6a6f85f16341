"""The sans-I/O producer core: a :class:`kproto.driving.Driven` made of four parts.

Theory of operation
===================

A record goes from ``ProducerCore.send`` to the socket through these
modules (each one's docstring says how it works)::

    send / send_value / send_many
            |
            v
    accumulator.RecordAccumulator   topics, partitions, batches; the append fast path
            |  (the driver pulls: commands() / data_to_send() / handle_timer())
            v
    sink.Sink                       per-node drain: seal batches into Produce requests,
            |                       settle the answers (deliver, retry, split, fail)
            v
    kproto.client.Client            connections, request framing -> bytes for the driver

    idempotence.IdempotenceState    producer id, epoch, sequences (KIP-98, KIP-360);
                                    the sink asks it before a batch goes, and tells it answers
    transactions.TransactionManager the transaction state (KIP-98), talking to the
                                    producer through a TransactionHost (the sink) and
                                    the IdempotenceState, never through this class

Answers come back as driving inputs (``receive_data``...): the client calls
the sink's callbacks, which turn them into :class:`RecordsDelivered` and
:class:`DeliveryFailed` events, drained with :meth:`ProducerCore.events`.
Imports go one way: core -> sink -> transactions -> idempotence ->
accumulator.

Batch lifecycle (``ProducerBatch.state``); anything not listed cannot happen::

    state      | input                                   | action                              | next
    -----------+-----------------------------------------+-------------------------------------+----------
    OPEN       | send(), record fits                     | append record                       | OPEN
    OPEN       | record does not fit / flush / close /   | stop appending                      | CLOSED
               | buffer full                             |                                     |
    OPEN       | drained (ready: linger over or flush)   | seal, send in a Produce request     | IN_FLIGHT
    CLOSED     | drained (retry backoff over)            | seal (once) or re-seal, send        | IN_FLIGHT
    OPEN/CLOSED| delivery deadline passes                | DeliveryFailed(KafkaTimeoutError)   | DONE
    IN_FLIGHT  | partition answered without error        | RecordsDelivered                    | DONE
    IN_FLIGHT  | acks=0 and bytes handed to the driver   | RecordsDelivered(base_offset=-1)    | DONE
    IN_FLIGHT  | retriable error, attempts <= retries,   | wait retry_backoff_ms, re-queue in  | CLOSED
               | before deadline                         | creation (= sequence) order         |
    IN_FLIGHT  | MESSAGE_TOO_LARGE, more than one record | two new CLOSED batches, half each   | DONE
    IN_FLIGHT  | other error                             | DeliveryFailed(the broker's error)  | DONE
    IN_FLIGHT  | delivery deadline passes                | DeliveryFailed(KafkaTimeoutError);  | DONE
               |                                         | the late answer is ignored          |
    not DONE   | abort()                                 | DeliveryFailed(error)               | DONE

Idempotent errors (KIP-98, KIP-360)
-----------------------------------

- ``DUPLICATE_SEQUENCE_NUMBER``: the broker already has the batch: success.
- ``OUT_OF_ORDER_SEQUENCE_NUMBER`` for a batch whose sequences all precede
  one the broker already acknowledged (same epoch): an earlier attempt was
  written and its answer lost; the broker only takes sequences in order, so
  the batch is delivered (``base_offset`` -1: the broker no longer says where).
- ``OUT_OF_ORDER_SEQUENCE_NUMBER`` for a batch that is *not* the next one
  expected (an earlier batch failed, or sequences were adjusted): retried.
- ``OUT_OF_ORDER_SEQUENCE_NUMBER`` for the next expected batch,
  ``UNKNOWN_PRODUCER_ID``, ``INVALID_PRODUCER_EPOCH``: the broker lost our
  state. KIP-360: once nothing is in flight, bump the epoch with
  InitProducerId carrying the current id and epoch (v3+; older brokers: get
  a new id), restart every partition's sequence at 0, re-sequence the queued
  batches in order and send them again.
- A batch the broker rejected outright (``INVALID_RECORD``, a one-record
  batch over the broker's size limit, ...) consumed no sequence: later batches of that partition are shifted down by its
  record count (as the Java client's ``adjustSequencesDueToFailedBatch``).
- A sequenced batch failed with an *unknown* outcome (expired, retries used
  up on a lost connection): its sequence may or may not be on the broker, so
  the epoch is bumped as above (KIP-360's "unresolved sequence").

Before a bump, the batches already sequenced in partitions whose broker
state is intact are sent (again) under the old epoch until each is resolved:
one whose earlier answer was lost may be on the broker, and only the old
epoch's duplicate check can say so; re-sequencing it under the new epoch
would write it twice. Sequences cannot be saved where the broker lost them.


"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from kproto.driving import ClientDriven, Command
from kproto.errors import IllegalStateError, KafkaError
from kproto.producer.accumulator import RecordAccumulator, validate_topic
from kproto.producer.config import ProducerConfig
from kproto.producer.events import ProducerEvent
from kproto.producer.idempotence import IdempotenceState
from kproto.producer.sink import Sink
from kproto.producer.transactions import TransactionManager, TransactionOp
from kproto.protocol.versions import named_versions

if TYPE_CHECKING:
    from kproto.client import Client
    from kproto.producer.transactions import Offsets

__all__ = ["ProducerCore", "validate_topic"]


def _make_client(config: ProducerConfig, now: float, rng: random.Random) -> Client:
    # Imported here so the producer's unit tests can inject a scripted client
    # without kproto.client, and to keep import order loose between layers.
    from kproto.client import Client

    return Client(config.client_config(), now=now, rng=rng)


class ProducerCore(ClientDriven):
    """The producer state machine; a :class:`kproto.driving.Driven`.

    It owns a :class:`kproto.client.Client` and forwards the driving inputs to
    it, adding the producer's own deadlines (linger, delivery timeout, retry
    backoff, metadata waits) to :meth:`get_timer`.

    Args:
        config: validated options.
        now: the driver's clock now, in seconds.
        rng: randomness for partitioning and the client (seed it to replay).
        client: a client to use instead of a new ``kproto.client.Client``
            (tests and simulations).
    """

    #: :meth:`send` without headers or an explicit partition, positional: the
    #: facades' hot path, ``send_value(topic, key, value, timestamp_ms, token,
    #: now)``. The same outcome as ``send(topic=topic, key=key, value=value,
    #: headers=None, partition=None, timestamp_ms=timestamp_ms, token=token,
    #: now=now)``; returns and raises as :meth:`send`. It is the accumulator's
    #: :meth:`RecordAccumulator.append_value`, bound (no call in between).
    send_value: Callable[[str, bytes | None, bytes, int, object, float], bool]

    #: ``send_many(records, now, failed)``: accept records from the front of
    #: the deque ``records`` until it is empty or not a record. Each record is
    #: a tuple ``(topic, key, value, headers, partition, timestamp_ms, token)``
    #: with :meth:`send`'s meaning; anything else in the deque (a driver's own
    #: item) stops the loop there, left in place. The same as calling
    #: :meth:`send` for each, minus a call per record. ``failed(token,
    #: exception)`` is called for a record :meth:`send` raised for (it is
    #: dropped; the loop goes on). Returns False if ``buffer_memory`` is full:
    #: the refused record is back at the front of ``records``; try again after
    #: the next event or timer. True otherwise. It is the accumulator's
    #: :meth:`RecordAccumulator.append_many`, bound.
    send_many: Callable[[deque[object], float, Callable[[object, Exception], None]], bool]

    def __init__(
        self,
        config: ProducerConfig,
        *,
        now: float,
        rng: random.Random | None = None,
        client: Client | None = None,
    ) -> None:
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._client: Client = client if client is not None else _make_client(config, now, self._rng)
        set_deadline = getattr(self._client, "set_bootstrap_deadline", None)
        if set_deadline is not None and config.bootstrap_timeout_ms is None:
            # bootstrap_timeout_ms, when set, is the client's own deadline.
            set_deadline(now + config.max_block_ms / 1000)
        self._acc = acc = RecordAccumulator(config, self._rng, self._client, now)
        self._ids = IdempotenceState(config, self._client, acc, now)
        self._sink = Sink(config, self._client, acc, self._ids, now)
        self._meta_version: object = None
        self._client_closed = False
        # transactions: the state machine, or None without a transactional_id.
        self._txn: TransactionManager | None = None
        if config.transactional_id is not None:
            self._txn = self._sink.txn = TransactionManager(self._sink, self._client, self._ids, config)
            # Every record checks the transaction state (no fast path then).
            acc.check_each_record(self._txn.check_send)
        #: ``send(topic, key, value, headers, partition, timestamp_ms, token, now)`` (by keyword
        #: or in that order): accept one record into its partition's batch; returns False if
        #: ``buffer_memory`` is full. It is the accumulator's :meth:`RecordAccumulator.append`,
        #: bound (its docstring says what it raises).
        self.send = acc.append
        self.send_value = acc.append_value
        self.send_many = acc.append_many

    @property
    def config(self) -> ProducerConfig:
        """The validated options (the transports read the socket options from it)."""
        return self._config

    @property
    def _buffer_used(self) -> int:
        """Bytes of the records not yet completed (read by the fuzz harness's invariant)."""
        return self._acc.buffer_used

    # --- the Driven surface -------------------------------------------------

    def _input(self, now: float) -> bool:
        """Note an input at ``now``; False once the client is closed (the input is dropped)."""
        self._acc.now = now
        if self._client_closed:
            return False
        self._acc.dirty = True
        return True

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``: client timers, expiry, linger, retries."""
        if self._input(now):
            self._client.handle_timer(now)
            self._after_input(now)
            self._sink.expire(now)
            self._sink.drain(now)

    def commands(self) -> list[Command]:
        """Connections to open or close (drains)."""
        if not self._client_closed:
            self._sink.drain(self._acc.now)
        return self._client.commands()

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """Bytes to write per node (drains): ready batches become Produce requests here."""
        if not self._client_closed:
            self._sink.drain(self._acc.now)
        out: list[tuple[int, bytes]] = self._client.data_to_send()
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline: the client's, a linger, a delivery timeout, a retry, a metadata wait."""
        t: float | None = self._client.get_timer()
        t = self._acc.next_deadline(t, self._sink.last_drain)
        return self._sink.get_timer(t)

    def _after_input(self, now: float) -> None:
        evs = self._client.events()  # the producer acts on cluster state, not on these
        if evs:
            if self._txn is not None:  # transactions: but on a failed coordinator lookup
                self._txn.on_client_events(evs)
            self._sink.forward(evs)  # for the driver to log and hand to hooks
        version = self._client.cluster.version
        if version != self._meta_version:
            self._meta_version = version
            self._acc.metadata_updated(now)

    # --- user calls -----------------------------------------------------------

    def flush(self, now: float) -> bool:
        """Make every buffered batch sendable now, whatever ``linger_ms`` says.

        Returns:
            True if a batch was still open (lingering): the driver has something new to send.
        """
        return self._acc.flush(now)

    def pending_count(self) -> int:
        """Records accepted and not yet delivered or failed."""
        return self._acc.pending_count()

    def buffer_available(self) -> int:
        """``buffer_memory`` minus the bytes of records not yet completed."""
        return self._acc.buffer_memory - self._acc.buffer_used

    def events(self) -> list[ProducerEvent]:
        """Deliveries, failures and the client's events since the last call (drains)."""
        return self._sink.take_events()

    def partitions_for(self, topic: str) -> set[int] | None:
        """The topic's partition ids from the latest metadata, or None if unknown."""
        parts: set[int] | None = self._client.cluster.partitions_for(topic)
        return parts

    def request_metadata(self, topic: str, now: float) -> None:
        """Ask for ``topic``'s metadata now (e.g. for ``partitions_for``)."""
        self._acc.now = now
        validate_topic(topic)
        self._client.add_topics([topic], now)
        self._client.request_metadata_update(now)

    def bootstrap_connected(self) -> bool:
        """True once a bootstrap broker answered."""
        return bool(self._client.bootstrap_connected())

    @property
    def auth_error(self) -> BaseException | None:
        """The authentication failure (SASL or TLS) keeping the client from the cluster, else None.

        Read-only; the facades raise it at once rather than waiting out ``max_block_ms``.
        """
        error = getattr(self._client, "auth_error", None)
        return error if isinstance(error, BaseException) else None

    def close(self, now: float) -> None:
        """Stop accepting records; what is buffered keeps being delivered (idempotent)."""
        acc = self._acc
        acc.now = now
        acc.dirty = True
        if not acc.closed:
            acc.closed = True
            acc.flush(now)

    def abort(self, now: float, error: KafkaError) -> None:
        """Fail every pending record with ``error`` and close the client's connections."""
        self._acc.now = now
        self._acc.closed = True
        self._sink.fail_all(error)
        if not self._client_closed:
            self._client_closed = True
            self._client.close(now)

    @property
    def client(self) -> Client:
        """The cluster client this core sends through (its metrics, errors and events)."""
        return self._client

    def metrics(self, now: float) -> dict[str, dict[str, float]]:
        """Producer metrics in the kafka-python shape: ``{'producer-metrics': {...}}``.

        Rates are per second over a window of up to 30 s.
        """
        m = self._sink.metrics
        if now - m.window_start >= 30.0:
            m.window_start = now
            m.window_base = (m.records_sent, m.bytes_sent, m.record_errors, m.record_retries)
        span = max(now - m.window_start, 1e-3)
        r0, b0, e0, t0 = m.window_base
        batches = max(m.batches, 1)
        lat_n = max(m.latency_count, 1)
        acc = self._acc
        values: dict[str, float] = {
            "record-send-rate": (m.records_sent - r0) / span,
            "record-send-total": float(m.records_sent),
            "byte-rate": (m.bytes_sent - b0) / span,
            "byte-total": float(m.bytes_sent),
            "batch-size-avg": m.batch_bytes / batches,
            "batch-size-max": float(m.batch_bytes_max),
            "records-per-request-avg": m.records_sent / max(m.requests, 1),
            "request-rate": m.requests / max(now - m.start, 1e-3),
            "request-total": float(m.requests),
            "request-latency-avg": 1000 * m.latency_sum / lat_n,
            "request-latency-max": 1000 * m.latency_max,
            "record-error-rate": (m.record_errors - e0) / span,
            "record-error-total": float(m.record_errors),
            "record-retry-rate": (m.record_retries - t0) / span,
            "record-retry-total": float(m.record_retries),
            "buffer-available-bytes": float(acc.buffer_memory - acc.buffer_used),
            "buffer-total-bytes": float(acc.buffer_memory),
            "requests-in-flight": float(self._sink.inflight_requests),
            "records-pending": float(self.pending_count()),
            "responses-with-trailing-bytes-total": float(self._client.responses_with_trailing_bytes),
        }
        # Java's compression-rate-avg: compressed / uncompressed size (1.0 without compression).
        values["compression-rate-avg"] = m.compressed_bytes / m.uncompressed_bytes if m.uncompressed_bytes else 1.0
        # The version of each API last sent (ApiVersions negotiation, kproto.protocol.versions).
        result = {"producer-metrics": values, "api-versions": named_versions(self._client.versions_sent())}
        for node, n in self._sink.node_inflight().items():
            result[f"producer-node-metrics.node-{node}"] = {"in-flight-requests": float(n)}
        return result

    # --- transactions (KIP-98): see kproto.producer.transactions ----------------

    def _transactions(self) -> TransactionManager:
        if self._txn is None:
            raise IllegalStateError("transactional method called without a transactional_id")
        if self._acc.closed:
            raise IllegalStateError("the producer is closed")
        return self._txn

    def init_transactions(self, now: float) -> TransactionOp:
        """Get the producer id and epoch of ``transactional_id`` (fences older producers).

        Returns:
            An op; it is ``done`` after a later driving input, ``error`` set on failure.

        Raises:
            IllegalStateError: no transactional id, closed, or already initialised.
        """
        self._acc.now = now
        return self._transactions().init_transactions(now)

    def begin_transaction(self, now: float) -> None:
        """Start a transaction; records may be sent until it is committed or aborted.

        Raises:
            IllegalStateError: not initialised, or a transaction is under way.
            KafkaError: the fatal error of a fenced or failed producer.
        """
        self._acc.now = now
        self._transactions().begin_transaction(now)

    def send_offsets_to_transaction(self, offsets: Offsets, group: object, now: float) -> TransactionOp:
        """Commit ``offsets`` for the consumer ``group`` with the transaction.

        Args:
            offsets: ``{TopicPartition: OffsetAndMetadata}`` (or ``{(topic, partition): offset}``).
            group: the group id, or an object with ``group_id`` (and optionally
                ``generation_id``, ``member_id``, ``group_instance_id``).
            now: the driver's clock.

        Raises:
            IllegalStateError: not in a transaction.
            IllegalArgumentError: malformed offsets or group.
        """
        self._acc.now = now
        return self._transactions().send_offsets_to_transaction(offsets, group, now)

    def commit_transaction(self, now: float) -> TransactionOp:
        """Flush, then commit the transaction once all its records and offsets are in.

        Raises:
            IllegalStateError: not in a transaction.
            KafkaError: the error that made the transaction abortable, or a fatal one.
        """
        self._acc.now = now
        return self._transactions().commit_transaction(now)

    def abort_transaction(self, now: float) -> TransactionOp:
        """Fail unsent records with ``TransactionAbortedError`` and abort the transaction.

        Raises:
            IllegalStateError: not in a transaction.
            KafkaError: the fatal error of a fenced or failed producer.
        """
        self._acc.now = now
        return self._transactions().abort_transaction(now)

    def transaction_state(self) -> str | None:
        """The transaction state name (``'READY'``...), None without a transactional id."""
        return None if self._txn is None else self._txn.state

    def check_transactional_send(self) -> None:
        """Raise what ``send`` would raise for the transaction state (facades call it first)."""
        if self._txn is not None:
            self._txn.check_send()

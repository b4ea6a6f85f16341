"""The sans-I/O producer core: accumulator, sender, retries and idempotence.

Theory of operation
===================

``send()`` encodes a record straight into the open batch of its partition
(one per partition, up to ``batch_size``) and returns. ``send_many()`` (a
queue of records, the sync driver's) and ``send_value()`` (positional, no
headers or explicit partition, the async facades') do the same; all three
inline the encoding of the commonest record (null key, no headers: see
``PlainRecordTables``) and fall back to the general path for the rest, so
the batches are the same bytes whichever was called. Nothing else happens
until the driver pulls: ``data_to_send()``/``commands()``/``handle_timer()``
*drain* — for every partition whose oldest batch is ready, the batch is sealed
(header, compression, CRC) and, grouped by leader, put into one Produce
request per node (one batch per partition per request, at most
``max_request_size`` bytes) as long as the node is ready and has fewer than
``max_in_flight_requests_per_connection`` requests in flight. So under load,
while requests are in flight, records pile up into fuller batches; when idle,
every record leaves at once (``linger_ms=0``).

Time: each batch has ``linger_at`` (creation + ``linger_ms``) and
``deadline`` (creation + ``delivery_timeout_ms``, KIP-91). Both are fixed
offsets from the creation time, so the batches kept in creation order (one
deque) give the earliest of either in O(1): ``get_timer()`` never scans the
partitions.

Batch lifecycle (``_Batch.state``); anything not listed cannot happen::

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

Idempotence (KIP-98, KIP-360)
-----------------------------

An InitProducerId request gets a producer id and epoch before the first
batch is drained. A batch gets its base sequence when first drained (the
partition's next sequence; it then advances by the record count, wrapping at
2**31) and keeps it on every retry, so the broker can drop duplicates and
keep order with up to 5 requests in flight. A re-queued batch is only sent
again once no later batch of its partition is in flight, so batches reach
the broker in sequence order.

Errors:

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

Transactions (KIP-98): with a ``transactional_id`` the transaction state
machine of :mod:`kproto.producer.transactions` gets the producer id, adds
partitions to the transaction before their first batch is drained, and ends
transactions; the hooks here are marked ``# transactions:``.

Buffer memory: ``send`` counts each record's encoded size against
``buffer_memory``; a batch gives its bytes back when it is DONE (bytes are
held while in flight, since a retry needs them).
"""

from __future__ import annotations

import heapq
import random
import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from kproto.errors import (
    DuplicateSequenceNumberError,
    IllegalArgumentError,
    IllegalStateError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasAfterAppendError,
    OutOfOrderSequenceNumberError,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownProducerIdError,
    UnknownServerError,
    error_from_code,
)
from kproto.producer.config import ProducerConfig
from kproto.producer.events import DeliveryFailed, ProducerEvent, RecordsDelivered
from kproto.producer.partitioner import DefaultPartitioner, StickyPartitioner, murmur2
from kproto.producer.transactions import TransactionManager, TransactionOp
from kproto.protocol.compression import codec_id, compress
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse
from kproto.protocol.messages.produce import (
    PartitionProduceData,
    ProduceRequest,
    ProduceResponse,
    TopicProduceData,
)
from kproto.protocol.records import (
    PLAIN_RECORD_TABLES,
    RECORD_BATCH_OVERHEAD,
    RECORD_OVERHEAD_MAX,
    RecordsBuffer,
    encode_batch,
    encode_headers,
    read_batches,
    record_size_bound,
    restamp_batch,
)
from kproto.protocol.versions import named_versions

__all__ = ["ProducerCore"]

# Records are encoded by kproto.protocol.records.RecordsBuffer (each _Batch
# is one): pieces of bytes added to a list per record, joined at seal time.

#: The headers section of a record without headers.
_NO_HEADERS: Final = encode_headers(())
#: The encoder's tables for the inlined appends of send/send_many (module
#: globals: cheaper to read than the named tuple's fields).
_VARINT_LIMIT, _ZZ, _ZZ_LEN, _ATTR_TD, _ATTR_TD_LEN, _NK_LIMIT, _NK_VLEN, _NK_REST = PLAIN_RECORD_TABLES
#: Keys whose partition is remembered, per topic (see _Topic.by_key).
_HASH_CACHE: Final = 8192
_BATCH_OVERHEAD: Final = RECORD_BATCH_OVERHEAD  # 61
#: None keys (default partitioner): random indexes of at least 10 bits into a
#: table of the partitions (8 KiB a topic), rather than rng.random() * n:
#: one call instead of three (~40 ns instead of ~120 ns).
_PICK_BITS: Final = 10
#: Bytes a partition adds to a Produce request besides its batch (index,
#: records length; generous for the flexible versions' varints).
_PARTITION_OVERHEAD: Final = 16
#: Request header, acks, timeout, topic array, topic name, and slack.
_REQUEST_OVERHEAD: Final = 128

_SEQ_WRAP: Final = 1 << 31
#: The offset after a record is an int64 too (issue 15): records end at 2**63-2.
_MAX_OFFSET: Final = 2**63 - 1
_MAX_EPOCH: Final = 32767

# Broker error codes the producer acts on (module constants: read on every answer).
_ERR_MESSAGE_TOO_LARGE: Final = MessageSizeTooLargeError.errno
_ERR_OUT_OF_ORDER_SEQUENCE: Final = OutOfOrderSequenceNumberError.errno
_ERR_DUPLICATE_SEQUENCE: Final = DuplicateSequenceNumberError.errno
_ERR_INVALID_PRODUCER_EPOCH: Final = InvalidProducerEpochError.errno
_STATE_LOST_CODES: Final = frozenset((UnknownProducerIdError.errno, InvalidProducerEpochError.errno))
#: Answers that do not rule out that the batch was written: REQUEST_TIMED_OUT
#: (the leader wrote it, replication timed out), NOT_ENOUGH_REPLICAS_AFTER_APPEND,
#: and -1 (no answer for the partition). A lost connection is the same.
_MAYBE_WRITTEN_CODES: Final = frozenset((RequestTimedOutError.errno, NotEnoughReplicasAfterAppendError.errno, -1))

_API_INIT_PRODUCER_ID: Final = InitProducerIdRequest.API_KEY
#: Record batch attribute bit 4: the batch belongs to a transaction (KIP-98).
_TRANSACTIONAL_ATTR: Final = 0x10

_LEGAL_TOPIC: Final = re.compile(r"[a-zA-Z0-9._-]{1,249}")

# Batch states (ints: compared on the hot path).
OPEN: Final = 0
CLOSED: Final = 1
IN_FLIGHT: Final = 2
DONE: Final = 3


def validate_topic(topic: object) -> str:
    """Return ``topic`` if it is a legal Kafka topic name, else raise ValueError."""
    if not isinstance(topic, str):
        raise IllegalArgumentError(f"topic must be a str, not {type(topic).__name__}")
    if topic in (".", "..") or not _LEGAL_TOPIC.fullmatch(topic):
        raise IllegalArgumentError(
            f"invalid topic name {topic!r}: 1 to 249 characters of [a-zA-Z0-9._-], not '.' or '..'"
        )
    return topic


def _seq_before(a: int, b: int) -> bool:
    """True if sequence ``a`` comes before ``b`` (sequences wrap at 2**31)."""
    return 0 < (b - a) % _SEQ_WRAP < _SEQ_WRAP // 2


def _as_bytes(what: str, data: object) -> bytes:
    """Copy a bytes-like key/value (the caller may reuse its buffer); reject anything else."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or None, not {type(data).__name__} (no serializer?)")


class _Topic:
    """What the core knows of one topic: sorted partition lists and their states."""

    __slots__ = (
        "name", "partitions", "available", "parts", "by_index", "n_parts", "by_key", "pick", "pick_bits",
    )  # fmt: skip

    def __init__(self, name: str) -> None:
        self.name = name
        self.partitions: list[int] = []
        self.available: list[int] = []
        self.parts: dict[int, _Partition] = {}
        #: The states of ``partitions``, in that order (keyed records: murmur2 modulo n_parts).
        self.by_index: tuple[_Partition, ...] = ()
        self.n_parts = 0
        #: Keyed records: key -> its partition's state, remembered (cleared
        #: when full, and on new metadata): ~1 MB at most for short keys, and
        #: repeated keys skip a pure-Python murmur2 (~1 us).
        self.by_key: dict[bytes, _Partition] = {}
        #: Where a None key may go - the available partitions, else all of
        #: them - each ``len(pick) // n`` times, padded with None to
        #: 2**pick_bits: a random index picks uniformly (None: draw again).
        self.pick: tuple[_Partition | None, ...] = ()
        self.pick_bits = 0


class _Partition:
    """One partition's queue of batches, its in-flight batches and sequence state."""

    __slots__ = ("topic", "partition", "queue", "open", "inflight", "next_seq", "acked_next", "lost")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        #: Batches not yet on the wire, oldest (lowest sequence) first; the open one last.
        self.queue: deque[_Batch] = deque()
        #: The batch ``send`` appends to, or None.
        self.open: _Batch | None = None
        #: Batches on the wire, in send order.
        self.inflight: list[_Batch] = []
        #: Idempotence: sequence of the next new batch.
        self.next_seq = 0
        #: Idempotence: sequence the broker expects next (last acknowledged + 1).
        self.acked_next = 0
        #: Idempotence: the broker lost our state here, or a sequence is unresolved.
        self.lost = False


class _Batch(RecordsBuffer):
    """Records of one partition sent together. Slotted: one per ~100 records.

    The records themselves (``pieces``, ``count``, ``size`` - header
    included -, ``base_ts``, ``max_ts``) are the :class:`RecordsBuffer` part.
    """

    __slots__ = (
        "part", "tokens", "created", "deadline", "linger_at", "state", "payload", "base_seq",
        "sealed_seq", "sealed_pid", "sealed_epoch", "attempts", "retry_at", "reseq", "order",
        "sent_at", "maybe_written",
    )  # fmt: skip

    def __init__(self, part: _Partition, now: float, linger: float, timeout: float, order: int) -> None:
        RecordsBuffer.__init__(self)
        self.part = part
        self.tokens: list[object] = []
        self.created = now
        self.deadline = now + timeout
        self.linger_at = now + linger
        self.state = OPEN
        self.payload: bytearray | None = None
        self.base_seq = -1
        self.sealed_seq = -1
        self.sealed_pid = -1
        self.sealed_epoch = -1
        self.attempts = 0
        self.retry_at = 0.0
        #: Sequence shifted after an earlier batch failed (an OUT_OF_ORDER answer is then retried).
        self.reseq = False
        #: Creation order; re-queued batches are put back in this order.
        self.order = order
        self.sent_at = 0.0
        #: An attempt may have been written (lost answer, replication timeout).
        self.maybe_written = False


class _Waiting(NamedTuple):
    """A record sent before its topic's metadata came: held until it does (or ``max_block_ms``)."""

    #: When it fails if the topic is still unknown.
    deadline: float
    key: bytes | None
    value: bytes | None
    #: The encoded headers section.
    headers: bytes
    partition: int | None
    timestamp_ms: int
    token: object
    #: The bound of its encoded size counted against ``buffer_memory``.
    size_bound: int


class _Metrics:
    """Counters behind :meth:`ProducerCore.metrics`."""

    __slots__ = (
        "start", "records_sent", "bytes_sent", "batches", "batch_bytes", "batch_bytes_max", "requests",
        "latency_sum", "latency_max", "latency_count", "record_errors", "record_retries",
        "window_start", "window_base",
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


def _make_client(config: ProducerConfig, now: float, rng: random.Random) -> Any:
    # Imported here so the producer's unit tests can inject a scripted client
    # without kproto.client, and to keep import order loose between layers.
    from kproto.client import Client, ClientConfig

    return Client(ClientConfig(**config.client_kwargs()), now=now, rng=rng)


class ProducerCore:
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

    def __init__(
        self,
        config: ProducerConfig,
        *,
        now: float,
        rng: random.Random | None = None,
        client: Any | None = None,
    ) -> None:
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._client: Any = client if client is not None else _make_client(config, now, self._rng)
        set_deadline = getattr(self._client, "set_bootstrap_deadline", None)
        if set_deadline is not None:
            set_deadline(now + config.max_block_ms / 1000)
        self._now = now
        self._acks = config.acks
        self._codec = codec_id(config.compression_type)
        self._batch_size = config.batch_size
        self._buffer_memory = config.buffer_memory
        self._max_request_size = config.max_request_size
        self._max_in_flight = config.max_in_flight_requests_per_connection
        self._linger = config.linger_ms / 1000
        self._delivery_timeout = config.delivery_timeout_ms / 1000
        self._retry_backoff = config.retry_backoff_ms / 1000
        self._max_block = config.max_block_ms / 1000
        self._retries = config.retries
        self._idempotent = config.enable_idempotence

        partitioner = config.partitioner
        self._sticky: StickyPartitioner | None = None
        self._custom: Callable[[bytes | None, Sequence[int], Sequence[int]], int] | None = None
        if isinstance(partitioner, StickyPartitioner):
            self._sticky = partitioner
        elif partitioner is not None and not isinstance(partitioner, DefaultPartitioner):
            self._custom = partitioner
        elif isinstance(partitioner, DefaultPartitioner):
            self._custom = partitioner
        self._randbits = self._rng.getrandbits
        #: The built-in default partitioner (inlined in send).
        self._plain = self._sticky is None and self._custom is None
        #: Largest record (its framing upper bound) a batch may hold (Java:
        #: RecordTooLargeException over max.request.size or buffer.memory).
        self._max_record = min(config.max_request_size - _BATCH_OVERHEAD, config.buffer_memory)

        self._topics: dict[str, _Topic] = {}
        #: Partitions with at least one queued batch (an ordered set).
        self._queued: dict[_Partition, None] = {}
        #: Every batch not yet DONE (and some that are), in creation order.
        self._age: deque[_Batch] = deque()
        #: Batches still OPEN when linger_ms > 0, in creation order.
        self._lingering: deque[_Batch] = deque()
        #: Retry times of re-queued batches (a heap).
        self._retry_times: list[float] = []
        self._order = 0
        self._last_drain = -1e300
        #: Something may have become sendable since the last drain.
        self._dirty = True
        #: Records waiting for their topic's metadata: topic -> [(deadline, record...)].
        self._waiting: dict[str, list[_Waiting]] = {}
        self._meta_version: object = None
        self._events: list[ProducerEvent] = []
        self._buffer_used = 0
        #: Records waiting for metadata or in batches no longer open; add the
        #: open batches' counts for the records pending (not counted per
        #: record: that is one attribute update less per send).
        self._pending = 0
        self._inflight_requests = 0
        self._inflight_batches = 0
        #: Produce requests in flight per node (our own count: the client may queue).
        self._node_inflight: dict[int, int] = {}
        self._closed = False
        self._client_closed = False
        self._metrics = _Metrics(now)

        # Idempotence state (KIP-98).
        self._pid = -1
        self._epoch = -1
        self._pid_ok = False
        self._pid_in_flight = False
        self._pid_retry_at = now
        self._bump_wanted = False
        self._fatal: KafkaError | None = None

        # transactions: the state machine, or None without a transactional_id.
        self._txn: TransactionManager | None = None
        self._txn_attr = 0
        if config.transactional_id is not None:
            self._txn = TransactionManager(
                self, config.transactional_id, config.transaction_timeout_ms, self._retry_backoff
            )
            self._txn_attr = _TRANSACTIONAL_ATTR
            # The inlined appends (send_value, send_many) skip send()'s state check.
            self._plain = False

    # --- the Driven surface -------------------------------------------------

    def connection_made(self, node_id: int, now: float) -> None:
        """A connection the core asked for is open."""
        self._now = now
        if self._client_closed:
            return
        self._dirty = True
        self._client.connection_made(node_id, now)
        self._after_input(now)

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        """A connection failed or closed."""
        self._now = now
        if self._client_closed:
            return
        self._dirty = True
        self._client.connection_lost(node_id, exc, now)
        self._after_input(now)

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        """Bytes arrived from ``node_id``."""
        self._now = now
        if self._client_closed:
            return
        self._dirty = True
        self._client.receive_data(node_id, data, now)
        self._after_input(now)

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``: client timers, expiry, linger, retries."""
        self._now = now
        if self._client_closed:
            return
        self._dirty = True
        self._client.handle_timer(now)
        self._after_input(now)
        self._expire(now)
        self._drain(now)

    def commands(self) -> list[Any]:
        """Connections to open or close (drains)."""
        if not self._client_closed:
            self._drain(self._now)
        cmds: list[Any] = self._client.commands()
        return cmds

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """Bytes to write per node (drains): ready batches become Produce requests here."""
        if not self._client_closed:
            self._drain(self._now)
        out: list[tuple[int, bytes]] = self._client.data_to_send()
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline: the client's, a linger, a delivery timeout, a retry, a metadata wait."""
        t: float | None = self._client.get_timer()
        age = self._age
        while age and age[0].state == DONE:
            age.popleft()
        if age:
            d = age[0].deadline
            if t is None or d < t:
                t = d
        lingering = self._lingering
        last = self._last_drain
        while lingering and (lingering[0].state != OPEN or lingering[0].linger_at <= last):
            lingering.popleft()
        if lingering:
            d = lingering[0].linger_at
            if t is None or d < t:
                t = d
        retry = self._retry_times
        while retry and retry[0] <= last:
            heapq.heappop(retry)
        if retry and (t is None or retry[0] < t):
            t = retry[0]
        for waiting in self._waiting.values():
            d = waiting[0].deadline
            if t is None or d < t:
                t = d
        if self._idempotent and self._needs_pid() and not self._pid_in_flight and self._pid_retry_at > last:
            if t is None or self._pid_retry_at < t:
                t = self._pid_retry_at
        if self._txn is not None:  # transactions: a backed-off coordinator request
            due = self._txn.get_timer()
            if due is not None and (t is None or due < t):
                t = due
        return t

    # --- user calls -----------------------------------------------------------

    def send(
        self,
        *,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        partition: int | None,
        timestamp_ms: int,
        token: object,
        now: float,
    ) -> bool:
        """Accept one record into its partition's batch.

        Returns:
            True if accepted; False if ``buffer_memory`` is full — nothing was
            buffered; try again after the next event or timer.

        Raises:
            IllegalStateError: the producer is closed.
            RecordTooLargeError: the record alone is over ``max_request_size``
                or ``buffer_memory``.
            ValueError: an invalid topic name, both key and value None, a
                negative partition.
            TypeError: key, value, headers or timestamp of the wrong type.
        """
        self._now = now
        if self._closed:
            raise IllegalStateError("cannot send: the producer is closed")
        if self._txn is not None:  # transactions: only inside one
            self._txn.check_send()
        # A cheap bound of the record's encoded size: the key and value
        # lengths counted at their largest too (record_size_bound is exact
        # for them, and decides when this one is too large).
        if key is None:
            if value is None:
                raise IllegalArgumentError("key and value cannot both be None (a tombstone needs a key)")
            upper = RECORD_OVERHEAD_MAX
        else:
            if type(key) is not bytes:
                key = _as_bytes("key", key)
            upper = RECORD_OVERHEAD_MAX + len(key)
        if value is not None:
            if type(value) is not bytes:
                value = _as_bytes("value", value)
            upper += len(value)
        if headers:
            hb = encode_headers(headers)
            upper += len(hb)
        else:
            hb = _NO_HEADERS
            upper += 1
        if upper > self._max_record or self._buffer_used + upper > self._buffer_memory:
            upper = record_size_bound(key, value, hb)
            if upper > self._max_record:
                raise RecordTooLargeError(
                    f"the record is {upper + _BATCH_OVERHEAD} bytes when serialized, more than "
                    f"max_request_size={self._max_request_size} or buffer_memory={self._buffer_memory}"
                )
            if self._buffer_used + upper > self._buffer_memory:
                self._buffer_full()
                return False

        tp = self._topics.get(topic)
        if tp is None or not tp.n_parts:
            if tp is None:
                validate_topic(topic)
                if partition is not None and (not isinstance(partition, int) or partition < 0):
                    raise IllegalArgumentError(f"partition must be an int >= 0, not {partition!r}")
                tp = self._topics[topic] = _Topic(topic)
                self._refresh_topic(tp)
            if not tp.n_parts:
                if type(timestamp_ms) is not int:
                    raise TypeError(f"timestamp_ms must be an int, not {type(timestamp_ms).__name__}")
                self._wait_for_metadata(
                    tp, _Waiting(now + self._max_block, key, value, hb, partition, timestamp_ms, token, upper), now
                )
                return True

        if partition is None and self._plain:
            # The default partitioner, inlined (a call costs a tenth of a send).
            if key is None:
                pick = tp.pick[self._randbits(tp.pick_bits)]
                ps = pick if pick is not None else self._pick(tp)
            else:
                pick = tp.by_key.get(key)
                ps = pick if pick is not None else self._keyed(tp, key)
        else:
            if partition is not None and (not isinstance(partition, int) or partition < 0):
                raise IllegalArgumentError(f"partition must be an int >= 0, not {partition!r}")
            found = self._partition_state(tp, key, partition, token, strict=True)
            if found is None:
                return True
            ps = found
        # _append, inlined for the common case: the open batch takes the record.
        b = ps.open
        if key is None and hb is _NO_HEADERS and b is not None and value is not None:
            # RecordsBuffer.append, inlined for a null key and no headers (see
            # PlainRecordTables); anything the tables do not cover falls through.
            vl = len(value)
            n = b.count
            td = timestamp_ms - b.base_ts
            if vl < _NK_LIMIT and 0 <= td < _VARINT_LIMIT and n < _VARINT_LIMIT:
                body = _ATTR_TD_LEN[td] + _ZZ_LEN[n] + _NK_REST[vl]
                size = _ZZ_LEN[body] + body
                batch_size = self._batch_size
                if b.size + size <= batch_size:
                    b.pieces += (_ZZ[body], _ATTR_TD[td], _ZZ[n], _NK_VLEN[vl], value, hb)
                    b.count = n + 1
                    b.size += size
                    if timestamp_ms > b.max_ts:
                        b.max_ts = timestamp_ms
                    b.tokens.append(token)
                    self._buffer_used += size
                    if b.size == batch_size:
                        self._close_batch(b)
                    return True
        if b is None or not (size := b.append(timestamp_ms, key, value, hb, self._batch_size)):
            b, size = self._append_new(tp, ps, key, value, hb, timestamp_ms, now, partition is None)
        b.tokens.append(token)
        self._buffer_used += size
        if b.size >= self._batch_size:
            self._close_batch(b)
        return True

    def send_value(
        self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int, token: object, now: float
    ) -> bool:
        """:meth:`send` without headers or an explicit partition, positional: the facades' hot path.

        The same outcome as ``send(topic=topic, key=key, value=value,
        headers=None, partition=None, timestamp_ms=timestamp_ms, token=token,
        now=now)``, which it calls for anything but the common case (bytes
        key or None, bytes value, the default partitioner, a known topic,
        room in the buffer, an open batch that takes the record).

        Returns:
            As :meth:`send`.

        Raises:
            As :meth:`send`.
        """
        if (
            type(value) is bytes
            and type(timestamp_ms) is int
            and self._plain
            and not self._closed
            and (tp := self._topics.get(topic)) is not None
            and tp.n_parts
        ):
            # RecordsBuffer.append, inlined (see PlainRecordTables) when the
            # partition's open batch takes the record; else the general append.
            vl = len(value)
            if key is None:
                upper = RECORD_OVERHEAD_MAX + 1 + vl  # as send()'s bound
                if upper > self._max_record or self._buffer_used + upper > self._buffer_memory:
                    return self.send(
                        topic=topic, key=key, value=value, headers=None, partition=None,
                        timestamp_ms=timestamp_ms, token=token, now=now,
                    )  # fmt: skip
                self._now = now
                pick = tp.pick[self._randbits(tp.pick_bits)]
                ps = pick if pick is not None else self._pick(tp)
                b = ps.open
                if b is not None and vl < _NK_LIMIT:
                    n = b.count
                    td = timestamp_ms - b.base_ts
                    if 0 <= td < _VARINT_LIMIT and n < _VARINT_LIMIT:
                        body = _ATTR_TD_LEN[td] + _ZZ_LEN[n] + _NK_REST[vl]
                        size = _ZZ_LEN[body] + body
                        batch_size = self._batch_size
                        if b.size + size <= batch_size:
                            b.pieces += (_ZZ[body], _ATTR_TD[td], _ZZ[n], _NK_VLEN[vl], value, _NO_HEADERS)
                            b.count = n + 1
                            b.size += size
                            if timestamp_ms > b.max_ts:
                                b.max_ts = timestamp_ms
                            b.tokens.append(token)
                            self._buffer_used += size
                            if b.size == batch_size:
                                self._close_batch(b)
                            return True
            elif type(key) is bytes:
                kl = len(key)
                upper = RECORD_OVERHEAD_MAX + 1 + kl + vl
                if upper > self._max_record or self._buffer_used + upper > self._buffer_memory:
                    return self.send(
                        topic=topic, key=key, value=value, headers=None, partition=None,
                        timestamp_ms=timestamp_ms, token=token, now=now,
                    )  # fmt: skip
                self._now = now
                pick = tp.by_key.get(key)
                ps = pick if pick is not None else self._keyed(tp, key)
                b = ps.open
                if b is not None and kl < _VARINT_LIMIT and vl < _VARINT_LIMIT:
                    n = b.count
                    td = timestamp_ms - b.base_ts
                    if 0 <= td < _VARINT_LIMIT and n < _VARINT_LIMIT:
                        body = _ATTR_TD_LEN[td] + _ZZ_LEN[n] + _ZZ_LEN[kl] + kl + _ZZ_LEN[vl] + vl + 1
                        batch_size = self._batch_size
                        if body < _VARINT_LIMIT and b.size + (size := _ZZ_LEN[body] + body) <= batch_size:
                            b.pieces += (
                                _ZZ[body], _ATTR_TD[td], _ZZ[n], _ZZ[kl], key, _ZZ[vl], value, _NO_HEADERS,
                            )  # fmt: skip
                            b.count = n + 1
                            b.size += size
                            if timestamp_ms > b.max_ts:
                                b.max_ts = timestamp_ms
                            b.tokens.append(token)
                            self._buffer_used += size
                            if b.size == batch_size:
                                self._close_batch(b)
                            return True
            else:
                return self.send(
                    topic=topic, key=key, value=value, headers=None, partition=None,
                    timestamp_ms=timestamp_ms, token=token, now=now,
                )  # fmt: skip
            batch_size = self._batch_size
            if b is None or not (size := b.append(timestamp_ms, key, value, _NO_HEADERS, batch_size)):
                b, size = self._append_new(tp, ps, key, value, _NO_HEADERS, timestamp_ms, now, True)
            b.tokens.append(token)
            self._buffer_used += size
            if b.size >= batch_size:
                self._close_batch(b)
            return True
        return self.send(
            topic=topic,
            key=key,
            value=value,
            headers=None,
            partition=None,
            timestamp_ms=timestamp_ms,
            token=token,
            now=now,
        )

    def send_many(
        self,
        records: deque[Any],
        now: float,
        failed: Callable[[object, Exception], None],
    ) -> bool:
        """Accept records from the front of ``records`` until it is empty or not a record.

        Each record is a tuple ``(topic, key, value, headers, partition,
        timestamp_ms, token)`` with :meth:`send`'s meaning; anything else in
        the deque (a driver's own item) stops the loop there, left in place.
        The same as calling :meth:`send` for each, minus a call per record:
        the common case (bytes value, bytes or None key, no headers, no
        explicit partition, the default partitioner, a known topic, room in
        the buffer) is inlined here; every other record goes through
        :meth:`send`.

        Args:
            records: the queue to take records from (popped as accepted).
            now: the driver's clock.
            failed: called with ``(token, exception)`` for a record
                :meth:`send` raised for (it is dropped; the loop goes on).

        Returns:
            False if ``buffer_memory`` is full: the refused record is back at
            the front of ``records``; try again after the next event or timer.
            True otherwise.
        """
        self._now = now
        send = self.send
        topics = self._topics
        batch_size = self._batch_size
        # The fast path's size bound: as in send(), the key and value lengths
        # on top of RECORD_OVERHEAD_MAX, plus the empty headers byte.
        max_record = self._max_record - RECORD_OVERHEAD_MAX - 1
        buffer_memory = self._buffer_memory - RECORD_OVERHEAD_MAX - 1
        randbits = self._randbits
        no_headers = _NO_HEADERS
        limit, zz, zz_len, attr_td, attr_td_len, nk_limit, nk_vlen, nk_rest = PLAIN_RECORD_TABLES
        fast = self._plain and not self._closed
        popleft = records.popleft
        # self._buffer_used, kept in a local on the fast path: written back
        # before anything else can read or change it.
        used = self._buffer_used
        while records:
            item = popleft()
            if type(item) is not tuple:
                records.appendleft(item)  # left in place
                break
            topic, key, value, headers, partition, ts, token = item
            if fast and headers is None and partition is None and type(value) is bytes and type(ts) is int:
                tp = topics.get(topic)
                if tp is not None and tp.n_parts:
                    # RecordsBuffer.append, inlined (see PlainRecordTables) when the
                    # partition's open batch takes the record; else the general append.
                    vl = len(value)
                    if key is None:
                        if vl <= max_record and used + vl <= buffer_memory:
                            pick = tp.pick[randbits(tp.pick_bits)]
                            ps = pick if pick is not None else self._pick(tp)
                            b = ps.open
                            if b is not None and vl < nk_limit:
                                n = b.count
                                td = ts - b.base_ts
                                if 0 <= td < limit and n < limit:
                                    body = attr_td_len[td] + zz_len[n] + nk_rest[vl]
                                    size = zz_len[body] + body
                                    if b.size + size <= batch_size:
                                        b.pieces += (zz[body], attr_td[td], zz[n], nk_vlen[vl], value, no_headers)
                                        b.count = n + 1
                                        b.size += size
                                        if ts > b.max_ts:
                                            b.max_ts = ts
                                        b.tokens.append(token)
                                        used += size
                                        if b.size == batch_size:
                                            self._close_batch(b)
                                        continue
                        else:
                            ps = None
                    elif type(key) is bytes:
                        kl = len(key)
                        if kl + vl <= max_record and used + kl + vl <= buffer_memory:
                            pick = tp.by_key.get(key)
                            ps = pick if pick is not None else self._keyed(tp, key)
                            b = ps.open
                            if b is not None and kl < limit and vl < limit:
                                n = b.count
                                td = ts - b.base_ts
                                if 0 <= td < limit and n < limit:
                                    body = attr_td_len[td] + zz_len[n] + zz_len[kl] + kl + zz_len[vl] + vl + 1
                                    if body < limit:
                                        size = zz_len[body] + body
                                        if b.size + size <= batch_size:
                                            b.pieces += (
                                                zz[body], attr_td[td], zz[n], zz[kl], key, zz[vl], value, no_headers,
                                            )  # fmt: skip
                                            b.count = n + 1
                                            b.size += size
                                            if ts > b.max_ts:
                                                b.max_ts = ts
                                            b.tokens.append(token)
                                            used += size
                                            if b.size == batch_size:
                                                self._close_batch(b)
                                            continue
                        else:
                            ps = None
                    else:
                        ps = None
                    if ps is not None:
                        b = ps.open
                        if b is None or not (size := b.append(ts, key, value, no_headers, batch_size)):
                            self._buffer_used = used
                            b, size = self._append_new(tp, ps, key, value, no_headers, ts, now, True)
                            used = self._buffer_used
                        b.tokens.append(token)
                        used += size
                        if b.size >= batch_size:
                            self._close_batch(b)
                        continue
            self._buffer_used = used
            try:
                ok = send(
                    topic=topic,
                    key=key,
                    value=value,
                    headers=headers,
                    partition=partition,
                    timestamp_ms=ts,
                    token=token,
                    now=now,
                )
            except Exception as exc:
                failed(token, exc)
                continue
            finally:
                used = self._buffer_used
            if not ok:
                records.appendleft(item)
                return False
        self._buffer_used = used
        return True

    def _pick(self, tp: _Topic) -> _Partition:
        """A random partition for a None key (the default partitioner)."""
        while True:
            ps = tp.pick[self._randbits(tp.pick_bits)]
            if ps is not None:
                return ps

    def _keyed(self, tp: _Topic, key: bytes) -> _Partition:
        """The default partitioner's choice for ``key`` (as Java's), remembered."""
        ps = tp.by_index[(murmur2(key) & 0x7FFFFFFF) % tp.n_parts]
        if len(tp.by_key) >= _HASH_CACHE:
            tp.by_key.clear()
        tp.by_key[key] = ps
        return ps

    def _partition_state(
        self, tp: _Topic, key: bytes | None, partition: int | None, token: object, *, strict: bool
    ) -> _Partition | None:
        """Where a record goes; None (and a DeliveryFailed) if its partition is not in the topic.

        Raises:
            IllegalArgumentError: ``strict`` and a partitioner chose no partition id.
        """
        if partition is None:
            if self._sticky is not None:
                partition = self._sticky.partition(tp.name, key, tp.partitions, tp.available)
            elif self._custom is not None:
                partition = self._custom(key, tp.partitions, tp.available)
            elif key is None:
                return self._pick(tp)
            else:
                return tp.by_key.get(key) or self._keyed(tp, key)
        ps = tp.parts.get(partition)
        if ps is None:
            if strict and (not isinstance(partition, int) or partition < 0):
                raise IllegalArgumentError(f"partition must be an int >= 0, not {partition!r}")
            self._metrics.record_errors += 1
            self._events.append(
                DeliveryFailed(
                    topic=tp.name,
                    partition=partition,
                    error=IllegalArgumentError(
                        f"partition {partition} is not in topic {tp.name!r} "
                        f"(partitions {tp.partitions[0]}..{tp.partitions[-1]})"
                    ),
                    tokens=[token],
                )
            )
        return ps

    def _append(
        self,
        tp: _Topic,
        ps: _Partition,
        key: bytes | None,
        value: bytes | None,
        hb: bytes,
        ts: int,
        token: object,
        now: float,
        chosen: bool,
    ) -> None:
        """Add a record to ``ps`` (its open batch, else a new one); ``chosen``: by the partitioner."""
        b = ps.open
        if b is None or not (size := b.append(ts, key, value, hb, self._batch_size)):
            b, size = self._append_new(tp, ps, key, value, hb, ts, now, chosen)
        b.tokens.append(token)
        self._buffer_used += size
        if b.size >= self._batch_size:
            self._close_batch(b)

    def _append_new(
        self,
        tp: _Topic,
        ps: _Partition,
        key: bytes | None,
        value: bytes | None,
        hb: bytes,
        ts: int,
        now: float,
        chosen: bool,
    ) -> tuple[_Batch, int]:
        """Append to a new batch of ``ps``: it has none open, or the open one is full (closed here).

        KIP-480: when the sticky partition's batch is full, the partitioner
        moves on (on closing it) and a None-key record goes to the next one.
        """
        if type(ts) is not int:  # (with an open batch, a bad one fails in its append)
            raise TypeError(f"timestamp_ms must be an int, not {type(ts).__name__}")
        full = ps.open
        if full is not None:
            self._close_batch(full)
            sticky = self._sticky
            if chosen and key is None and sticky is not None:
                ps = tp.parts[sticky.partition(tp.name, key, tp.partitions, tp.available)]
                b = ps.open
                if b is not None:
                    size = b.append(ts, key, value, hb, self._batch_size)
                    if size:
                        return b, size
                    self._close_batch(b)
        b = self._new_batch(ps, now)
        return b, b.append(ts, key, value, hb, self._batch_size)

    def _new_batch(self, ps: _Partition, now: float) -> _Batch:
        self._order += 1
        self._dirty = True
        b = _Batch(ps, now, self._linger, self._delivery_timeout, self._order)
        self._buffer_used += _BATCH_OVERHEAD  # b.size starts at the header size
        ps.queue.append(b)
        ps.open = b
        if ps not in self._queued:
            self._queued[ps] = None
        self._age.append(b)
        if self._linger > 0:
            self._lingering.append(b)
        return b

    def _close_batch(self, b: _Batch) -> None:
        """Stop appending to ``b`` (it is full, flushed, or the buffer is full)."""
        self._dirty = True
        ps = b.part
        if ps.open is b:
            ps.open = None
            self._pending += b.count  # counted from here on (pending_count)
        if b.state == OPEN:
            b.state = CLOSED
        if self._sticky is not None:
            tp = self._topics[ps.topic]
            self._sticky.on_new_batch(ps.topic, tp.partitions, tp.available, ps.partition)

    def _buffer_full(self) -> None:
        # As the Java accumulator when memory is exhausted: everything is
        # ready now, so the bytes drain as fast as the brokers take them.
        for ps in self._queued:
            if ps.open is not None:
                self._close_batch(ps.open)

    def flush(self, now: float) -> None:
        """Make every buffered batch sendable now, whatever ``linger_ms`` says."""
        self._now = now
        self._dirty = True
        for ps in list(self._queued):
            if ps.open is not None:
                self._close_batch(ps.open)

    def pending_count(self) -> int:
        """Records accepted and not yet delivered or failed."""
        n = self._pending
        for ps in self._queued:
            if ps.open is not None:
                n += ps.open.count
        return n

    def buffer_available(self) -> int:
        """``buffer_memory`` minus the bytes of records not yet completed."""
        return self._buffer_memory - self._buffer_used

    def events(self) -> list[ProducerEvent]:
        """Deliveries and failures since the last call (drains)."""
        ev = self._events
        self._events = []
        return ev

    def partitions_for(self, topic: str) -> set[int] | None:
        """The topic's partition ids from the latest metadata, or None if unknown."""
        parts: set[int] | None = self._client.cluster.partitions_for(topic)
        return parts

    def request_metadata(self, topic: str, now: float) -> None:
        """Ask for ``topic``'s metadata now (e.g. for ``partitions_for``)."""
        self._now = now
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
        self._now = now
        self._dirty = True
        if not self._closed:
            self._closed = True
            self.flush(now)

    def abort(self, now: float, error: KafkaError) -> None:
        """Fail every pending record with ``error`` and close the client's connections."""
        self._now = now
        self._closed = True
        for topic, waiting in list(self._waiting.items()):
            del self._waiting[topic]
            self._fail_waiting(topic, waiting, error)
        for b in list(self._age):
            if b.state != DONE:
                self._fail(b, error, unknown_outcome=False)
        self._age.clear()
        self._lingering.clear()
        for ps in self._queued:
            ps.queue.clear()
        self._queued.clear()
        if not self._client_closed:
            self._client_closed = True
            self._client.close(now)

    def metrics(self, now: float) -> dict[str, dict[str, float]]:
        """Producer metrics in the kafka-python shape: ``{'producer-metrics': {...}}``.

        Rates are per second over a window of up to 30 s.
        """
        m = self._metrics
        if now - m.window_start >= 30.0:
            m.window_start = now
            m.window_base = (m.records_sent, m.bytes_sent, m.record_errors, m.record_retries)
        span = max(now - m.window_start, 1e-3)
        r0, b0, e0, t0 = m.window_base
        batches = max(m.batches, 1)
        lat_n = max(m.latency_count, 1)
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
            "buffer-available-bytes": float(self._buffer_memory - self._buffer_used),
            "buffer-total-bytes": float(self._buffer_memory),
            "requests-in-flight": float(self._inflight_requests),
            "records-pending": float(self.pending_count()),
            "responses-with-trailing-bytes-total": float(self._client.responses_with_trailing_bytes),
        }
        # The version of each API last sent (ApiVersions negotiation, kproto.protocol.versions).
        return {"producer-metrics": values, "api-versions": named_versions(self._client.versions_sent())}

    # --- metadata -------------------------------------------------------------

    def _refresh_topic(self, tp: _Topic) -> None:
        cluster = self._client.cluster
        parts = cluster.partitions_for(tp.name)
        if not parts:
            return
        tp.partitions = sorted(parts)
        tp.available = sorted(cluster.available_partitions_for(tp.name) or ())
        states = tp.parts
        for p in tp.partitions:
            if p not in states:
                states[p] = _Partition(tp.name, p)
        tp.by_index = tuple(states[p] for p in tp.partitions)
        tp.n_parts = len(tp.by_index)
        tp.by_key.clear()  # the partition count may have changed
        choices = tuple(states[p] for p in tp.available) or tp.by_index
        n = len(choices)
        tp.pick_bits = bits = max(_PICK_BITS, (n - 1).bit_length())
        tp.pick = choices * ((1 << bits) // n) + (None,) * ((1 << bits) % n)

    def _wait_for_metadata(self, tp: _Topic, record: _Waiting, now: float) -> None:
        waiting = self._waiting.get(tp.name)
        if waiting is None:
            waiting = self._waiting[tp.name] = []
            self._client.add_topics([tp.name], now)
            self._client.request_metadata_update(now)
        waiting.append(record)
        self._buffer_used += record.size_bound
        self._pending += 1

    def _after_input(self, now: float) -> None:
        evs = self._client.events()  # the producer acts on cluster state, not on these
        if self._txn is not None and evs:  # transactions: but on a failed coordinator lookup
            self._txn.on_client_events(evs)
        version = self._client.cluster.version
        if version != self._meta_version:
            self._meta_version = version
            for tp in self._topics.values():
                self._refresh_topic(tp)
            if self._waiting:
                self._release_waiting(now)

    def _release_waiting(self, now: float) -> None:
        cluster = self._client.cluster
        for topic in list(self._waiting):
            tp = self._topics[topic]
            if not tp.partitions:
                err = cluster.topic_error(topic)
                if isinstance(err, int):
                    err = error_from_code(err) if err else None
                if err is not None and not err.retriable:
                    self._fail_waiting(topic, self._waiting.pop(topic), err)
                continue
            waiting = self._waiting.pop(topic)
            for _deadline, key, value, hb, partition, ts, token, upper in waiting:
                self._buffer_used -= upper
                self._pending -= 1
                ps = self._partition_state(tp, key, partition, token, strict=False)
                if ps is not None:
                    self._append(tp, ps, key, value, hb, ts, token, now, partition is None)

    def _fail_waiting(self, topic: str, waiting: list[_Waiting], error: KafkaError) -> None:
        for rec in waiting:
            self._buffer_used -= rec.size_bound
            self._pending -= 1
        self._metrics.record_errors += len(waiting)
        self._events.append(
            DeliveryFailed(topic=topic, partition=-1, error=error, tokens=[rec.token for rec in waiting])
        )
        if self._txn is not None:  # transactions: records failed make it abortable
            self._txn.on_failed(error)

    # --- deadlines --------------------------------------------------------------

    def _expire(self, now: float) -> None:
        """Fail batches past ``delivery_timeout_ms`` and records past ``max_block_ms`` (KIP-91)."""
        age = self._age
        while age and (age[0].state == DONE or age[0].deadline <= now):
            b = age.popleft()
            if b.state != DONE:
                ps = b.part
                err = KafkaTimeoutError(
                    f"expiring {b.count} record(s) for {ps.topic}-{ps.partition}: "
                    f"{(now - b.created) * 1000:.0f} ms has passed since batch creation"
                )
                if b.state != IN_FLIGHT:
                    try:
                        ps.queue.remove(b)
                    except ValueError:
                        pass
                    if not ps.queue:
                        self._queued.pop(ps, None)
                # A sequenced batch may or may not be on the broker: unresolved.
                if b.base_seq >= 0:
                    ps.lost = True
                self._fail(b, err, unknown_outcome=b.base_seq >= 0)
        for topic in [t for t, w in self._waiting.items() if w[0].deadline <= now]:
            waiting = self._waiting[topic]
            expired = [r for r in waiting if r.deadline <= now]
            kept = [r for r in waiting if r.deadline > now]
            if kept:
                self._waiting[topic] = kept
            else:
                del self._waiting[topic]
            self._fail_waiting(
                topic,
                expired,
                KafkaTimeoutError(f"topic {topic!r} not present in metadata after max_block_ms"),
            )

    # --- draining: batches into Produce requests --------------------------------

    def _ready_head(self, ps: _Partition, now: float) -> _Batch | None:
        """The partition's next batch to send if it may be sent now."""
        b = ps.queue[0]
        if b.state == OPEN:
            if b.linger_at > now and not self._closed:
                return None
        elif b.retry_at > now:
            return None
        if self._bump_wanted and (ps.lost or b.base_seq < 0):
            # Before an epoch bump re-sequences everything, the batches already
            # sequenced in partitions whose broker state is intact are resolved
            # under the old epoch: one may be on the broker already (a lost
            # answer), and only the old epoch's duplicate check can tell.
            return None
        if self._idempotent and b.base_seq >= 0 and ps.inflight:
            # A retried batch goes out only after no later batch of its
            # partition is in flight, so batches reach the broker in sequence
            # order (KIP-98); earlier ones (retries sent just before) may be.
            order = b.order
            for other in ps.inflight:
                if other.order > order:
                    return None
        return b

    def _drain(self, now: float) -> None:
        # Only after something that can make a batch sendable: an input (an
        # answer, a connection, a timer), a new or closed batch, flush/close.
        # The driver pulls commands() and data_to_send() every turn; under
        # load most turns change nothing and skip the scan of the partitions.
        if self._txn is not None:  # transactions: the next coordinator request
            self._txn.poll(now)
        if not self._dirty:
            return
        self._dirty = False
        self._last_drain = now
        if self._idempotent and not self._producer_id_ready(now):
            return
        if not self._queued:
            return
        if self._fatal is not None:
            for b in list(self._age):
                if b.state in (OPEN, CLOSED):
                    b.part.queue.remove(b)
                    if not b.part.queue:
                        self._queued.pop(b.part, None)
                    self._fail(b, self._fatal, unknown_outcome=False)
            return
        client = self._client
        cluster = client.cluster
        by_node: dict[int, list[_Partition]] = {}
        blocked: set[int] = set()
        missing_leader = False
        txn = self._txn
        for ps in self._queued:
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
        for node, parts in by_node.items():
            while parts and self._node_inflight.get(node, 0) < self._max_in_flight:
                if not self._send_request(node, parts, now):
                    break

    def _send_request(self, node: int, parts: list[_Partition], now: float) -> bool:
        """Build and send one Produce request to ``node`` from the heads of ``parts``."""
        size = _REQUEST_OVERHEAD
        batches: list[_Batch] = []
        topic_data: dict[str, list[PartitionProduceData]] = {}
        keep: list[_Partition] = []
        for ps in parts:
            if not ps.queue:
                continue
            b = self._ready_head(ps, now)
            if b is None:
                continue
            if b.state == OPEN:
                self._close_batch(b)  # sealed from here on, even if it waits for the next request
            if self._idempotent:
                self._assign_sequence(ps, b)
            payload = self._seal(b)
            n = len(payload) + _PARTITION_OVERHEAD + (0 if ps.topic in topic_data else len(ps.topic) + 8)
            if batches and size + n > self._max_request_size:
                keep.append(ps)  # next request
                continue
            size += n
            ps.queue.popleft()
            if not ps.queue:
                self._queued.pop(ps, None)
            else:
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
            transactional_id=self._config.transactional_id,
            acks=self._acks,
            timeout_ms=self._config.request_timeout_ms,
            topic_data=[TopicProduceData(name=t, partition_data=pds) for t, pds in topic_data.items()],
        )
        self._inflight_requests += 1
        self._inflight_batches += len(batches)
        self._node_inflight[node] = self._node_inflight.get(node, 0) + 1
        m = self._metrics
        m.requests += 1
        expect = self._acks != 0

        def on_response(response: ProduceResponse | None, error: KafkaError | None) -> None:
            self._on_produce_response(node, batches, now, response, error)

        self._client.send(request, now=now, node_id=node, callback=on_response, expect_response=expect)
        return True

    def _seal(self, b: _Batch) -> bytearray:
        """Encode ``b`` (once) and stamp the current producer id/epoch/sequence into it."""
        payload = b.payload
        pid, epoch = (self._pid, self._epoch) if self._idempotent else (-1, -1)
        if payload is None:
            records = b.encoded()
            b.pieces = []
            if self._codec:
                records = compress(self._codec, records)
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
            m = self._metrics
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

    # --- outcomes -----------------------------------------------------------------

    def _on_produce_response(
        self,
        node: int,
        batches: list[_Batch],
        sent_at: float,
        response: ProduceResponse | None,
        error: KafkaError | None,
    ) -> None:
        now = self._now
        self._inflight_requests -= 1
        self._node_inflight[node] -= 1
        self._inflight_batches -= len(batches)
        m = self._metrics
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
        by_tp: dict[tuple[str, int], _Batch | None] = {(b.part.topic, b.part.partition): b for b in batches}
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

    def _delivered(self, b: _Batch, base_offset: int, log_append_time_ms: int) -> None:
        ps = b.part
        if self._idempotent and b.base_seq >= 0 and b.sealed_epoch == self._epoch:
            end = (b.base_seq + b.count) % _SEQ_WRAP
            if _seq_before(ps.acked_next, end):
                ps.acked_next = end
        if b.state == DONE:  # expired while in flight; the user was already told
            return
        b.state = DONE
        m = self._metrics
        m.records_sent += b.count
        m.bytes_sent += b.size
        self._buffer_used -= b.size
        self._pending -= b.count
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

    def _batch_error(self, b: _Batch, error: KafkaError, code: int, now: float) -> None:
        """``b`` came back with ``error`` (``code`` 0 if no broker error code): retry or fail."""
        if getattr(error, "refresh_metadata", False):
            self._client.request_metadata_update(now)
        if b.state == DONE:
            if self._idempotent and b.base_seq >= 0:
                self._bump_wanted = True
            return
        ps = b.part
        if code == _ERR_MESSAGE_TOO_LARGE and b.count > 1:
            # As the Java client: split the batch in two and send the halves;
            # idempotent sequences stay contiguous (this attempt was refused).
            self._split(b, now)
            return
        if code == 0 or code in _MAYBE_WRITTEN_CODES:
            b.maybe_written = True
        if self._idempotent:
            if (
                code == _ERR_OUT_OF_ORDER_SEQUENCE
                and b.sealed_epoch == self._epoch
                and _seq_before(b.base_seq + b.count - 1, ps.acked_next)
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
                    self._bump_wanted = True
                    if self._txn is not None:
                        # transactions: abortable (fenced: fatal); abort_transaction
                        # bumps the epoch (KIP-360), not this batch.
                        self._fail(b, error, unknown_outcome=False)
                        return
                    ps.lost = True
                self._requeue(b, now, count=False)
                return
        definite = not b.maybe_written  # no attempt can have been written
        if (
            getattr(error, "retriable", False)
            and b.attempts <= self._retries
            and now + self._retry_backoff < b.deadline
        ):
            self._requeue(b, now, count=True)
            return
        if self._idempotent and b.base_seq >= 0 and definite:
            self._shift_sequences(ps, b)
        if self._idempotent and b.base_seq >= 0 and not definite:
            ps.lost = True
        self._fail(b, error, unknown_outcome=self._idempotent and b.base_seq >= 0 and not definite)

    def _split(self, b: _Batch, now: float) -> None:
        """Replace ``b`` (refused as too large) by two batches of half its records each."""
        ps = b.part
        payload = b.payload
        assert payload is not None
        (batch,) = read_batches(bytes(payload))
        records = batch.records()
        half = len(records) // 2
        self._buffer_used -= b.size
        self._metrics.record_retries += b.count
        seq = b.base_seq
        for recs, tokens in ((records[:half], b.tokens[:half]), (records[half:], b.tokens[half:])):
            nb = _Batch(ps, b.created, self._linger, self._delivery_timeout, b.order)
            for r in recs:
                nb.append(r.timestamp, r.key, r.value, encode_headers(r.headers), 1 << 62)  # no limit
            nb.tokens = list(tokens)
            nb.state = CLOSED
            nb.attempts = b.attempts
            nb.reseq = b.reseq
            nb.maybe_written = b.maybe_written
            if seq >= 0:
                nb.base_seq = seq
                seq = (seq + nb.count) % _SEQ_WRAP
            self._buffer_used += nb.size
            self._requeue(nb, now - self._retry_backoff, count=False)  # no backoff
            # keep _age in deadline order (a split is rare: a linear insert is fine)
            i = len(self._age)
            while i and self._age[i - 1].deadline > nb.deadline:
                i -= 1
            self._age.insert(i, nb)
        b.state = DONE
        b.tokens = []
        b.payload = None

    def _requeue(self, b: _Batch, now: float, *, count: bool) -> None:
        """Put ``b`` back in its partition's queue, in creation order, after a backoff."""
        ps = b.part
        b.state = CLOSED
        b.retry_at = now + self._retry_backoff
        heapq.heappush(self._retry_times, b.retry_at)
        if count:
            self._metrics.record_retries += b.count
        q = ps.queue
        i = 0
        for other in q:
            if other.order > b.order:
                break
            i += 1
        q.insert(i, b)
        if ps not in self._queued:
            self._queued[ps] = None

    def _shift_sequences(self, ps: _Partition, failed: _Batch) -> None:
        """``failed`` never reached the log: later batches move down by its record count."""
        n = failed.count
        for other in (*ps.inflight, *ps.queue):
            if other.base_seq > failed.base_seq:
                other.base_seq = (other.base_seq - n) % _SEQ_WRAP
                other.reseq = True
        ps.next_seq = (ps.next_seq - n) % _SEQ_WRAP

    def _fail(self, b: _Batch, error: KafkaError, *, unknown_outcome: bool) -> None:
        ps = b.part
        if ps.open is b:
            ps.open = None  # its records were not counted in _pending yet
        else:
            self._pending -= b.count
        if unknown_outcome:
            self._bump_wanted = True
        b.state = DONE
        self._buffer_used -= b.size
        self._metrics.record_errors += b.count
        self._events.append(
            DeliveryFailed(topic=ps.topic, partition=ps.partition, error=error, tokens=b.tokens)
        )
        b.tokens = []
        b.pieces = []
        b.payload = None
        if self._txn is not None:  # transactions: records failed make it abortable
            self._txn.on_failed(error)

    # --- idempotence: producer id, epoch bumps (KIP-98, KIP-360) ----------------

    def _needs_pid(self) -> bool:
        if self._txn is not None:  # transactions: the transaction manager gets it
            return False
        return not self._pid_ok or self._bump_wanted

    def _assign_sequence(self, ps: _Partition, b: _Batch) -> None:
        if b.base_seq < 0:
            b.base_seq = ps.next_seq
            ps.next_seq = (ps.next_seq + b.count) % _SEQ_WRAP

    def _producer_id_ready(self, now: float) -> bool:
        """True when batches may be sequenced; else get (or bump) the producer id."""
        if not self._needs_pid():
            return True
        if self._pid_in_flight or now < self._pid_retry_at:
            return False
        if self._bump_wanted and self._pid_ok:
            if self._resolvable_batches():
                return True  # _ready_head lets only those out
            if self._inflight_batches:
                return False  # bump only once every sequence on the wire is resolved
        node: int | None = None
        pid, epoch = -1, -1
        if self._pid_ok and self._epoch < _MAX_EPOCH:
            # KIP-360: bump with the current id/epoch where the broker knows how (v3+).
            for n in self._ready_nodes():
                version = self._client.api_version(n, _API_INIT_PRODUCER_ID)
                if version is not None and version >= 3:
                    node, pid, epoch = n, self._pid, self._epoch
                    break
        request = InitProducerIdRequest(
            transactional_id=None,
            # Ignored without a transactional id; Java's default, in case a broker checks it.
            transaction_timeout_ms=60000,
            producer_id=pid,
            producer_epoch=epoch,
        )
        self._pid_in_flight = True
        self._client.send(request, now=now, node_id=node, callback=self._on_init_producer_id)
        return False

    def _resolvable_batches(self) -> bool:
        """Sequenced batches queued in partitions whose broker state is intact."""
        for ps in self._queued:
            if not ps.lost and ps.queue[0].base_seq >= 0:
                return True
        return False

    def _ready_nodes(self) -> list[int]:
        cluster = self._client.cluster
        nodes: list[int] = []
        for tp in self._topics.values():
            for p in tp.partitions:
                leader = cluster.leader_for(tp.name, p)
                if (
                    leader is not None
                    and leader >= 0
                    and leader not in nodes
                    and self._client.is_ready(leader)
                ):
                    nodes.append(leader)
        return nodes

    def _on_init_producer_id(self, response: InitProducerIdResponse | None, error: KafkaError | None) -> None:
        now = self._now
        self._pid_in_flight = False
        if error is None and response is not None and response.error_code:
            error = error_from_code(response.error_code)
        if error is not None or response is None:
            if error is not None and not error.retriable:
                self._fatal = error
                self._pid_ok = True
                self._bump_wanted = False
                return
            self._pid_retry_at = now + self._retry_backoff
            return
        self._pid = response.producer_id
        self._epoch = response.producer_epoch
        self._pid_ok = True
        if self._bump_wanted:
            self._bump_wanted = False
            # New epoch: every partition's sequence restarts at 0; queued
            # batches keep their order and get new sequences (KIP-360).
            for tp in self._topics.values():
                for ps in tp.parts.values():
                    ps.next_seq = 0
                    ps.acked_next = 0
                    ps.lost = False
                    for b in ps.queue:
                        if b.base_seq >= 0:
                            b.base_seq = ps.next_seq
                            ps.next_seq += b.count
                            b.reseq = False
                            b.maybe_written = False

    # --- transactions (KIP-98): see kproto.producer.transactions ----------------

    def _transactions(self) -> TransactionManager:
        if self._txn is None:
            raise IllegalStateError("transactional method called without a transactional_id")
        if self._closed:
            raise IllegalStateError("the producer is closed")
        return self._txn

    def init_transactions(self, now: float) -> TransactionOp:
        """Get the producer id and epoch of ``transactional_id`` (fences older producers).

        Returns:
            An op; it is ``done`` after a later driving input, ``error`` set on failure.

        Raises:
            IllegalStateError: no transactional id, closed, or already initialised.
        """
        self._now = now
        return self._transactions().init_transactions(now)

    def begin_transaction(self, now: float) -> None:
        """Start a transaction; records may be sent until it is committed or aborted.

        Raises:
            IllegalStateError: not initialised, or a transaction is under way.
            KafkaError: the fatal error of a fenced or failed producer.
        """
        self._now = now
        self._transactions().begin_transaction(now)

    def send_offsets_to_transaction(self, offsets: Any, group: Any, now: float) -> TransactionOp:
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
        self._now = now
        return self._transactions().send_offsets_to_transaction(offsets, group, now)

    def commit_transaction(self, now: float) -> TransactionOp:
        """Flush, then commit the transaction once all its records and offsets are in.

        Raises:
            IllegalStateError: not in a transaction.
            KafkaError: the error that made the transaction abortable, or a fatal one.
        """
        self._now = now
        return self._transactions().commit_transaction(now)

    def abort_transaction(self, now: float) -> TransactionOp:
        """Fail unsent records with ``TransactionAbortedError`` and abort the transaction.

        Raises:
            IllegalStateError: not in a transaction.
            KafkaError: the fatal error of a fenced or failed producer.
        """
        self._now = now
        return self._transactions().abort_transaction(now)

    def transaction_state(self) -> str | None:
        """The transaction state name (``'READY'``...), None without a transactional id."""
        return None if self._txn is None else self._txn.state

    def check_transactional_send(self) -> None:
        """Raise what ``send`` would raise for the transaction state (facades call it first)."""
        if self._txn is not None:
            self._txn.check_send()

    def _txn_fail_unsent(self, error: KafkaError) -> None:
        """Abort: fail every batch and waiting record not on the wire."""
        for topic, waiting in list(self._waiting.items()):
            del self._waiting[topic]
            self._fail_waiting(topic, waiting, error)
        for b in list(self._age):
            if b.state == OPEN or b.state == CLOSED:
                ps = b.part
                try:
                    ps.queue.remove(b)
                except ValueError:
                    pass
                if not ps.queue:
                    self._queued.pop(ps, None)
                if b.base_seq >= 0:
                    # A retried batch: its sequence was used and now never will
                    # be; the abort ends with an epoch bump that restarts them.
                    self._bump_wanted = True
                self._fail(b, error, unknown_outcome=False)

    def _txn_reset_sequences(self) -> None:
        """A new epoch: every partition's sequence restarts at 0 (nothing is queued)."""
        self._bump_wanted = False
        for tp in self._topics.values():
            for ps in tp.parts.values():
                ps.next_seq = 0
                ps.acked_next = 0
                ps.lost = False

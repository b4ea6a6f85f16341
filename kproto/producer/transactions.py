"""The transactional producer (KIP-98): the transaction state machine of a ProducerCore.

Theory of operation
===================

A producer with a ``transactional_id`` is idempotent, and every record it
sends belongs to a transaction. :class:`TransactionManager` owns the
transaction's state and talks to the *transaction coordinator* (found with
FindCoordinator, key type 1, through the client); the :class:`ProducerCore`
keeps batching and producing as usual. The manager reaches the producer
through two narrow seams: a :class:`TransactionHost` (the sink: time, waking
the drain, flushing, the records pending, failing the unsent ones) and the
:class:`~kproto.producer.idempotence.IdempotenceState` (producer id, epoch,
sequences). The producer has four hooks into this module:

- the drain calls :meth:`TransactionManager.poll` first: the manager sends
  its next coordinator request, if any is due;
- the drain holds back a batch of a partition that is not yet part of the
  transaction and asks :meth:`want` for it: the manager adds every such
  partition with one AddPartitionsToTxn request, and the batches go once
  the coordinator accepted their partition;
- sealed batches carry the transactional attribute (bit 4) and Produce
  requests the transactional id;
- a failed batch (:meth:`on_failed`) makes the transaction abortable, or,
  for a fenced producer, fatal.

User calls (each returns a :class:`TransactionOp` the driver waits on; the
op completes inside a later driving input, with ``error`` None or set)::

    state          | call / input                        | action                             | next
    ---------------+-------------------------------------+------------------------------------+---------------
    UNINITIALIZED  | init_transactions()                 | find coordinator, InitProducerId   | INITIALIZING
    INITIALIZING   | InitProducerId ok                   | take producer id and epoch         | READY
    READY          | begin_transaction()                 | (local only)                       | IN_TRANSACTION
    IN_TRANSACTION | send() to a new partition           | AddPartitionsToTxn before its batch| IN_TRANSACTION
    IN_TRANSACTION | send_offsets_to_transaction()       | AddOffsetsToTxn, TxnOffsetCommit   | IN_TRANSACTION
    IN_TRANSACTION | commit_transaction()                | flush; once every batch and offset | COMMITTING
                   |                                     | is done: EndTxn(commit)            |
    IN_TRANSACTION | abort_transaction()                 | fail unsent batches, wait for the  | ABORTING
    ABORTABLE_ERROR|                                     | in-flight ones, EndTxn(abort)      |
    COMMITTING     | EndTxn ok                           |                                    | READY
    ABORTING       | EndTxn ok                           | (epoch bump if a sequence is       | READY
                   |                                     | unresolved, KIP-360)               |
    IN_TRANSACTION | a batch, partition add or offset    | fail the pending commit / offsets  | ABORTABLE_ERROR
    COMMITTING     | commit fails (abortable error)      | op and unsent records; only abort  |
                   |                                     | is allowed                         |
    any            | fenced (PRODUCER_FENCED,            | fail everything pending            | FATAL
                   | INVALID_PRODUCER_EPOCH), an         |                                    |
                   | unexpected error                    |                                    |

Anything not listed raises :class:`IllegalStateError` at the call (FATAL:
the fatal error; ABORTABLE_ERROR: ``send`` and ``commit`` raise the error
that made the transaction abortable). Calling ``init``/``commit``/``abort``
again while the same call is still under way (the facade timed out waiting
for it) returns the same op, as the Java client allows.

Coordinator errors: COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS,
UNKNOWN_TOPIC_OR_PARTITION and other retriable errors are retried after
``retry_backoff_ms``; NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE and a lost
connection also look the coordinator up again. One coordinator request is in
flight at a time (the coordinator serialises a transaction's requests
anyway, and answers CONCURRENT_TRANSACTIONS otherwise).

An EndTxn is only sent when the transaction touched the broker (a
partition or a group was added); an empty transaction ends locally.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

from kproto.client import COORDINATOR_GROUP, COORDINATOR_TRANSACTION
from kproto.errors import (
    ConcurrentTransactionsError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    FencedInstanceIdError,
    GroupAuthorizationFailedError,
    IllegalArgumentError,
    IllegalGenerationError,
    IllegalStateError,
    InvalidProducerEpochError,
    KafkaConnectionError,
    KafkaError,
    NotCoordinatorError,
    OperationNotAttemptedError,
    ProducerFencedError,
    TopicAuthorizationFailedError,
    TransactionAbortedError,
    UnknownMemberIdError,
    UnknownTopicOrPartitionError,
    error_from_code,
)
from kproto.events import CoordinatorLookupFailed, Event
from kproto.protocol.messages.add_offsets_to_txn import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse
from kproto.protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnTopic,
)
from kproto.protocol.messages.end_txn import EndTxnRequest, EndTxnResponse
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse
from kproto.protocol.messages.txn_offset_commit import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
    TxnOffsetCommitResponse,
)

if TYPE_CHECKING:
    from kproto.client import Client
    from kproto.consumer.types import OffsetAndMetadata, TopicPartition
    from kproto.producer.accumulator import PartitionState
    from kproto.producer.config import ProducerConfig
    from kproto.producer.idempotence import IdempotenceState

__all__ = ["Offsets", "TransactionHost", "TransactionManager", "TransactionOp"]

#: ``send_offsets_to_transaction``'s offsets: ``{TopicPartition: OffsetAndMetadata}``,
#: or ``{(topic, partition): offset}``.
Offsets: TypeAlias = (
    "Mapping[TopicPartition, OffsetAndMetadata | int] | Mapping[tuple[str, int], OffsetAndMetadata | int]"
)

UNINITIALIZED: Final = "UNINITIALIZED"
INITIALIZING: Final = "INITIALIZING"
READY: Final = "READY"
IN_TRANSACTION: Final = "IN_TRANSACTION"
COMMITTING: Final = "COMMITTING"
ABORTING: Final = "ABORTING"
ABORTABLE_ERROR: Final = "ABORTABLE_ERROR"
FATAL: Final = "FATAL"

#: FindCoordinator key types (KIP-98): a transactional id, a consumer group.
_KEY_TXN: Final = COORDINATOR_TRANSACTION
_KEY_GROUP: Final = COORDINATOR_GROUP
_API_INIT_PRODUCER_ID: Final = InitProducerIdRequest.API_KEY

_REFIND: Final = frozenset((CoordinatorNotAvailableError.errno, NotCoordinatorError.errno))
_RETRY: Final = frozenset(
    (CoordinatorLoadInProgressError.errno, ConcurrentTransactionsError.errno, UnknownTopicOrPartitionError.errno,
     OperationNotAttemptedError.errno)
)  # fmt: skip
_FENCED: Final = frozenset((InvalidProducerEpochError.errno, ProducerFencedError.errno))
#: TxnOffsetCommit: the group moved on (Java: CommitFailedException, abortable).
_GROUP_ABORTABLE: Final = frozenset(
    (GroupAuthorizationFailedError.errno, IllegalGenerationError.errno, UnknownMemberIdError.errno,
     FencedInstanceIdError.errno)
)  # fmt: skip


class TransactionHost(Protocol):
    """What the transaction manager needs of its producer (the sink provides it)."""

    @property
    def now(self) -> float:
        """The latest time a call or a driving input brought."""

    @property
    def last_drain(self) -> float:
        """When the producer last drained (a backed-off request due before then was tried)."""

    def wake(self) -> None:
        """Something may have become sendable: drain on the next pull."""

    def flush(self, now: float) -> None:
        """Make every buffered batch sendable now."""

    def pending_count(self) -> int:
        """Records accepted and not yet delivered or failed."""

    def fail_unsent(self, error: KafkaError) -> None:
        """Fail every batch and waiting record not on the wire with ``error``."""


class TransactionOp:
    """One user call (``init_transactions``, ``commit_transaction``...) under way."""

    __slots__ = ("done", "error", "kind")

    def __init__(self, kind: str) -> None:
        #: Which call: 'init', 'commit', 'abort' or 'offsets'.
        self.kind = kind
        #: True once it finished, successfully or not.
        self.done = False
        #: Why it failed, or None.
        self.error: KafkaError | None = None

    def _finish(self, error: KafkaError | None = None) -> None:
        if not self.done:
            self.done = True
            self.error = error

    def __repr__(self) -> str:
        return f"TransactionOp({self.kind!r}, done={self.done}, error={self.error!r})"


class _Offsets:
    """A ``send_offsets_to_transaction`` call: the group, its metadata and the offsets."""

    __slots__ = ("generation_id", "group_id", "group_instance_id", "member_id", "op", "topics", "added")

    def __init__(self, group: Any, offsets: list[TxnOffsetCommitRequestTopic], op: TransactionOp) -> None:
        group_id: object = group
        self.generation_id, self.member_id, self.group_instance_id = -1, "", None
        if not isinstance(group, str):
            # Java's ConsumerGroupMetadata, or anything shaped like it.
            group_id = getattr(group, "group_id", None)
            self.generation_id = int(getattr(group, "generation_id", -1))
            self.member_id = str(getattr(group, "member_id", "") or "")
            self.group_instance_id = getattr(group, "group_instance_id", None)
        if not isinstance(group_id, str) or not group_id:
            raise IllegalArgumentError(
                "send_offsets_to_transaction needs a group id (str) or the consumer's group metadata"
            )
        self.group_id: str = group_id
        self.topics = offsets
        self.op = op
        #: AddOffsetsToTxn done: the TxnOffsetCommit is next.
        self.added = False


def _offset_topics(offsets: Mapping[Any, Any]) -> list[TxnOffsetCommitRequestTopic]:
    """``{TopicPartition: OffsetAndMetadata | int}`` as TxnOffsetCommit topics."""
    if not isinstance(offsets, Mapping):
        raise IllegalArgumentError("offsets must be a dict {TopicPartition: OffsetAndMetadata}")
    by_topic: dict[str, list[TxnOffsetCommitRequestPartition]] = {}
    for tp, om in offsets.items():
        topic, partition = tp
        if isinstance(om, int):
            offset, metadata, epoch = om, "", -1
        else:
            offset = om.offset
            metadata = getattr(om, "metadata", "") or ""
            epoch = getattr(om, "leader_epoch", -1)
            epoch = -1 if epoch is None else epoch
        if not isinstance(offset, int) or offset < 0:
            raise IllegalArgumentError(f"offset for {topic}-{partition} must be an int >= 0, not {offset!r}")
        by_topic.setdefault(topic, []).append(
            TxnOffsetCommitRequestPartition(
                partition_index=partition,
                committed_offset=offset,
                committed_leader_epoch=epoch,
                committed_metadata=metadata,
            )
        )
    return [TxnOffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in by_topic.items()]


class TransactionManager:
    """The transaction state of one producer (see the module docstring).

    Args:
        host: the producer's side (time, drain, pending records).
        client: the :class:`kproto.client.Client` (coordinators, requests).
        ids: the producer id, epoch and sequences.
        config: validated options with a ``transactional_id`` (also
            ``transaction_timeout_ms``, and ``retry_backoff_ms`` between
            retries of a coordinator request).
    """

    def __init__(self, host: TransactionHost, client: Client, ids: IdempotenceState, config: ProducerConfig) -> None:
        assert config.transactional_id is not None
        self._host = host
        self._client = client
        self._ids = ids
        self._config = config
        self.transactional_id: str = config.transactional_id
        self.state = UNINITIALIZED
        #: The error of ABORTABLE_ERROR or FATAL.
        self.error: KafkaError | None = None
        #: The init/commit/abort call under way.
        self._op: TransactionOp | None = None
        #: Partitions of the current transaction the coordinator accepted.
        self.added: set[PartitionState] = set()
        #: Partitions with a batch waiting for AddPartitionsToTxn.
        self._wanted: dict[PartitionState, None] = {}
        #: Partitions in the AddPartitionsToTxn request in flight.
        self._adding: list[PartitionState] = []
        self._offsets: deque[_Offsets] = deque()
        #: The transaction touched the broker: EndTxn is needed.
        self._started = False
        self._in_flight = False
        self._retry_at = 0.0
        #: After an abort: bump the epoch before the next transaction (KIP-360).
        self._bumping = False

    # --- user calls --------------------------------------------------------------

    def init_transactions(self, now: float) -> TransactionOp:
        """Get a producer id and epoch for the transactional id (fencing older instances)."""
        if self.state == INITIALIZING and self._op is not None and self._op.kind == "init":
            return self._op
        self._check(UNINITIALIZED, "init_transactions")
        self.state = INITIALIZING
        return self._start("init")

    def begin_transaction(self, now: float) -> None:
        """Start a transaction (local only: nothing is sent until a record or offsets are)."""
        self._check(READY, "begin_transaction")
        self.state = IN_TRANSACTION
        self.added.clear()
        self._wanted.clear()
        self._started = False

    def send_offsets_to_transaction(self, offsets: Offsets, group: object, now: float) -> TransactionOp:
        """Add a consumer group's offsets to the transaction (committed with it)."""
        self._check(IN_TRANSACTION, "send_offsets_to_transaction")
        op = TransactionOp("offsets")
        topics = _offset_topics(offsets)
        self._offsets.append(_Offsets(group, topics, op))
        self._host.wake()
        return op

    def commit_transaction(self, now: float) -> TransactionOp:
        """Flush, then commit once every record and offset of the transaction is in."""
        if self.state == COMMITTING and self._op is not None:
            return self._op
        self._check(IN_TRANSACTION, "commit_transaction")
        self.state = COMMITTING
        self._host.flush(now)
        return self._start("commit")

    def abort_transaction(self, now: float) -> TransactionOp:
        """Drop unsent records, let in-flight ones finish, then abort."""
        if self.state == ABORTING and self._op is not None:
            return self._op
        if self.state != ABORTABLE_ERROR:
            self._check(IN_TRANSACTION, "abort_transaction")
        self.state = ABORTING
        return self._start("abort")

    def check_send(self) -> None:
        """Raise unless records may be sent now (inside a transaction)."""
        state = self.state
        if state == IN_TRANSACTION:
            return
        if self.error is not None and state in (ABORTABLE_ERROR, FATAL):
            raise self.error
        raise IllegalStateError(
            f"cannot send with transactional_id={self.transactional_id!r} in state {state}: "
            + (
                "call init_transactions() first"
                if state == UNINITIALIZED
                else "call begin_transaction() first"
            )
        )

    # --- hooks from the core ------------------------------------------------------

    def want(self, ps: PartitionState) -> None:
        """A batch of ``ps`` is ready but the partition is not in the transaction yet."""
        if ps not in self._wanted and ps not in self._adding:
            self._wanted[ps] = None

    def on_failed(self, error: KafkaError) -> None:
        """Records of the transaction failed: it can only be aborted now (fenced: fatal)."""
        if self.state in (IN_TRANSACTION, COMMITTING):
            code = getattr(error, "errno", None)
            if code in _FENCED or isinstance(error, ProducerFencedError):
                self._fatal(ProducerFencedError(f"producer fenced: {error}"))
            else:
                self._abortable(error)

    def on_client_events(self, events: Sequence[Event]) -> None:
        """A coordinator lookup that will not succeed by retrying."""
        for ev in events:
            if isinstance(ev, CoordinatorLookupFailed):
                if ev.key_type == _KEY_TXN and ev.key == self.transactional_id:
                    self._fatal(ev.error)
                elif ev.key_type == _KEY_GROUP and self._offsets and self._offsets[0].group_id == ev.key:
                    self._abortable(ev.error)

    def get_timer(self) -> float | None:
        """When a backed-off coordinator request is due."""
        if not self._in_flight and self._retry_at > self._host.last_drain:
            return self._retry_at
        return None

    def poll(self, now: float) -> None:
        """Send the next coordinator request, if one is due (called by the sink's drain)."""
        if self._in_flight or now < self._retry_at:
            return
        state = self.state
        if state == INITIALIZING or self._bumping:
            self._init_producer_id(now)
        elif state in (IN_TRANSACTION, COMMITTING):
            if self._wanted:
                self._add_partitions(now)
            elif self._offsets:
                self._send_offsets(now)
            elif state == COMMITTING and not self._adding and self._host.pending_count() == 0:
                self._end(True, now)
        elif state == ABORTABLE_ERROR:
            # As the Java client: records not sent yet fail now with the error
            # (flush returns); only abort_transaction() is left to do.
            if self.error is not None and self._host.pending_count():
                self._host.fail_unsent(self.error)
        elif state == ABORTING:
            self._host.fail_unsent(TransactionAbortedError("the transaction was aborted"))
            self._wanted.clear()
            while self._offsets:
                self._offsets.popleft().op._finish(TransactionAbortedError("the transaction was aborted"))
            if self._host.pending_count() == 0:
                self._end(False, now)

    # --- requests --------------------------------------------------------------------

    def _coordinator(self, key: str, key_type: int, now: float) -> int | None:
        node: int | None = self._client.coordinator(key, key_type, now)
        return node

    def _send(
        self, key: str, key_type: int, request: Any, on_response: Callable[[Any], None], now: float, **kw: Any
    ) -> None:
        node = self._coordinator(key, key_type, now)
        if node is None:
            return  # looking it up; the answer is a driving input, which drains again
        self._in_flight = True
        host = self._host

        def callback(response: Any, error: KafkaError | None) -> None:
            self._in_flight = False
            host.wake()
            if error is not None:
                if self._adding:  # AddPartitionsToTxn: its partitions are wanted again
                    self._wanted.update(dict.fromkeys(self._adding))
                    self._adding = []
                if isinstance(error, KafkaConnectionError):
                    self._client.mark_coordinator_dead(key, key_type, host.now)
                self._retry_or_fail(error, host.now)
                return
            self._retry_at = 0.0  # the backoff was for the request answered now
            on_response(response)

        self._client.send(request, now=now, node_id=node, callback=callback, **kw)

    def _init_producer_id(self, now: float) -> None:
        ids = self._ids
        pid, epoch = -1, -1
        if ids.has_id and self._bumping:
            node = self._coordinator(self.transactional_id, _KEY_TXN, now)
            version = None if node is None else self._client.api_version(node, _API_INIT_PRODUCER_ID)
            if version is not None and version >= 3:
                # KIP-360: bump our own epoch (the coordinator checks it is ours).
                # Older brokers: a plain InitProducerId for a transactional id
                # bumps the epoch too.
                pid, epoch = ids.producer_id, ids.epoch
        request = InitProducerIdRequest(
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self._config.transaction_timeout_ms,
            producer_id=pid,
            producer_epoch=epoch,
        )
        self._send(self.transactional_id, _KEY_TXN, request, self._on_init_producer_id, now)

    def _on_init_producer_id(self, response: InitProducerIdResponse) -> None:
        if response.error_code:
            self._on_error(response.error_code, "InitProducerId")
            return
        ids = self._ids
        # A new epoch of our id (a bump): every sequence restarts at 0.
        ids.new_producer_id(
            response.producer_id, response.producer_epoch, restart=ids.has_id or self._bumping
        )
        self._bumping = False
        self.state = READY
        self._complete()

    def _add_partitions(self, now: float) -> None:
        parts = list(self._wanted)
        by_topic: dict[str, list[int]] = {}
        for ps in parts:
            by_topic.setdefault(ps.topic, []).append(ps.partition)
        request = AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=self.transactional_id,
            v3_and_below_producer_id=self._ids.producer_id,
            v3_and_below_producer_epoch=self._ids.epoch,
            v3_and_below_topics=[AddPartitionsToTxnTopic(name=t, partitions=p) for t, p in by_topic.items()],
        )

        def on_response(response: AddPartitionsToTxnResponse) -> None:
            self._adding = []
            if response.error_code:
                self._wanted.update(dict.fromkeys(parts))
                self._on_error(response.error_code, "AddPartitionsToTxn")
                return
            codes: dict[tuple[str, int], int] = {}
            for tr in response.results_by_topic_v3_and_below:
                for pr in tr.results_by_partition:
                    codes[(tr.name, pr.partition_index)] = pr.partition_error_code
            worst = 0
            for ps in parts:
                code = codes.get((ps.topic, ps.partition), OperationNotAttemptedError.errno)
                if code == 0:
                    self.added.add(ps)
                    self._started = True
                else:
                    self._wanted[ps] = None
                    if worst == 0 or worst == OperationNotAttemptedError.errno:
                        worst = code
            if worst:
                self._on_error(worst, "AddPartitionsToTxn")

        for ps in parts:
            del self._wanted[ps]
        self._adding = parts
        self._send(self.transactional_id, _KEY_TXN, request, on_response, now)
        if not self._in_flight:  # no coordinator yet: try again on the next drain
            self._wanted.update(dict.fromkeys(parts))
            self._adding = []

    def _send_offsets(self, now: float) -> None:
        item = self._offsets[0]
        ids = self._ids
        if not item.added:
            request: Any = AddOffsetsToTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=ids.producer_id,
                producer_epoch=ids.epoch,
                group_id=item.group_id,
            )

            def on_added(response: AddOffsetsToTxnResponse) -> None:
                if response.error_code:
                    if self._offsets and self._offsets[0] is item:
                        self._on_error(response.error_code, "AddOffsetsToTxn")
                    return
                self._started = True  # the coordinator's transaction has the group: EndTxn needed
                item.added = True

            self._send(self.transactional_id, _KEY_TXN, request, on_added, now)
            return
        request = TxnOffsetCommitRequest(
            transactional_id=self.transactional_id,
            group_id=item.group_id,
            producer_id=ids.producer_id,
            producer_epoch=ids.epoch,
            generation_id=item.generation_id,
            member_id=item.member_id,
            group_instance_id=item.group_instance_id,
            topics=item.topics,
        )

        def on_committed(response: TxnOffsetCommitResponse) -> None:
            if not self._offsets or self._offsets[0] is not item:
                return  # failed meanwhile (the transaction became abortable or fatal)
            worst = 0
            for tr in response.topics:
                for pr in tr.partitions:
                    if pr.error_code and worst in (0, OperationNotAttemptedError.errno):
                        worst = pr.error_code
            if worst:
                self._on_error(worst, "TxnOffsetCommit", group=item.group_id)
                return
            self._offsets.popleft()
            item.op._finish()

        # The group's own member fields need TxnOffsetCommit v3+ (KIP-447);
        # older brokers take the plain form.
        self._send(item.group_id, _KEY_GROUP, request, on_committed, now)

    def _end(self, commit: bool, now: float) -> None:
        if not self._started:
            self._ended()
            return
        request = EndTxnRequest(
            transactional_id=self.transactional_id,
            producer_id=self._ids.producer_id,
            producer_epoch=self._ids.epoch,
            committed=commit,
        )

        def on_response(response: EndTxnResponse) -> None:
            if response.error_code:
                self._on_error(response.error_code, "EndTxn")
                return
            self._ended()

        self._send(self.transactional_id, _KEY_TXN, request, on_response, now)

    def _ended(self) -> None:
        self.added.clear()
        self._started = False
        if self.state == ABORTING and self._ids.bump_wanted:
            # A sequence of the aborted transaction is unresolved (an expired or
            # rejected batch): a new epoch restarts every sequence (KIP-360).
            self._bumping = True
            self._host.wake()
            return
        self.state = READY
        self.error = None
        self._complete()

    # --- outcomes ------------------------------------------------------------------

    def _start(self, kind: str) -> TransactionOp:
        op = self._op = TransactionOp(kind)
        self._host.wake()
        return op

    def _complete(self, error: KafkaError | None = None) -> None:
        op, self._op = self._op, None
        if op is not None:
            op._finish(error)

    def _check(self, expected: str, call: str) -> None:
        if self.state == FATAL and self.error is not None:
            raise self.error
        if self.state != expected:
            if self.state == ABORTABLE_ERROR and self.error is not None and call != "begin_transaction":
                raise self.error
            raise IllegalStateError(f"{call}() is not allowed in state {self.state} (needs {expected})")

    def _on_error(self, code: int, what: str, *, group: str | None = None) -> None:
        now = self._host.now
        error = error_from_code(code, f"{what} for transactional id {self.transactional_id!r}")
        if code in _FENCED:
            self._fatal(
                ProducerFencedError(f"{what}: this producer was fenced by a newer instance ({error})")
            )
            return
        if code in _REFIND:
            if group is not None:
                self._client.mark_coordinator_dead(group, _KEY_GROUP, now)
            else:
                self._client.mark_coordinator_dead(self.transactional_id, _KEY_TXN, now)
            self._retry_at = now + self._config.retry_backoff_ms / 1000
            return
        if group is not None and code in _GROUP_ABORTABLE:
            self._abortable(error)
            return
        if code == TopicAuthorizationFailedError.errno or code == GroupAuthorizationFailedError.errno:
            self._abortable(error)
            return
        self._retry_or_fail(error, now, code)

    def _retry_or_fail(self, error: KafkaError, now: float, code: int = 0) -> None:
        if code in _RETRY or getattr(error, "retriable", False):
            self._retry_at = now + self._config.retry_backoff_ms / 1000
            return
        self._fatal(error)

    def _abortable(self, error: KafkaError) -> None:
        if self.state not in (IN_TRANSACTION, COMMITTING):
            if self.state == INITIALIZING or self._bumping:
                self._fatal(error)
            return
        self.state = ABORTABLE_ERROR
        self.error = error
        self._wanted.clear()
        self._complete(error)
        while self._offsets:
            self._offsets.popleft().op._finish(error)

    def _fatal(self, error: KafkaError) -> None:
        self.state = FATAL
        self.error = error
        self._bumping = False
        self._ids.set_fatal(error)
        self._host.wake()
        self._wanted.clear()
        self._complete(error)
        while self._offsets:
            self._offsets.popleft().op._finish(error)

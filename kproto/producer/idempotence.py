"""The idempotent producer's identity and sequences (KIP-98, KIP-360).

An InitProducerId request gets a producer id and epoch before the first
batch is drained. A batch gets its base sequence when first drained (the
partition's next sequence; it then advances by the record count, wrapping at
2**31) and keeps it on every retry, so the broker can drop duplicates and
keep order with up to 5 requests in flight. A re-queued batch is only sent
again once no later batch of its partition is in flight, so batches reach
the broker in sequence order.

When the broker lost our state (or a sequence is unresolved), the epoch is
bumped (KIP-360): once nothing is in flight, InitProducerId carrying the
current id and epoch (v3+; older brokers: a new id), then every partition's
sequence restarts at 0 and the queued batches are re-sequenced in order.
How the Produce answers lead here is in :mod:`kproto.producer.core`.

With a ``transactional_id`` the transaction manager
(:mod:`kproto.producer.transactions`) gets the producer id instead, through
:meth:`IdempotenceState.new_producer_id`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from kproto.errors import KafkaError, error_from_code
from kproto.producer.accumulator import PartitionState, ProducerBatch, RecordAccumulator
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse

if TYPE_CHECKING:
    from kproto.client import Client
    from kproto.producer.config import ProducerConfig

__all__ = ["SEQ_WRAP", "IdempotenceState", "seq_before"]

SEQ_WRAP: Final = 1 << 31
_MAX_EPOCH: Final = 32767
_API_INIT_PRODUCER_ID: Final = InitProducerIdRequest.API_KEY


def seq_before(a: int, b: int) -> bool:
    """True if sequence ``a`` comes before ``b`` (sequences wrap at 2**31)."""
    return 0 < (b - a) % SEQ_WRAP < SEQ_WRAP // 2


class IdempotenceState:
    """Producer id, epoch and sequence numbers of one producer (see the module docstring).

    Args:
        config: validated options (``enable_idempotence``; with a
            ``transactional_id`` the transaction manager gets the producer id).
        client: the :class:`kproto.client.Client` (InitProducerId requests).
        accumulator: the batches to sequence.
        now: the driver's clock now.
    """

    def __init__(self, config: ProducerConfig, client: Client, accumulator: RecordAccumulator, now: float) -> None:
        self.enabled = config.enable_idempotence
        self._config = config
        self._client = client
        self._acc = accumulator
        #: The producer id and epoch (-1 until known).
        self.producer_id = -1
        self.epoch = -1
        #: A producer id was given (it may be due for a bump).
        self.has_id = False
        self._in_flight = False
        self._retry_at = now
        #: The epoch must be bumped (KIP-360): the broker lost our state, or a sequence is unresolved.
        self.bump_wanted = False
        #: A producer id could not be had: every batch fails with it.
        self.fatal: KafkaError | None = None

    # --- sequences ----------------------------------------------------------------

    def stamp(self) -> tuple[int, int]:
        """The producer id and epoch a batch is sealed with (-1, -1 without idempotence)."""
        return (self.producer_id, self.epoch) if self.enabled else (-1, -1)

    def assign(self, ps: PartitionState, b: ProducerBatch) -> None:
        """Give ``b`` its base sequence the first time it is drained."""
        if b.base_seq < 0:
            b.base_seq = ps.next_seq
            ps.next_seq = (ps.next_seq + b.count) % SEQ_WRAP

    def acknowledged(self, b: ProducerBatch) -> None:
        """The broker has ``b``: the partition's expected sequence moves past it (same epoch only)."""
        if self.enabled and b.base_seq >= 0 and b.sealed_epoch == self.epoch:
            ps = b.part
            end = (b.base_seq + b.count) % SEQ_WRAP
            if seq_before(ps.acked_next, end):
                ps.acked_next = end

    def holds_back(self, ps: PartitionState, b: ProducerBatch) -> bool:
        """True if ``b``, the head of ``ps``, must wait: a bump is due, or a later batch is in flight."""
        if self.bump_wanted and (ps.lost or b.base_seq < 0):
            # Before an epoch bump re-sequences everything, the batches already
            # sequenced in partitions whose broker state is intact are resolved
            # under the old epoch: one may be on the broker already (a lost
            # answer), and only the old epoch's duplicate check can tell.
            return True
        if self.enabled and b.base_seq >= 0 and ps.inflight:
            # A retried batch goes out only after no later batch of its
            # partition is in flight, so batches reach the broker in sequence
            # order (KIP-98); earlier ones (retries sent just before) may be.
            order = b.order
            for other in ps.inflight:
                if other.order > order:
                    return True
        return False

    def shift_sequences(self, ps: PartitionState, failed: ProducerBatch) -> None:
        """``failed`` never reached the log: later batches move down by its record count."""
        n = failed.count
        for other in (*ps.inflight, *ps.queue):
            if other.base_seq > failed.base_seq:
                other.base_seq = (other.base_seq - n) % SEQ_WRAP
                other.reseq = True
        ps.next_seq = (ps.next_seq - n) % SEQ_WRAP

    def want_bump(self) -> None:
        """A sequence is unresolved or the broker lost our state: bump the epoch (KIP-360)."""
        self.bump_wanted = True

    def set_fatal(self, error: KafkaError) -> None:
        """The producer cannot go on: every batch fails with ``error``."""
        self.fatal = error

    def new_producer_id(self, producer_id: int, epoch: int, *, restart: bool) -> None:
        """The transaction manager got an id and epoch; ``restart``: every sequence restarts at 0.

        Nothing is queued then (the transaction's batches are done).
        """
        self.producer_id, self.epoch, self.has_id = producer_id, epoch, True
        if restart:
            self.bump_wanted = False
            for ps in self._acc.partitions():
                ps.next_seq = 0
                ps.acked_next = 0
                ps.lost = False

    # --- the producer id (without a transactional id) -----------------------------

    def _needs_id(self) -> bool:
        if self._config.transactional_id is not None:  # transactions: the transaction manager gets it
            return False
        return not self.has_id or self.bump_wanted

    def timer(self, last_drain: float) -> float | None:
        """When a backed-off InitProducerId is due, or None."""
        if self.enabled and self._needs_id() and not self._in_flight and self._retry_at > last_drain:
            return self._retry_at
        return None

    def ready(self, now: float, inflight_batches: int) -> bool:
        """True when batches may be sequenced; else get (or bump) the producer id."""
        if not self._needs_id():
            return True
        if self._in_flight or now < self._retry_at:
            return False
        if self.bump_wanted and self.has_id:
            if self._acc.resolvable():
                return True  # holds_back lets only those out
            if inflight_batches:
                return False  # bump only once every sequence on the wire is resolved
        node: int | None = None
        pid, epoch = -1, -1
        if self.has_id and self.epoch < _MAX_EPOCH:
            # KIP-360: bump with the current id/epoch where the broker knows how (v3+).
            for n in self._ready_nodes():
                version = self._client.api_version(n, _API_INIT_PRODUCER_ID)
                if version is not None and version >= 3:
                    node, pid, epoch = n, self.producer_id, self.epoch
                    break
        request = InitProducerIdRequest(
            transactional_id=None,
            # Ignored without a transactional id; Java's default, in case a broker checks it.
            transaction_timeout_ms=60000,
            producer_id=pid,
            producer_epoch=epoch,
        )
        self._in_flight = True
        self._client.send(request, now=now, node_id=node, callback=self._on_init_producer_id)
        return False

    def _ready_nodes(self) -> list[int]:
        cluster = self._client.cluster
        nodes: list[int] = []
        for tp in self._acc.topics.values():
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
        now = self._acc.now
        self._in_flight = False
        if error is None and response is not None and response.error_code:
            error = error_from_code(response.error_code)
        if error is not None or response is None:
            if error is not None and not error.retriable:
                self.fatal = error
                self.has_id = True
                self.bump_wanted = False
                return
            self._retry_at = now + self._config.retry_backoff_ms / 1000
            return
        self.producer_id = response.producer_id
        self.epoch = response.producer_epoch
        self.has_id = True
        if self.bump_wanted:
            self.bump_wanted = False
            # New epoch: every partition's sequence restarts at 0; queued
            # batches keep their order and get new sequences (KIP-360).
            for ps in self._acc.partitions():
                ps.next_seq = 0
                ps.acked_next = 0
                ps.lost = False
                for b in ps.queue:
                    if b.base_seq >= 0:
                        b.base_seq = ps.next_seq
                        ps.next_seq += b.count
                        b.reseq = False
                        b.maybe_written = False

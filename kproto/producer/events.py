"""Events the producer core hands to its driver (drained with ``ProducerCore.events()``).

One event per batch, not per record: a batch's records share their fate, and
a per-record event would cost an allocation per record on the hot path. The
``tokens`` are whatever the facade passed to ``send`` (its futures), in send
order, so record ``i`` of a delivered batch has offset ``base_offset + i``.

Both subclass :class:`BatchOutcome` (a :class:`kproto.events.Event`); a
driver dispatches with ``isinstance`` over the :data:`ProducerEvent` union,
which also holds the client's events (:data:`kproto.events.ClientEvent`) the
producer core forwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from kproto.errors import KafkaError
from kproto.events import ClientEvent, Event

__all__ = ["BatchOutcome", "BatchRetried", "DeliveryFailed", "ProducerEvent", "RecordsDelivered"]


@attrs.frozen(kw_only=True, slots=True)
class BatchOutcome(Event):
    """What became of records sent together: the base class of the producer's events."""

    #: Topic of the records.
    topic: str
    #: Their partition, or -1 if they were never assigned one.
    partition: int
    #: The ``token`` of each record, in send order.
    tokens: Sequence[object]


@attrs.frozen(kw_only=True, slots=True)
class RecordsDelivered(BatchOutcome):
    """A batch was acknowledged (or, with ``acks=0``, handed to the driver)."""

    #: Offset of the first record; -1 with ``acks=0``.
    base_offset: int
    #: Broker append time in ms when the topic uses LogAppendTime, else -1.
    log_append_time_ms: int


@attrs.frozen(kw_only=True, slots=True)
class DeliveryFailed(BatchOutcome):
    """Records that will never be delivered, and why."""

    #: The error: a broker error class, ``KafkaTimeoutError``, ...
    error: KafkaError


@attrs.frozen(kw_only=True, slots=True)
class BatchRetried(Event):
    """The broker refused a batch with a retriable error; it is queued again after ``retry_backoff_ms``."""

    #: Topic of the records.
    topic: str
    #: Their partition.
    partition: int
    #: How many records the batch holds.
    records: int
    #: Attempts so far (1 after the first refusal).
    attempt: int
    #: The broker's error (e.g. NotLeaderForPartitionError).
    error: KafkaError


#: Every event :meth:`kproto.producer.ProducerCore.events` gives: delivery
#: reports, retries and the client's events, forwarded.
ProducerEvent = RecordsDelivered | DeliveryFailed | BatchRetried | ClientEvent

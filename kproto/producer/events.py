"""Events the producer core hands to its driver (drained with ``ProducerCore.events()``).

One event per batch, not per record: a batch's records share their fate, and
a per-record event would cost an allocation per record on the hot path. The
``tokens`` are whatever the facade passed to ``send`` (its futures), in send
order, so record ``i`` of a delivered batch has offset ``base_offset + i``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from kproto.errors import KafkaError

__all__ = ["DeliveryFailed", "ProducerEvent", "RecordsDelivered"]


@attrs.frozen(kw_only=True, slots=True)
class RecordsDelivered:
    """A batch was acknowledged (or, with ``acks=0``, handed to the driver)."""

    #: Topic of the batch.
    topic: str
    #: Partition of the batch.
    partition: int
    #: Offset of the first record; -1 with ``acks=0``.
    base_offset: int
    #: Broker append time in ms when the topic uses LogAppendTime, else -1.
    log_append_time_ms: int
    #: The ``token`` of each record, in send order.
    tokens: Sequence[object]


@attrs.frozen(kw_only=True, slots=True)
class DeliveryFailed:
    """Records that will never be delivered, and why."""

    #: Topic of the records.
    topic: str
    #: Their partition, or -1 if they were never assigned one.
    partition: int
    #: The error: a broker error class, ``KafkaTimeoutError``, ...
    error: KafkaError
    #: The ``token`` of each record, in send order.
    tokens: Sequence[object]


ProducerEvent = RecordsDelivered | DeliveryFailed

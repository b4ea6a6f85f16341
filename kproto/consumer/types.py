"""Consumer value types: partitions, offsets, records, and consumer events.

:class:`ConsumerRecord` is the one object built per Kafka record on the hot
path, so it is a ``NamedTuple`` (built with ``tuple.__new__`` by the fetcher)
rather than an attrs class: on CPython 3.11 that is roughly 3x cheaper to
construct, and it keeps kafka-python's field order and tuple behaviour.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

import attrs

from kproto.errors import KafkaError
from kproto.types import TopicPartition

__all__ = [
    "ConsumerGroupMetadata",
    "ConsumerRecord",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "RecordDeserializationError",
    "TopicPartition",
    "TIMESTAMP_CREATE_TIME",
    "TIMESTAMP_LOG_APPEND_TIME",
    "AnyConsumerEvent",
    "CommitCompleted",
    "ConsumerEvent",
]

#: ``ConsumerRecord.timestamp_type`` values, as in the batch attributes.
TIMESTAMP_CREATE_TIME = 0
TIMESTAMP_LOG_APPEND_TIME = 1


class ConsumerGroupMetadata(NamedTuple):
    """Who the consumer is in its group, for ``send_offsets_to_transaction`` (KIP-447).

    With the generation and member id the group coordinator fences offsets
    sent by a producer whose consumer has been kicked out of the group.
    """

    group_id: str
    #: -1 while the member is not in a stable generation.
    generation_id: int = -1
    #: "" while the member has no member id.
    member_id: str = ""
    #: The static member id (KIP-345), or None.
    group_instance_id: str | None = None


class OffsetAndMetadata(NamedTuple):
    """A committed offset: the next offset to consume, plus user metadata."""

    offset: int
    metadata: str = ""
    #: The leader epoch of the last consumed record, or -1 if unknown (KIP-320).
    leader_epoch: int = -1


class OffsetAndTimestamp(NamedTuple):
    """The answer of ``offsets_for_times``: the first offset at or after a timestamp."""

    offset: int
    timestamp: int
    #: The leader epoch of that record, or -1 if unknown.
    leader_epoch: int = -1


class ConsumerRecord(NamedTuple):
    """One record as the consumer returns it (kafka-python's field order)."""

    topic: str
    partition: int
    offset: int
    #: Milliseconds since the epoch; -1 if the producer gave none (magic 0).
    timestamp: int
    #: 0 = CreateTime, 1 = LogAppendTime; -1 for magic 0.
    timestamp_type: int
    key: Any
    value: Any
    #: ``((str, bytes | None), ...)`` in wire order; ``()`` when the record has none.
    #: (kafka-python gives a list; a tuple keeps the record immutable and cheap.)
    headers: tuple[tuple[str, bytes | None], ...]
    #: The legacy (magic 0/1) message CRC; None for v2 record batches.
    checksum: int | None
    #: Raw key length in bytes, -1 for a null key.
    serialized_key_size: int
    #: Raw value length in bytes, -1 for a null value.
    serialized_value_size: int
    #: Sum of header key and value lengths, -1 when there are no headers.
    serialized_header_size: int


class RecordDeserializationError(KafkaError):
    """A key or value deserializer raised; the consumer's position stays on the record.

    ``seek(tp, offset + 1)`` skips it.
    """

    def __init__(self, tp: TopicPartition, offset: int, which: str, cause: BaseException) -> None:
        super().__init__(
            f"{which} deserializer failed for topic {tp.topic!r} partition {tp.partition} "
            f"offset {offset}: {cause!r}"
        )
        #: The record's partition.
        self.tp = tp
        #: The record's offset.
        self.offset = offset
        #: ``"key"`` or ``"value"``.
        self.which = which


@attrs.frozen(kw_only=True, slots=True)
class ConsumerEvent:
    """Base of the events ``ConsumerCore.events()`` returns; dispatch with ``isinstance``."""


@attrs.frozen(kw_only=True, slots=True)
class CommitCompleted(ConsumerEvent):
    """An OffsetCommit finished (successfully when ``error`` is None)."""

    #: The offsets that were sent.
    offsets: dict[TopicPartition, OffsetAndMetadata]
    #: None on success, else the first error (per-partition errors included).
    error: BaseException | None


#: Every consumer event type (one so far); ``match``/``isinstance`` over it is exhaustive.
AnyConsumerEvent: TypeAlias = CommitCompleted

"""The sans-I/O consumer core: positions, fetching, offsets and commits.

See :mod:`kproto.consumer.core` for the driving surface and
:mod:`kproto.consumer.fetcher` for the record decoding hot path.
"""

from __future__ import annotations

from kproto.consumer.config import ConsumerConfig
from kproto.consumer.types import (
    CommitCompleted,
    ConsumerRecord,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    RecordDeserializationError,
    TopicPartition,
)

__all__ = [
    "CommitCompleted",
    "ConsumerConfig",
    "ConsumerRecord",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "RecordDeserializationError",
    "TopicPartition",
]

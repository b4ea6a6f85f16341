"""Value types the producer and the consumer share (a leaf module: it imports nothing of kproto).

:class:`TopicPartition` is the one user-facing topic-partition pair of the
project: the producer's ``RecordMetadata.topic_partition``, the consumer's
assignments and offsets, and every transport module export it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["TopicPartition"]


class TopicPartition(NamedTuple):
    """A topic name and a partition index (kafka-python's field order)."""

    topic: str
    partition: int

"""Partitioners: where a record goes when the user gives no partition.

A partitioner is any callable ``partitioner(key_bytes, all_partitions,
available_partitions) -> partition`` (the spec's signature), where both lists
are sorted partition ids and ``available_partitions`` are those with a leader.

- :func:`murmur2` is the Java client's ``Utils.murmur2``, bit for bit, so
  keyed records land where every other Kafka client puts them.
- :class:`DefaultPartitioner`: keyed records -> ``murmur2(key) & 0x7fffffff``
  modulo the partition count; ``None`` keys -> a random available partition.
- :class:`StickyPartitioner` (KIP-480): ``None`` keys stick to one partition
  until its batch is closed, then move to another one, which makes fewer,
  fuller batches; keyed records as the default.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import Final

__all__ = ["DefaultPartitioner", "StickyPartitioner", "murmur2", "partition_for_key"]

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as ``org.apache.kafka.common.utils.Utils.murmur2``: a signed 32-bit int."""
    length = len(data)
    h = _SEED ^ length
    n4 = length >> 2
    if n4:
        for k in struct.unpack_from(f"<{n4}I", data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            k = (k * _M) & _MASK
            h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def partition_for_key(key: bytes, all_partitions: Sequence[int]) -> int:
    """The Java client's keyed choice: positive murmur2 modulo the partition count."""
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


class DefaultPartitioner:
    """Keyed: murmur2 as Java; ``None`` key: random among partitions with a leader.

    Args:
        rng: where randomness comes from (the core passes its injected one).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available_partitions: Sequence[int]
    ) -> int:
        """Choose a partition (see the class docstring)."""
        if key is not None:
            return partition_for_key(key, all_partitions)
        choices = available_partitions or all_partitions
        return choices[int(self._rng.random() * len(choices))]


class StickyPartitioner:
    """KIP-480 sticky partitioning for ``None`` keys; keyed records as :class:`DefaultPartitioner`.

    The producer core recognises this class: it calls :meth:`partition` with the
    topic and :meth:`on_new_batch` when the sticky partition's batch is closed,
    so the next ``None``-key records move to another (random, available)
    partition. Called as a plain 3-argument partitioner, stickiness is kept per
    partition set.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._sticky: dict[object, int] = {}

    def _pick(self, all_partitions: Sequence[int], available: Sequence[int], avoid: int | None) -> int:
        choices = available or all_partitions
        if len(choices) > 1 and avoid is not None:
            choices = [p for p in choices if p != avoid]
        return choices[int(self._rng.random() * len(choices))]

    def partition(
        self, topic: object, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        """The partition for a record of ``topic``."""
        if key is not None:
            return partition_for_key(key, all_partitions)
        p = self._sticky.get(topic)
        if p is None or (available and p not in available) or p not in all_partitions:
            p = self._sticky[topic] = self._pick(all_partitions, available, None)
        return p

    def on_new_batch(
        self, topic: object, all_partitions: Sequence[int], available: Sequence[int], previous: int
    ) -> None:
        """The batch of ``previous`` closed: switch ``topic`` to another partition (KIP-480)."""
        if self._sticky.get(topic) == previous:
            self._sticky[topic] = self._pick(all_partitions, available, previous)

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available_partitions: Sequence[int]
    ) -> int:
        """Plain-partitioner form: sticky per partition set, never told of new batches."""
        return self.partition(tuple(all_partitions), key, all_partitions, available_partitions)

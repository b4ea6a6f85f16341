"""The default partitioner puts keyed records where kafka-python's DefaultPartitioner does."""

from __future__ import annotations

import random

from kafka.partitioner.default import DefaultPartitioner as KafkaPythonPartitioner
from kafka.partitioner.default import murmur2 as kp_murmur2

from kproto.producer import DefaultPartitioner, murmur2


class _Cluster:
    """The three ClusterMetadata calls kafka-python's partitioner makes."""

    def __init__(self, n: int) -> None:
        self.n = n

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.n))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.n))


def test_same_partition_as_kafka_python_for_10000_random_keys() -> None:
    rng = random.Random(20261129)
    ours = DefaultPartitioner(random.Random(0))
    theirs = KafkaPythonPartitioner()
    counts = {1: 0, 2: 0, 3: 0, 4: 0, 7: 0, 12: 0, 50: 0, 128: 0}
    for i in range(10_000):
        key = rng.randbytes(rng.randrange(0, 64))
        n = rng.choice(list(counts))
        counts[n] += 1
        parts = list(range(n))
        expected = theirs.partition("t", key, key, b"v", b"v", _Cluster(n))
        assert ours(key, parts, parts) == expected, (i, key, n)
    assert all(counts.values())


def test_murmur2_same_bits_as_kafka_python() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        key = rng.randbytes(rng.randrange(0, 40))
        # kafka-python returns the same 32 bits, unsigned; Java (and we) return them signed
        assert murmur2(key) & 0xFFFFFFFF == kp_murmur2(key)

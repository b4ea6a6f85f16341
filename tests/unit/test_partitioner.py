"""murmur2 against the Java client's own vectors; the default and sticky partitioners."""

from __future__ import annotations

import random

import pytest

from kproto.producer import DefaultPartitioner, StickyPartitioner, murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2
JAVA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), JAVA_VECTORS)
def test_murmur2_java_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_murmur2_is_signed_32_bit_for_every_tail_length() -> None:
    rng = random.Random(1)
    for n in range(0, 40):
        h = murmur2(rng.randbytes(n))
        assert -(2**31) <= h < 2**31


def test_default_keyed_is_positive_murmur2_modulo() -> None:
    part = DefaultPartitioner(random.Random(0))
    for key, h in JAVA_VECTORS:
        assert part(key, [0, 1, 2, 3, 4, 5, 6], [0]) == (h & 0x7FFFFFFF) % 7


def test_default_none_key_random_among_available() -> None:
    part = DefaultPartitioner(random.Random(0))
    seen = {part(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert seen == {1, 3}
    assert {part(None, [0, 1, 2], []) for _ in range(200)} == {0, 1, 2}


def test_default_deterministic_with_seed() -> None:
    a = DefaultPartitioner(random.Random(5))
    b = DefaultPartitioner(random.Random(5))
    assert [a(None, [0, 1, 2], [0, 1, 2]) for _ in range(50)] == [
        b(None, [0, 1, 2], [0, 1, 2]) for _ in range(50)
    ]


def test_sticky_sticks_and_switches_on_new_batch() -> None:
    sticky = StickyPartitioner(random.Random(2))
    all_p = [0, 1, 2, 3]
    first = sticky.partition("t", None, all_p, all_p)
    assert all(sticky.partition("t", None, all_p, all_p) == first for _ in range(20))
    sticky.on_new_batch("t", all_p, all_p, first)
    second = sticky.partition("t", None, all_p, all_p)
    assert second != first
    # another topic has its own sticky partition; keyed records hash as the default
    assert sticky.partition("u", b"abc", all_p, all_p) == (479470107 & 0x7FFFFFFF) % 4
    # an unavailable sticky partition is replaced
    assert sticky.partition("t", None, all_p, [p for p in all_p if p != second]) != second


def test_sticky_on_new_batch_for_other_partition_is_ignored() -> None:
    sticky = StickyPartitioner(random.Random(2))
    p = sticky.partition("t", None, [0, 1], [0, 1])
    sticky.on_new_batch("t", [0, 1], [0, 1], 1 - p)
    assert sticky.partition("t", None, [0, 1], [0, 1]) == p


def test_sticky_plain_call_form() -> None:
    sticky = StickyPartitioner(random.Random(4))
    picks = {sticky(None, [0, 1, 2], [0, 1, 2]) for _ in range(10)}
    assert len(picks) == 1

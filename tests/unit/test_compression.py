"""Compression codecs: framings, bounded decompression, bombs, bad data."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
import zlib

import cramjam
import pytest

from kproto.errors import DecodeError, UnsupportedCodecError
from kproto.protocol import compression as c

CODECS = [c.CODEC_GZIP, c.CODEC_SNAPPY, c.CODEC_LZ4, c.CODEC_ZSTD]
SAMPLES = [b"", b"a", b"hello kafka " * 10_000 + os.urandom(70_000), os.urandom(200_000)]


@pytest.mark.parametrize("codec", [0, *CODECS])
@pytest.mark.parametrize("sample", range(len(SAMPLES)))
def test_round_trip(codec: int, sample: int) -> None:
    data = SAMPLES[sample]
    packed = c.compress(codec, data)
    assert c.decompress(codec, packed) == data
    assert c.decompress(codec, memoryview(packed)) == data


def test_codec_ids_and_names() -> None:
    assert [c.codec_id(n) for n in (None, "none", "gzip", "snappy", "lz4", "zstd", "GZIP")] == [
        0,
        0,
        1,
        2,
        3,
        4,
        1,
    ]
    with pytest.raises(UnsupportedCodecError):
        c.codec_id("brotli")
    with pytest.raises(UnsupportedCodecError):
        c.compress(5, b"x")
    for bad in (5, 6, 7, -1):
        with pytest.raises(UnsupportedCodecError):
            c.decompress(bad, b"x")


def test_xxh32_reference_vectors() -> None:
    # Values of the reference xxHash32 implementation, seed 0.
    assert c._xxh32(b"") == 0x02CC5D05
    assert c._xxh32(b"a") == 0x550D7456
    assert c._xxh32(b"abc") == 0x32D153FF
    assert c._xxh32(b"\x60\x40") == 0x301A8268
    assert c._xxh32(b"0123456789abcdefXYZ") == 0x855ED232


def test_lz4_frame_layout_matches_java() -> None:
    frame = c.compress(c.CODEC_LZ4, b"x" * 1000)
    # magic, FLG 0x60 (v01, independent blocks), BD 0x40 (64 KiB), HC
    assert frame[:6] == b"\x04\x22\x4d\x18\x60\x40"
    assert frame[6] == (c._xxh32(b"\x60\x40") >> 8) & 0xFF == 0x82
    assert frame.endswith(b"\x00\x00\x00\x00")
    # KAFKA-3160: magic 0 writers hashed the magic number too
    old = c.compress(c.CODEC_LZ4, b"x" * 1000, lz4_broken_checksum=True)
    assert old[6] == (c._xxh32(b"\x04\x22\x4d\x18\x60\x40") >> 8) & 0xFF
    assert old[6] != frame[6]
    assert c.decompress(c.CODEC_LZ4, old) == b"x" * 1000
    bad = bytearray(frame)
    bad[6] ^= 0x55
    with pytest.raises(DecodeError):
        c.decompress(c.CODEC_LZ4, bytes(bad))


def test_lz4_incompressible_blocks_stored_raw_and_multi_block() -> None:
    data = os.urandom(150_000)
    frame = c.compress(c.CODEC_LZ4, data)
    (first_block,) = struct.unpack_from("<I", frame, 7)
    assert first_block == 0x80000000 | 65536
    assert bytes(cramjam.lz4.decompress(frame)) == data  # an independent decoder


def test_snappy_xerial_and_raw() -> None:
    data = b"snappy " * 20_000
    xerial = c.compress(c.CODEC_SNAPPY, data)
    assert xerial[:16] == b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"
    (first,) = struct.unpack_from(">i", xerial, 16)
    assert bytes(cramjam.snappy.decompress_raw(xerial[20 : 20 + first])) == data[: 32 * 1024]
    assert c.decompress(c.CODEC_SNAPPY, xerial) == data
    raw = bytes(cramjam.snappy.compress_raw(data))
    assert c.decompress(c.CODEC_SNAPPY, raw) == data


def test_gzip_is_gzip_and_concatenated_members_read() -> None:
    packed = c.compress(c.CODEC_GZIP, b"abc")
    assert packed[:2] == b"\x1f\x8b"
    assert zlib.decompress(packed, 31) == b"abc"
    assert c.decompress(c.CODEC_GZIP, packed + c.compress(c.CODEC_GZIP, b"def")) == b"abcdef"
    assert c.decompress(c.CODEC_GZIP, zlib.compress(b"zlib too")) == b"zlib too"


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_data_is_decode_error(codec: int) -> None:
    good = c.compress(codec, SAMPLES[2])
    for bad in (b"", b"\x00", good[: len(good) // 2], good[:10] + b"\xff" * 50, os.urandom(300)):
        try:
            out = c.decompress(codec, bad)
        except DecodeError:
            continue
        # A few truncations happen to be a valid prefix (empty output etc.).
        assert len(out) <= len(SAMPLES[2])


def test_xerial_bad_block_lengths() -> None:
    head = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"
    for tail in (b"\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff" + b"x", b"\x00\x00\x00\x02ab"):
        with pytest.raises(DecodeError):
            c.decompress(c.CODEC_SNAPPY, head + tail)
    with pytest.raises(DecodeError):
        c.decompress(c.CODEC_SNAPPY, head[:10])


@pytest.mark.parametrize("codec", CODECS)
def test_bomb_is_refused_quickly_and_without_memory(codec: int) -> None:
    bomb = c.compress(codec, bytes(64 << 20))  # 64 MiB of zeros
    assert len(bomb) < 4 << 20
    bound = 1 << 20
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DecodeError, match="1048576-byte bound"):
            c.decompress(codec, bomb, max_size=bound)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    # Python-side buffers stay within a small multiple of the bound + input.
    assert peak < 4 * bound + 2 * len(bomb)
    # Exactly at the bound is fine.
    assert c.decompress(codec, c.compress(codec, bytes(bound)), max_size=bound) == bytes(bound)


def test_default_bound_applies() -> None:
    bomb = c.compress(c.CODEC_ZSTD, bytes(c.DEFAULT_MAX_DECOMPRESSED + 1))
    with pytest.raises(DecodeError):
        c.decompress(c.CODEC_ZSTD, bomb)
    with pytest.raises(DecodeError):
        c.decompress(c.CODEC_NONE, bytes(10), max_size=5)


def test_zstd_declared_size_over_bound_fails_before_work() -> None:
    packed = c.compress(c.CODEC_ZSTD, bytes(5 << 20))
    assert c._zstd_hint(packed) == 5 << 20
    with pytest.raises(DecodeError):
        c.decompress(c.CODEC_ZSTD, packed, max_size=1 << 20)


def test_snappy_impossible_declared_length_refused() -> None:
    # Raw snappy starts with the uncompressed length as a varint: claim 50 MiB
    # for a 10-byte input, far beyond snappy's ~21x maximum expansion.
    n = 50 << 20
    header = bytes([(n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, ((n >> 14) & 0x7F) | 0x80, n >> 21])
    with pytest.raises(DecodeError, match="impossible"):
        c.decompress(c.CODEC_SNAPPY, header + b"\x00" * 6)

"""Legacy message sets (magic 0/1): golden bytes, wrappers, KIP-31 offsets, bad input."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kproto.errors import CorruptRecordChecksumError, CorruptRecordError, DecodeError, UnsupportedCodecError
from kproto.protocol.compression import compress
from kproto.protocol.legacy_records import LegacyBatch, read_legacy_message_set
from kproto.protocol.records import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NONE,
    Record,
    RecordBatchBuilder,
    read_batches,
    read_records,
)


def message(
    offset: int,
    magic: int,
    key: bytes | None,
    value: bytes | None,
    *,
    attributes: int = 0,
    timestamp: int = 0,
) -> bytes:
    """Test-only writer for one legacy message (offset, size, crc, body)."""
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    for field in (key, value):
        body += struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field
    crc = zlib.crc32(body)
    return struct.pack(">qiI", offset, len(body) + 4, crc) + body


def wrapper(
    offset: int, magic: int, inner: bytes, codec: int, *, timestamp: int = 0, log_append: bool = False
) -> bytes:
    payload = compress(codec, inner, lz4_broken_checksum=(magic == 0))
    attributes = codec | (0x08 if log_append else 0)
    return message(offset, magic, None, payload, attributes=attributes, timestamp=timestamp)


# magic 0, offset 5, key "k", value "v" (identical to kafka-python's LegacyRecordBatchBuilder output):
#   offset int64 | size int32 (16) | crc | magic 0 | attrs 0 | keyLen 1 "k" | valueLen 1 "v"
GOLDEN_V0 = bytes.fromhex("0000000000000005000000101fecd70a0000000000016b0000000176")
# magic 1, offset 6, timestamp 1_600_000_000_000, null key, value "hi":
#   ... | magic 1 | attrs 0 | timestamp int64 | keyLen -1 | valueLen 2 "hi"
GOLDEN_V1 = bytes.fromhex("000000000000000600000018bc2d090d010000000174876e8000ffffffff000000026869")


def test_golden_bytes_from_writer_and_crc() -> None:
    assert message(5, 0, b"k", b"v") == GOLDEN_V0
    assert message(6, 1, None, b"hi", timestamp=1_600_000_000_000) == GOLDEN_V1
    assert zlib.crc32(GOLDEN_V0[16:]) == 0x1FECD70A
    assert zlib.crc32(GOLDEN_V1[16:]) == 0xBC2D090D


def test_golden_read() -> None:
    b0, b1 = read_batches(GOLDEN_V0 + GOLDEN_V1)
    assert isinstance(b0, LegacyBatch) and isinstance(b1, LegacyBatch)
    assert b0.records() == [Record(5, -1, TIMESTAMP_NONE, b"k", b"v", ())]
    assert b1.records() == [Record(6, 1_600_000_000_000, TIMESTAMP_CREATE_TIME, None, b"hi", ())]
    assert (b0.magic, b1.magic) == (0, 1)
    assert (b0.crc, b1.crc) == (0x1FECD70A, 0xBC2D090D)
    assert (b0.base_offset, b0.last_offset, b0.next_offset, b0.record_count) == (5, 5, 6, 1)
    assert (b0.producer_id, b0.producer_epoch, b0.base_sequence, b0.partition_leader_epoch) == (
        -1,
        -1,
        -1,
        -1,
    )
    assert not b0.is_control and not b0.is_transactional and b0.control_record() is None
    assert b0.timestamp_type == TIMESTAMP_NONE and b1.timestamp_type == TIMESTAMP_CREATE_TIME
    assert b0.size_in_bytes == len(GOLDEN_V0)
    assert list(read_legacy_message_set(GOLDEN_V0 + GOLDEN_V1)) != []


@pytest.mark.parametrize("codec", [1, 2, 3])
def test_v1_wrapper_relative_offsets_kip31(codec: int) -> None:
    # Inner offsets 0,1,2 relative; the broker gave the wrapper offset 102,
    # the absolute offset of the last inner message: absolute = 102 - 2 + inner.
    inner = b"".join(message(i, 1, None, b"v%d" % i, timestamp=1000 + i) for i in range(3))
    (batch,) = read_batches(wrapper(102, 1, inner, codec, timestamp=5000))
    assert batch.compression == codec
    assert [(r.offset, r.timestamp, r.value) for r in batch] == [
        (100, 1000, b"v0"),
        (101, 1001, b"v1"),
        (102, 1002, b"v2"),
    ]
    assert (batch.base_offset, batch.last_offset, batch.record_count) == (100, 102, 3)


def test_v1_wrapper_log_append_time() -> None:
    inner = b"".join(message(i, 1, b"k", b"v", timestamp=1000 + i) for i in range(2))
    (batch,) = read_batches(wrapper(11, 1, inner, 1, timestamp=9999, log_append=True))
    assert batch.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
    assert [(r.offset, r.timestamp, r.timestamp_type) for r in batch] == [
        (10, 9999, TIMESTAMP_LOG_APPEND_TIME),
        (11, 9999, TIMESTAMP_LOG_APPEND_TIME),
    ]


def test_v1_wrapper_without_broker_offsets_keeps_inner_offsets() -> None:
    # As Java: a negative absolute base (wrapper offset 0, last inner 2) is ignored.
    inner = b"".join(message(i, 1, None, b"x", timestamp=1) for i in range(3))
    (batch,) = read_batches(wrapper(0, 1, inner, 1))
    assert [r.offset for r in batch] == [0, 1, 2]


@pytest.mark.parametrize("codec", [1, 2, 3])
def test_v0_wrapper_absolute_offsets(codec: int) -> None:
    inner = b"".join(message(40 + i, 0, b"k%d" % i, b"v%d" % i) for i in range(3))
    (batch,) = read_batches(wrapper(42, 0, inner, codec))
    assert [(r.offset, r.timestamp, r.key) for r in batch] == [
        (40, -1, b"k0"),
        (41, -1, b"k1"),
        (42, -1, b"k2"),
    ]


def test_v0_lz4_both_header_checksums() -> None:
    inner = message(0, 0, None, b"lz4 old")
    for broken in (True, False):
        payload = compress(3, inner, lz4_broken_checksum=broken)
        (batch,) = read_batches(message(0, 0, None, payload, attributes=3))
        assert [r.value for r in batch] == [b"lz4 old"]


def test_raw_snappy_wrapper() -> None:
    import cramjam

    inner = message(0, 0, None, b"raw snappy")
    payload = bytes(cramjam.snappy.compress_raw(inner))
    (batch,) = read_batches(message(0, 0, None, payload, attributes=2))
    assert [r.value for r in batch] == [b"raw snappy"]


def test_mixed_legacy_and_v2_blob() -> None:
    b = RecordBatchBuilder()
    b.append(7, None, b"v2")
    blob = GOLDEN_V0 + b.seal(base_offset=6) + GOLDEN_V1[:-1]
    assert [(r.offset, r.value) for r in read_records(blob)] == [(5, b"v"), (6, b"v2")]


# --- bad input --------------------------------------------------------------


def test_crc_mismatch_outer_and_inner() -> None:
    bad = bytearray(GOLDEN_V0)
    bad[-1] ^= 1
    with pytest.raises(CorruptRecordChecksumError):
        list(read_batches(bytes(bad)))
    assert [r.value for r in read_records(bytes(bad), check_crcs=False)] == [b"w"]
    inner = bytearray(message(0, 1, None, b"inner"))
    inner[-1] ^= 1
    with pytest.raises(CorruptRecordChecksumError):
        list(read_batches(wrapper(0, 1, bytes(inner), 1)))


def test_zstd_and_unknown_codecs_are_unsupported() -> None:
    for codec in (4, 5, 7):
        with pytest.raises(UnsupportedCodecError):
            list(read_batches(message(0, 1, None, b"x", attributes=codec)))


def test_nested_compression_and_empty_or_null_wrapper() -> None:
    inner_wrapper = wrapper(0, 1, message(0, 1, None, b"x"), 1)
    with pytest.raises(CorruptRecordError):
        list(read_batches(wrapper(0, 1, inner_wrapper, 1)))
    with pytest.raises(CorruptRecordError):
        list(read_batches(wrapper(0, 1, b"", 1)))
    with pytest.raises(CorruptRecordError):
        list(read_batches(message(0, 1, None, None, attributes=1)))


def test_truncated_inner_message_set() -> None:
    inner = message(0, 1, None, b"abc") + message(1, 1, None, b"def")
    for cut in (1, 11, 20, len(inner) - 1):
        with pytest.raises(CorruptRecordError):
            list(read_batches(wrapper(1, 1, inner[:cut], 1)))


def test_partial_trailing_message_skipped_and_bad_sizes() -> None:
    for cut in range(len(GOLDEN_V1)):
        assert len(list(read_batches(GOLDEN_V0 + GOLDEN_V1[:cut]))) == 1
    for size in (-1, 0, 13):
        bad = bytearray(GOLDEN_V0)
        struct.pack_into(">i", bad, 8, size)
        with pytest.raises(CorruptRecordError):
            list(read_batches(bytes(bad)))
    bad = bytearray(GOLDEN_V1)
    struct.pack_into(">i", bad, 8, 21)  # below the v1 minimum of 22
    with pytest.raises(CorruptRecordError):
        list(read_batches(bytes(bad)))


@pytest.mark.parametrize("field_len", [-2, 2, 1000, -(2**31)])
def test_bad_key_length(field_len: int) -> None:
    bad = bytearray(GOLDEN_V0)
    struct.pack_into(">i", bad, 18, field_len)
    with pytest.raises(CorruptRecordError):
        list(read_batches(bytes(bad), check_crcs=False))


@pytest.mark.parametrize("codec", [1, 2, 3])
def test_wrapper_bomb(codec: int) -> None:
    payload = compress(codec, bytes(8 << 20), lz4_broken_checksum=True)
    with pytest.raises(DecodeError, match="bound"):
        list(read_batches(message(0, 0, None, payload, attributes=codec), max_decompressed=1 << 20))


@given(
    values=st.lists(
        st.tuples(st.none() | st.binary(max_size=50), st.none() | st.binary(max_size=50)),
        min_size=1,
        max_size=10,
    ),
    magic=st.sampled_from([0, 1]),
    codec=st.sampled_from([0, 1, 2, 3]),
    base=st.integers(min_value=0, max_value=2**40),
)
def test_round_trip_through_test_writer(
    values: list[tuple[bytes | None, bytes | None]], magic: int, codec: int, base: int
) -> None:
    msgs = [message(i if magic else base + i, magic, k, v, timestamp=77) for i, (k, v) in enumerate(values)]
    if codec:
        blob = wrapper(base + len(values) - 1, magic, b"".join(msgs), codec, timestamp=77)
    else:
        blob = b"".join(message(base + i, magic, k, v, timestamp=77) for i, (k, v) in enumerate(values))
    got = [(r.offset, r.timestamp, r.key, r.value) for r in read_records(blob)]
    ts = 77 if magic else -1
    assert got == [(base + i, ts, k, v) for i, (k, v) in enumerate(values)]


@given(
    data=st.binary(max_size=120),
    flips=st.lists(st.tuples(st.integers(0, 33), st.integers(0, 255)), max_size=3),
)
def test_garbage_raises_only_decode_error(data: bytes, flips: list[tuple[int, int]]) -> None:
    mutated = bytearray(GOLDEN_V0 + GOLDEN_V1)
    for pos, val in flips:
        mutated[pos] = val
    for blob in (data, bytes(mutated), bytes(mutated) + data):
        for check in (True, False):
            try:
                for batch in read_batches(blob, check_crcs=check):
                    batch.records()
            except DecodeError:
                pass

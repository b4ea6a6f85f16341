"""Record batch v2: golden bytes, builder semantics, reader, bad input, round trip."""

from __future__ import annotations

import struct
import time

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kproto.errors import (
    CorruptRecordChecksumError,
    CorruptRecordError,
    DecodeError,
    IllegalArgumentError,
    IllegalStateError,
    UnsupportedCodecError,
)
from kproto.protocol.compression import compress
from kproto.protocol.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    RECORD_BATCH_OVERHEAD,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    ControlRecord,
    Record,
    RecordBatch,
    RecordBatchBuilder,
    RecordsBuffer,
    encode_batch,
    encode_control_record,
    encode_headers,
    read_batches,
    read_records,
    record_size_bound,
    restamp_batch,
    single_record_batch_size,
    zigzag_varint,
)

CODECS = [0, 1, 2, 3, 4]

# A two-record batch, written out field by field from the KIP-98 layout.
#   record 0: ts 1_600_000_000_000, key b"k", value b"v", header ("h", b"1")
#   record 1: ts 1_600_000_000_005, null key, value b"hello"
#   sealed with producer_id 7, producer_epoch 1, base_sequence 3
GOLDEN_V2 = bytes.fromhex(
    "0000000000000000"  # baseOffset 0
    "0000004a"  # batchLength 74 = 49 header bytes after this field + 25 record bytes
    "ffffffff"  # partitionLeaderEpoch -1
    "02"  # magic 2
    "bc03b670"  # CRC-32C of everything from attributes to the end
    "0000"  # attributes: no codec, CreateTime, not transactional, not control
    "00000001"  # lastOffsetDelta 1
    "00000174876e8000"  # baseTimestamp 1_600_000_000_000
    "00000174876e8005"  # maxTimestamp 1_600_000_000_005
    "0000000000000007"  # producerId 7
    "0001"  # producerEpoch 1
    "00000003"  # baseSequence 3
    "00000002"  # recordCount 2
    # record 0: length zz(12)=0x18, attrs 0, tsDelta 0, offsetDelta 0,
    # keyLen zz(1)=02 'k', valueLen 02 'v', 1 header: keyLen 02 'h', valueLen 02 '1'
    "18"
    "00"
    "00"
    "00"
    "026b"
    "0276"
    "02"
    "0268"
    "0231"
    # record 1: length zz(11)=0x16, attrs 0, tsDelta zz(5)=0a, offsetDelta zz(1)=02,
    # key null zz(-1)=01, valueLen zz(5)=0a "hello", 0 headers
    "16"
    "00"
    "0a"
    "02"
    "01"
    "0a68656c6c6f"
    "00"
)


def _golden_builder() -> RecordBatchBuilder:
    b = RecordBatchBuilder()
    b.append(1_600_000_000_000, b"k", b"v", [("h", b"1")])
    b.append(1_600_000_000_005, None, b"hello")
    return b


def _patch_crc(data: bytearray) -> bytes:
    struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    return bytes(data)


# --- golden bytes -----------------------------------------------------------


def test_golden_batch_bytes() -> None:
    data = _golden_builder().seal(producer_id=7, producer_epoch=1, base_sequence=3)
    assert data == GOLDEN_V2
    assert crc32c.crc32c(GOLDEN_V2[21:]) == 0xBC03B670


def test_golden_batch_read() -> None:
    (batch,) = read_batches(GOLDEN_V2)
    assert isinstance(batch, RecordBatch)
    assert (batch.base_offset, batch.last_offset, batch.next_offset) == (0, 1, 2)
    assert batch.partition_leader_epoch == -1
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (7, 1, 3)
    assert batch.last_sequence == 4
    assert batch.record_count == 2
    assert batch.magic == 2
    assert batch.crc == 0xBC03B670
    assert batch.compression == 0
    assert not batch.is_transactional and not batch.is_control
    assert batch.timestamp_type == TIMESTAMP_CREATE_TIME
    assert batch.size_in_bytes == len(GOLDEN_V2)
    assert batch.control_record() is None
    assert batch.records() == [
        Record(0, 1_600_000_000_000, TIMESTAMP_CREATE_TIME, b"k", b"v", (("h", b"1"),)),
        Record(1, 1_600_000_000_005, TIMESTAMP_CREATE_TIME, None, b"hello", ()),
    ]
    assert [r.offset for r in batch] == [0, 1]
    tuples = batch.record_tuples()
    assert tuples == [tuple(r) for r in batch.records()]
    assert all(type(t) is tuple for t in tuples)


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, "00"),
        (-1, "01"),
        (1, "02"),
        (63, "7e"),
        (-64, "7f"),
        (64, "8001"),
        (300, "d804"),
        (2**31 - 1, "feffffff0f"),
        (-(2**63), "ffffffffffffffffff01"),
    ],
)
def test_zigzag_varint(n: int, encoded: str) -> None:
    assert zigzag_varint(n).hex() == encoded


# --- builder ----------------------------------------------------------------


def test_size_is_exact_and_limit_refuses() -> None:
    b = RecordBatchBuilder(size_limit=400)
    assert b.size_in_bytes == RECORD_BATCH_OVERHEAD
    deltas: list[int] = []
    while True:
        before = b.size_in_bytes
        d = b.append(1000 + len(deltas), None, b"x" * 100)
        if d is None:
            assert b.size_in_bytes == before  # nothing appended
            break
        deltas.append(d)
        assert b.size_in_bytes <= 400
    assert deltas == [0, 1, 2]
    assert b.record_count == 3
    assert len(b.seal()) == b.size_in_bytes


def test_first_record_always_fits() -> None:
    b = RecordBatchBuilder(size_limit=10)
    assert b.append(0, b"k" * 50, b"v" * 500) == 0
    assert b.append(0, None, b"") is None
    data = b.seal()
    assert len(data) == b.size_in_bytes == single_record_batch_size(b"k" * 50, b"v" * 500)


def test_single_record_batch_size_exact() -> None:
    for key, value, headers in [(None, None, []), (b"k", b"v" * 9000, [("a", None), ("bb", b"c")])]:
        b = RecordBatchBuilder()
        b.append(123, key, value, headers)
        assert len(b.seal()) == single_record_batch_size(key, value, headers)


def test_reseal_is_byte_identical_and_changes_only_header() -> None:
    for codec in CODECS:
        b = _golden_builder()
        b._compression = codec  # same records, each codec
        first = b.seal(producer_id=9, producer_epoch=2, base_sequence=100)
        again = b.seal(producer_id=9, producer_epoch=2, base_sequence=100)
        assert first == again
        bumped = b.seal(producer_id=9, producer_epoch=3, base_sequence=0)
        assert first[RECORD_BATCH_OVERHEAD:] == bumped[RECORD_BATCH_OVERHEAD:]
        (batch,) = read_batches(bumped)
        assert (batch.producer_epoch, batch.base_sequence) == (3, 0)
        assert [r.value for r in batch] == [b"v", b"hello"]


def test_append_after_seal_and_empty_seal_are_misuse() -> None:
    with pytest.raises(IllegalStateError):
        RecordBatchBuilder().seal()
    b = _golden_builder()
    assert not b.is_sealed
    b.seal()
    assert b.is_sealed
    with pytest.raises(IllegalStateError):
        b.append(0, None, b"late")
    with pytest.raises(IllegalArgumentError):
        RecordBatchBuilder(compression=5)


def test_timestamps_deltas_and_max() -> None:
    b = RecordBatchBuilder()
    stamps = [5_000, 4_000, 20_000_000, 5_001, -1]
    for ts in stamps:
        b.append(ts, None, b"")
    assert b.base_timestamp == 5_000
    assert b.max_timestamp == 20_000_000
    (batch,) = read_batches(b.seal())
    assert batch.base_timestamp == 5_000
    assert batch.max_timestamp == 20_000_000
    assert [r.timestamp for r in batch] == stamps


def test_transactional_and_control_flags() -> None:
    key, value = encode_control_record(CONTROL_COMMIT, coordinator_epoch=17)
    b = RecordBatchBuilder(is_control=True)
    b.append(99, key, value)
    (batch,) = read_batches(b.seal(producer_id=4, producer_epoch=0, is_transactional=True))
    assert batch.is_control and batch.is_transactional
    assert batch.control_record() == ControlRecord(0, CONTROL_COMMIT, 17)
    key, value = encode_control_record(CONTROL_ABORT)
    b = RecordBatchBuilder(is_control=True)
    b.append(99, key, value)
    (batch,) = read_batches(b.seal(is_transactional=True))
    assert batch.control_record() == ControlRecord(0, CONTROL_ABORT, 0)
    # read_records skips control batches
    assert list(read_records(b.seal(is_transactional=True))) == []


def test_log_append_time_uses_max_timestamp() -> None:
    data = bytearray(_golden_builder().seal())
    struct.pack_into(">h", data, 21, 0x08)  # timestamp type bit
    struct.pack_into(">q", data, 35, 1_700_000_000_000)  # broker's maxTimestamp
    (batch,) = read_batches(_patch_crc(data))
    assert batch.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
    assert [(r.timestamp, r.timestamp_type) for r in batch] == [
        (1_700_000_000_000, TIMESTAMP_LOG_APPEND_TIME)
    ] * 2


def test_large_fields_and_many_records_leave_fast_path() -> None:
    b = RecordBatchBuilder()
    big = bytes(range(256)) * 100  # 25_600 bytes: 3-byte varints
    for i in range(20_000):
        b.append(i * 1000, big if i % 5000 == 0 else b"%d" % i, b"v" if i % 3 else None, [])
    recs = list(read_records(b.seal()))
    assert len(recs) == 20_000
    assert recs[19_999].offset == 19_999 and recs[19_999].timestamp == 19_999_000
    assert recs[5000].key == big and recs[5001].key == b"5001"
    assert recs[3].value is None and recs[4].value == b"v"


def test_base_offset_and_blob_of_many_batches() -> None:
    blob = b""
    for base in (0, 10, 500):
        b = RecordBatchBuilder()
        for i in range(3):
            b.append(i, None, b"%d" % (base + i))
        blob += b.seal(base_offset=base, partition_leader_epoch=5)
    batches = list(read_batches(memoryview(blob)))
    assert [bt.base_offset for bt in batches] == [0, 10, 500]
    assert [bt.partition_leader_epoch for bt in batches] == [5, 5, 5]
    assert [r.offset for r in read_records(bytearray(blob))] == [0, 1, 2, 10, 11, 12, 500, 501, 502]


# --- bad input --------------------------------------------------------------


def test_partial_trailing_batch_is_skipped() -> None:
    blob = GOLDEN_V2 + GOLDEN_V2
    for cut in range(len(GOLDEN_V2), len(blob)):
        assert len(list(read_batches(blob[:cut]))) == 1
    for cut in range(len(GOLDEN_V2)):
        assert list(read_batches(GOLDEN_V2[:cut])) == []


def test_huge_declared_length_is_a_partial_batch() -> None:
    data = bytearray(GOLDEN_V2)
    struct.pack_into(">i", data, 8, 2**31 - 1)
    assert list(read_batches(bytes(data))) == []


@pytest.mark.parametrize("length", [-1, -(2**31), 0, 48])
def test_negative_or_too_small_batch_length(length: int) -> None:
    data = bytearray(GOLDEN_V2)
    struct.pack_into(">i", data, 8, length)
    with pytest.raises(CorruptRecordError):
        list(read_batches(bytes(data)))


def test_wrong_crc() -> None:
    data = bytearray(GOLDEN_V2)
    data[-2] ^= 0x01  # flip a bit inside "hello"
    with pytest.raises(CorruptRecordChecksumError):
        list(read_batches(bytes(data)))
    # with CRC checks off the bytes are taken as they are
    (batch,) = read_batches(bytes(data), check_crcs=False)
    assert batch.records()[1].value == b"helln"


def test_unknown_magic() -> None:
    data = bytearray(GOLDEN_V2)
    data[16] = 3
    with pytest.raises(CorruptRecordError):
        list(read_batches(bytes(data)))


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec(codec: int) -> None:
    data = bytearray(GOLDEN_V2)
    struct.pack_into(">h", data, 21, codec)
    (batch,) = read_batches(_patch_crc(data))
    with pytest.raises(UnsupportedCodecError):
        batch.records()


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (57, 3),  # recordCount 3: more records than bytes
        (57, 1),  # recordCount 1: bytes left over
        (57, -1),  # negative count
        (57, 2**31 - 1),  # absurd count
        (61, 0x7E),  # record 0 length 63: runs into record 1
        (61, 0x04),  # record 0 length 2: shorter than its fields
        (65, 0x7F),  # key length -64
        (65, 0x03),  # key length -2
        (67, 0x7E),  # value length 63: past the end
    ],
)
def test_malformed_records(offset: int, value: int) -> None:
    data = bytearray(GOLDEN_V2)
    if offset == 57:
        struct.pack_into(">i", data, offset, value)
    else:
        data[offset] = value
    with pytest.raises(CorruptRecordError):
        for batch in read_batches(_patch_crc(data)):
            batch.records()


def test_truncated_records_inside_a_complete_batch() -> None:
    for cut in range(RECORD_BATCH_OVERHEAD, len(GOLDEN_V2)):
        data = bytearray(GOLDEN_V2[:cut])
        struct.pack_into(">i", data, 8, cut - 12)
        (batch,) = read_batches(_patch_crc(data))
        with pytest.raises(CorruptRecordError):
            batch.records()


def test_bad_compressed_payload() -> None:
    for codec in (1, 2, 3, 4):
        data = bytearray(GOLDEN_V2[:RECORD_BATCH_OVERHEAD]) + b"\x07garbage-not-compressed\xff\xff"
        struct.pack_into(">i", data, 8, len(data) - 12)
        struct.pack_into(">h", data, 21, codec)
        (batch,) = read_batches(_patch_crc(data))
        with pytest.raises(DecodeError):
            batch.records()


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_decompression_bomb_in_a_batch(codec: int) -> None:
    # 16 MiB of zeros compresses to a few KiB; the reader is bounded at 1 MiB.
    payload = compress(codec, bytes(16 << 20))
    data = bytearray(GOLDEN_V2[:RECORD_BATCH_OVERHEAD]) + payload
    struct.pack_into(">i", data, 8, len(data) - 12)
    struct.pack_into(">h", data, 21, codec)
    (batch,) = read_batches(_patch_crc(data), max_decompressed=1 << 20)
    started = time.perf_counter()
    with pytest.raises(DecodeError, match="bound"):
        batch.records()
    assert time.perf_counter() - started < 2.0


# --- round trip -------------------------------------------------------------

headers_st = st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=20)), max_size=3)
record_st = st.tuples(
    st.integers(min_value=-(2**40), max_value=2**41),
    st.none() | st.binary(max_size=300),
    st.none() | st.binary(max_size=300),
    headers_st,
)


@given(
    records=st.lists(record_st, min_size=1, max_size=40),
    codec=st.sampled_from(CODECS),
    pid=st.integers(min_value=-1, max_value=2**63 - 1),
    epoch=st.integers(min_value=-1, max_value=2**15 - 1),
    seq=st.integers(min_value=-1, max_value=2**31 - 1),
    txn=st.booleans(),
    base=st.integers(min_value=0, max_value=2**62),
)
def test_round_trip(
    records: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
    codec: int,
    pid: int,
    epoch: int,
    seq: int,
    txn: bool,
    base: int,
) -> None:
    b = RecordBatchBuilder(compression=codec)
    for ts, key, value, headers in records:
        b.append(ts, key, value, headers)
    if codec == 0:
        assert b.size_in_bytes == len(b.seal())
    data = b.seal(
        producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=txn, base_offset=base
    )
    (batch,) = read_batches(data)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (pid, epoch, seq)
    assert batch.is_transactional is txn
    assert batch.compression == codec
    assert batch.record_count == len(records)
    assert batch.last_offset == base + len(records) - 1
    assert batch.max_timestamp == max(r[0] for r in records)
    got = batch.records()
    want = [
        Record(base + i, ts, TIMESTAMP_CREATE_TIME, key, value, tuple(headers))
        for i, (ts, key, value, headers) in enumerate(records)
    ]
    assert got == want


@given(
    data=st.binary(max_size=200),
    cut=st.integers(min_value=0, max_value=len(GOLDEN_V2)),
    flips=st.lists(st.tuples(st.integers(0, len(GOLDEN_V2) - 1), st.integers(0, 255)), max_size=4),
    check=st.booleans(),
)
def test_garbage_raises_only_decode_error(
    data: bytes, cut: int, flips: list[tuple[int, int]], check: bool
) -> None:
    mutated = bytearray(GOLDEN_V2)
    for pos, val in flips:
        mutated[pos] = val
    for blob in (data, bytes(mutated), bytes(mutated[:cut]) + data, GOLDEN_V2[:cut] + data):
        try:
            for batch in read_batches(blob, check_crcs=check):
                batch.records()
                batch.control_record()
        except DecodeError:
            pass


# --- the record encoder (RecordsBuffer) and the batch frame ------------------------


def test_records_buffer_sizes_limit_and_first_record() -> None:
    recs = RecordsBuffer()
    assert (recs.count, recs.size, recs.max_ts) == (0, RECORD_BATCH_OVERHEAD, -1)
    # the first record always fits, whatever the limit
    first = recs.append(1000, b"k", b"v" * 100, encode_headers([("h", None)]), 0)
    assert first == len(recs.encoded()) and recs.size == RECORD_BATCH_OVERHEAD + first
    state = (recs.count, recs.size, recs.base_ts, recs.max_ts, list(recs.pieces))
    # 110 bytes: length (2), attributes, timestamp delta (2), offset delta, null key, value (2 + 100), headers
    assert recs.append(2000, None, b"v" * 100, b"\x00", recs.size + 109) == 0
    assert (recs.count, recs.size, recs.base_ts, recs.max_ts, list(recs.pieces)) == state
    second = recs.append(2000, None, b"v" * 100, b"\x00", recs.size + 110)
    assert second == 110 and recs.size == RECORD_BATCH_OVERHEAD + first + second
    assert (recs.count, recs.base_ts, recs.max_ts) == (2, 1000, 2000)
    batch = encode_batch(
        recs.encoded(), count=recs.count, base_timestamp=recs.base_ts, max_timestamp=recs.max_ts, attributes=0
    )
    assert len(batch) == recs.size
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in read_records(batch)] == [
        (0, 1000, b"k", b"v" * 100, (("h", None),)),
        (1, 2000, None, b"v" * 100, ()),
    ]


def test_records_buffer_rejects_a_first_timestamp_that_is_not_an_int() -> None:
    recs = RecordsBuffer()
    with pytest.raises(TypeError):
        recs.append(1.5, None, b"v", b"\x00", 1 << 62)  # type: ignore[arg-type]
    assert recs.count == 0 and recs.pieces == []


def test_encode_batch_header_and_restamp() -> None:
    recs = RecordsBuffer()
    recs.append(7, None, b"x", b"\x00", 1 << 62)
    data = encode_batch(
        recs.encoded(),
        count=1,
        base_timestamp=7,
        max_timestamp=7,
        attributes=0x10,
        producer_id=5,
        producer_epoch=1,
        base_sequence=9,
        base_offset=100,
        partition_leader_epoch=3,
    )
    (batch,) = read_batches(bytes(data))  # CRCs checked
    assert (batch.base_offset, batch.partition_leader_epoch, batch.is_transactional) == (100, 3, True)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (5, 1, 9)
    restamp_batch(data, 6, 2, 0)
    (batch,) = read_batches(bytes(data))
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (6, 2, 0)
    assert [r.value for r in batch] == [b"x"]


@given(
    key=st.none() | st.binary(max_size=20_000),
    value=st.none() | st.binary(max_size=20_000),
    headers=st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=10)), max_size=3),
    delta=st.integers(min_value=-(2**62), max_value=2**62),
)
def test_record_size_bound_holds_and_is_exact_but_for_framing(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]], delta: int
) -> None:
    hb = encode_headers(headers)
    bound = record_size_bound(key, value, hb)
    recs = RecordsBuffer()
    first = recs.append(0, key, value, hb, 1 << 62)
    # the first record's framing: 1-3 length bytes, attributes, 0 and 0 deltas; the bound allows 21
    assert 0 < bound - first <= 21 - 4
    assert recs.append(delta, key, value, hb, 1 << 62) <= bound


def test_encode_headers_checks_types() -> None:
    assert encode_headers([]) == b"\x00"
    assert encode_headers([("a", bytearray(b"x"))]) == encode_headers([("a", b"x")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        encode_headers([(b"a", b"x")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        encode_headers([("a", "x")])  # type: ignore[list-item]


def test_builder_copies_bytes_like_fields() -> None:
    key, value = bytearray(b"key"), bytearray(b"value")
    b = RecordBatchBuilder()
    b.append(0, key, memoryview(value))  # type: ignore[arg-type]
    key[0] = value[0] = ord("X")
    ((k, v),) = [(r.key, r.value) for r in read_records(b.seal())]
    assert (k, v) == (b"key", b"value")

"""Cross-checks against kafka-python's independent record codec (``kafka.record``).

kproto-built batches are read record for record by kafka-python, and batches
and legacy message sets built by kafka-python are read by kproto, in every
compression codec. kafka-python needs ``lz4``, ``python-snappy``,
``zstandard`` and ``xxhash`` for the compressed cases.
"""

from __future__ import annotations

import pytest
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from kproto.protocol.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_NONE,
    RecordBatchBuilder,
    encode_control_record,
    read_batches,
    read_records,
)

pytestmark = pytest.mark.interop

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

SHAPES = {
    "null-keys": [(1_700_000_000_000 + i, None, b"value-%d" % i, []) for i in range(50)],
    "keys-and-headers": [
        (
            1_700_000_000_000 + 7 * i,
            b"key-%d" % i,
            b"v" * (i * 37),
            [("h1", b"x"), ("empty", b""), ("nul", None)],
        )
        for i in range(50)
    ],
    "nulls-and-big": [
        (1_600_000_000_000, None, None, []),
        (1_600_000_000_000 - 5, b"", b"", []),
        (1_600_000_099_999, b"k" * 9000, b"\x00\xff" * 40_000, [("\u00e9t\u00e9", b"unicode key")]),
    ],
}


def _kafka_python_view(data: bytes) -> list[tuple[object, ...]]:
    out = []
    records = MemoryRecords(data)
    while records.has_next():
        batch = records.next_batch()
        assert batch.validate_crc()
        for r in batch:
            out.append((r.offset, r.timestamp, r.key, r.value, list(r.headers)))
    return out


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("shape", SHAPES)
def test_kproto_batches_read_by_kafka_python(codec: str, shape: str) -> None:
    recs = SHAPES[shape]
    builder = RecordBatchBuilder(compression=CODECS[codec])
    for ts, key, value, headers in recs:
        assert builder.append(ts, key, value, headers) is not None
    data = builder.seal(producer_id=1234, producer_epoch=5, base_sequence=77, is_transactional=True)
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc()
    assert batch.compression_type == CODECS[codec]
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (1234, 5, 77)
    assert batch.is_transactional and not batch.is_control_batch
    assert batch.max_timestamp == max(r[0] for r in recs)
    assert batch.last_offset_delta == len(recs) - 1
    assert _kafka_python_view(data) == [(i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(recs)]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("shape", SHAPES)
def test_kafka_python_batches_read_by_kproto(codec: str, shape: str) -> None:
    recs = SHAPES[shape]
    blob = b""
    for base in (0, 1000):
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=CODECS[codec],
            is_transactional=False,
            producer_id=99,
            producer_epoch=3,
            base_sequence=base,
            batch_size=1 << 24,
        )
        for i, (ts, key, value, headers) in enumerate(recs):
            assert builder.append(i, ts, key, value, headers) is not None
        data = bytearray(builder.build())
        data[0:8] = base.to_bytes(8, "big")  # baseOffset is outside the CRC
        blob += bytes(data)
    batches = list(read_batches(memoryview(blob)))
    assert [b.base_offset for b in batches] == [0, 1000]
    for batch in batches:
        assert batch.compression == CODECS[codec]
        assert (batch.producer_id, batch.producer_epoch) == (99, 3)
        assert batch.record_count == len(recs)
    got = [
        (r.offset, r.timestamp, r.timestamp_type, r.key, r.value, list(r.headers)) for r in read_records(blob)
    ]
    want = [
        (base + i, ts, TIMESTAMP_CREATE_TIME, k, v, [(hk, hv) for hk, hv in h])
        for base in (0, 1000)
        for i, (ts, k, v, h) in enumerate(recs)
    ]
    assert got == want


@pytest.mark.parametrize("kind", [CONTROL_ABORT, CONTROL_COMMIT])
def test_control_batch_read_by_kafka_python(kind: int) -> None:
    key, value = encode_control_record(kind, coordinator_epoch=3)
    builder = RecordBatchBuilder(is_control=True)
    builder.append(5, key, value)
    data = builder.seal(producer_id=8, producer_epoch=1, is_transactional=True)
    batch = DefaultRecordBatch(data)
    assert batch.is_control_batch
    (rec,) = list(batch)
    assert rec.type == kind
    assert rec.abort is (kind == CONTROL_ABORT)


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
def test_kafka_python_legacy_read_by_kproto(magic: int, codec: str) -> None:
    recs = [(1_500_000_000_000 + i, b"k%d" % i if i % 2 else None, b"value %d" % i) for i in range(20)]
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=CODECS[codec], batch_size=1 << 24)
    for i, (ts, key, value) in enumerate(recs):
        assert builder.append(i, ts, key, value) is not None
    data = bytearray(builder.build())
    if CODECS[codec]:
        # As a broker would: the wrapper carries the last inner offset (magic 1,
        # KIP-31) or the inner messages carry absolute offsets (magic 0).
        data[0:8] = (500 + len(recs) - 1 if magic else len(recs) - 1).to_bytes(8, "big")
    got = [(r.offset, r.timestamp, r.timestamp_type, r.key, r.value) for r in read_records(bytes(data))]
    base = 500 if magic and CODECS[codec] else 0
    if magic:
        want = [(base + i, ts, TIMESTAMP_CREATE_TIME, k, v) for i, (ts, k, v) in enumerate(recs)]
    else:
        want = [(i, -1, TIMESTAMP_NONE, k, v) for i, (ts, k, v) in enumerate(recs)]
    assert got == want
    # and kafka-python agrees on the same bytes
    theirs = []
    mr = MemoryRecords(bytes(data))
    while mr.has_next():
        theirs.extend((r.offset, r.key, r.value) for r in mr.next_batch())
    assert theirs == [(o, k, v) for o, _, _, k, v in got]

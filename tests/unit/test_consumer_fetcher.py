"""PartitionRecords: record batches (literal bytes) in, ConsumerRecords and positions out."""

from __future__ import annotations

import struct

import pytest

from kproto.consumer import ConsumerRecord, RecordDeserializationError, TopicPartition
from kproto.consumer.fetcher import PartitionRecords, scan_blob
from kproto.errors import CorruptRecordChecksumError
from kproto.protocol.compression import CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY, CODEC_ZSTD
from kproto.protocol.records import CONTROL_ABORT, CONTROL_COMMIT, RecordBatchBuilder, encode_control_record

TP = TopicPartition("t", 3)


def batch(base: int, values: list[bytes | None], *, ts: int = 1_000, key: bytes | None = None,
          headers: tuple[tuple[str, bytes | None], ...] = (), codec: int = CODEC_NONE, pid: int = -1,
          txn: bool = False) -> bytes:
    b = RecordBatchBuilder(compression=codec)
    for i, v in enumerate(values):
        b.append(timestamp_ms=ts + i, key=key, value=v, headers=headers)
    return b.seal(base_offset=base, producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                  is_transactional=txn)


def control(base: int, kind: int, pid: int) -> bytes:
    b = RecordBatchBuilder(is_control=True)
    k, v = encode_control_record(kind)
    b.append(timestamp_ms=5, key=k, value=v)
    return b.seal(base_offset=base, producer_id=pid, producer_epoch=0, is_transactional=True)


def drain(pr: PartitionRecords, n: int = 1000) -> list[ConsumerRecord]:
    out: list[ConsumerRecord] = []
    while True:
        got = pr.take(n)
        if not got:
            return out
        out.extend(got)


def test_records_and_fields() -> None:
    blob = batch(10, [b"a", None, b"ccc"], key=b"k", headers=(("h", b"x"), ("n", None)))
    pr = PartitionRecords(TP, 0, blob, 10)
    assert pr.next_fetch_offset == 13
    assert pr.nbytes == len(blob)
    recs = drain(pr)
    assert [r.offset for r in recs] == [10, 11, 12]
    assert [r.value for r in recs] == [b"a", None, b"ccc"]
    r = recs[0]
    assert (r.topic, r.partition, r.key, r.timestamp, r.timestamp_type, r.checksum) == ("t", 3, b"k", 1000, 0, None)
    assert r.headers == (("h", b"x"), ("n", None))
    assert (r.serialized_key_size, r.serialized_value_size, r.serialized_header_size) == (1, 1, 3)
    assert recs[1].serialized_value_size == -1
    assert pr.position == 13 and pr.exhausted


def test_no_headers_and_null_key_sizes() -> None:
    recs = drain(PartitionRecords(TP, 0, batch(0, [b"v"]), 0))
    assert recs[0].headers == () and recs[0].serialized_header_size == -1
    assert recs[0].key is None and recs[0].serialized_key_size == -1


def test_take_respects_max_and_moves_position() -> None:
    blob = batch(0, [b"%d" % i for i in range(5)]) + batch(5, [b"x"] * 3)
    pr = PartitionRecords(TP, 0, blob, 0)
    first = pr.take(2)
    assert [r.offset for r in first] == [0, 1] and pr.position == 2
    second = pr.take(4)
    assert [r.offset for r in second] == [2, 3, 4, 5] and pr.position == 6
    assert [r.offset for r in pr.take(10)] == [6, 7]
    assert pr.position == 8 and pr.take(10) == []


def test_records_before_the_fetch_offset_are_dropped() -> None:
    # A broker may return a whole (compressed) batch that starts before the fetch offset.
    pr = PartitionRecords(TP, 0, batch(100, [b"a", b"b", b"c", b"d"], codec=CODEC_GZIP), 102)
    assert [r.offset for r in drain(pr)] == [102, 103]


def test_partial_trailing_batch_is_left_for_the_next_fetch() -> None:
    full = batch(0, [b"a", b"b"])
    cut = batch(2, [b"c"])[:-5]
    pr = PartitionRecords(TP, 0, full + cut, 0)
    assert pr.next_fetch_offset == 2 and pr.nbytes == len(full)
    assert [r.offset for r in drain(pr)] == [0, 1]
    assert scan_blob(cut, 7) == (0, 7)


@pytest.mark.parametrize("codec", [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD])
def test_compressed_batches(codec: int) -> None:
    values = [bytes([i]) * (i + 1) for i in range(200)]
    recs = drain(PartitionRecords(TP, 0, batch(0, values, codec=codec), 0))
    assert [r.value for r in recs] == values
    assert [r.offset for r in recs] == list(range(200))


def test_log_append_time_uses_max_timestamp() -> None:
    blob = bytearray(batch(0, [b"a", b"b"], ts=1000))
    attrs = struct.unpack_from(">h", blob, 21)[0] | 0x08
    struct.pack_into(">h", blob, 21, attrs)
    struct.pack_into(">q", blob, 35, 99_999)  # maxTimestamp
    recs = drain(PartitionRecords(TP, 0, bytes(blob), 0, check_crcs=False))
    assert [(r.timestamp, r.timestamp_type) for r in recs] == [(99_999, 1), (99_999, 1)]


def test_crc_mismatch_raises_when_checked() -> None:
    blob = bytearray(batch(0, [b"abc"]))
    blob[-2] ^= 0xFF  # the last value byte (the final byte is the header count)
    with pytest.raises(CorruptRecordChecksumError):
        PartitionRecords(TP, 0, bytes(blob), 0).take(10)
    assert [r.value for r in PartitionRecords(TP, 0, bytes(blob), 0, check_crcs=False).take(10)] == [b"ab\x9c"]


def test_control_batches_never_returned_and_position_moves_past() -> None:
    blob = batch(0, [b"a"], pid=7, txn=True) + control(1, CONTROL_COMMIT, 7) + batch(2, [b"b"])
    for rc in (False, True):
        pr = PartitionRecords(TP, 0, blob, 0, read_committed=rc)
        assert [r.value for r in drain(pr)] == [b"a", b"b"]
        assert pr.position == 3


def test_read_committed_drops_aborted_transactions() -> None:
    blob = (
        batch(0, [b"t1-a", b"t1-b"], pid=1, txn=True)   # aborted below
        + batch(2, [b"t2-a"], pid=2, txn=True)         # committed
        + control(3, CONTROL_ABORT, 1)
        + control(4, CONTROL_COMMIT, 2)
        + batch(5, [b"t1-c"], pid=1, txn=True)         # a later, committed, transaction of pid 1
        + control(6, CONTROL_COMMIT, 1)
        + batch(7, [b"plain"])
    )
    aborted = [(0, 1)]  # (first_offset, producer_id)
    pr = PartitionRecords(TP, 0, blob, 0, read_committed=True, aborted=aborted)
    assert [r.value for r in drain(pr)] == [b"t2-a", b"t1-c", b"plain"]
    assert pr.position == 8
    pr = PartitionRecords(TP, 0, blob, 0, read_committed=False, aborted=aborted)
    assert [r.value for r in drain(pr)] == [b"t1-a", b"t1-b", b"t2-a", b"t1-c", b"plain"]


def test_all_aborted_moves_position_to_the_end() -> None:
    blob = batch(0, [b"x", b"y"], pid=4, txn=True) + control(2, CONTROL_ABORT, 4)
    pr = PartitionRecords(TP, 0, blob, 0, read_committed=True, aborted=[(0, 4)])
    assert drain(pr) == [] and pr.position == 3 and pr.exhausted


def test_legacy_message_sets() -> None:
    from kafka.record.legacy_records import LegacyRecordBatchBuilder

    blob = b""
    for magic, codec, base in ((0, 0, 0), (1, 0, 2), (1, 1, 4)):
        b = LegacyRecordBatchBuilder(magic=magic, compression_type=codec, batch_size=1 << 20)
        for i in range(2):
            b.append(i if codec else base + i, timestamp=5000 + i if magic else None, key=b"k", value=b"m%d" % (base + i))
        raw = bytes(b.build())
        if not codec:
            # Uncompressed legacy entries carry their absolute offsets.
            blob += raw
        else:
            # A compressed wrapper's offset is its last inner message's (KIP-31).
            blob += struct.pack(">q", base + 1) + raw[8:]
    pr = PartitionRecords(TP, 0, blob, 0)
    assert pr.next_fetch_offset == 6
    recs = drain(pr)
    assert [(r.offset, r.value) for r in recs] == [(i, b"m%d" % i) for i in range(6)]
    assert recs[0].timestamp == -1 and recs[0].timestamp_type == -1
    assert recs[2].timestamp == 5000 and recs[2].timestamp_type == 0
    assert all(r.checksum is not None for r in recs)
    assert pr.position == 6


def test_deserializer_error_keeps_the_position_on_the_record() -> None:
    pr = PartitionRecords(TP, 0, batch(0, [b"1", b"2", b"bad", b"4"]), 0)

    def vd(v: bytes) -> int:
        return int(v)

    got = pr.take(10, None, vd)
    assert [r.value for r in got] == [1, 2]
    assert pr.position == 2
    with pytest.raises(RecordDeserializationError) as info:
        pr.take(10, None, vd)
    err = info.value
    assert (err.tp, err.offset, err.which) == (TP, 2, "value")
    assert "topic 't'" in str(err) and "partition 3" in str(err) and "offset 2" in str(err)
    assert pr.position == 2
    with pytest.raises(RecordDeserializationError):
        pr.take(10, None, vd)  # still there: nothing skipped silently


def test_key_deserializer_applied() -> None:
    pr = PartitionRecords(TP, 0, batch(0, [b"v"], key=b"7"), 0)
    (r,) = pr.take(10, lambda k: int(k), lambda v: v.decode())
    assert (r.key, r.value, r.serialized_key_size) == (7, "v", 1)

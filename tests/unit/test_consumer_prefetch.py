"""Prefetch, stale answers, close and the shared v2 record reader.

- A Fetch is in flight while earlier records are still buffered (prefetch);
  the answer to a Fetch sent before a seek, pause or unassign never yields
  records for the old position.
- ``get_timer()`` reports no auto-commit deadline once ``close()`` started
  and None once closed.
- The consumer's records come from :func:`kproto.protocol.records.decode_records`,
  the reader :class:`RecordBatch` uses: the same records from the golden
  batch and hypothesis batches, and only ``DecodeError`` from bad bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import crc32c
from hypothesis import given
from hypothesis import strategies as st

from kproto.consumer import ConsumerRecord, TopicPartition
from kproto.consumer.fetcher import PartitionRecords
from kproto.errors import DecodeError
from kproto.protocol.messages import OffsetCommitResponse
from kproto.protocol.messages import offset_commit as OC
from kproto.protocol.records import RecordBatchBuilder, decode_records, decode_records_at, read_batches
from tests.unit.test_consumer_core import (
    TP0,
    T,
    answer_list_offsets,
    deliver,
    fetch_response,
    make,
    records,
    wire,
)
from tests.unit.test_records import GOLDEN_V2

# --- prefetch and stale fetches -------------------------------------------------------


def _fetch_offsets(client: Any) -> list[int]:
    return [p.fetch_offset for req, _cb, _n, _v in client.sent if type(req).__name__ == "FetchRequest"
            for t in req.topics for p in t.partitions]


def test_next_fetch_is_in_flight_while_records_are_buffered() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    deliver(core, cb, fetch_response({0: (0, records(0, 4))}))
    # Nothing polled yet, and the next Fetch already asks for what follows the buffer.
    ((_, cb2, _, _),) = client.take("FetchRequest")
    deliver(core, cb2, fetch_response({0: (0, records(4, 4))}), now=0.1)
    # Two responses buffered (_MAX_QUEUED): no third Fetch until the user drains one.
    assert client.take("FetchRequest") == []
    assert [r.offset for r in core.poll(4, 0.2)[TP0]] == [0, 1, 2, 3]
    assert _fetch_offsets(client) == [8]  # sent from the poll that emptied the first response
    assert [r.offset for r in core.poll(None, 0.3)[TP0]] == [4, 5, 6, 7]
    assert core.position(TP0) == 8


def test_prefetched_answer_is_dropped_after_seek() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    deliver(core, cb, fetch_response({0: (0, records(0, 3))}))
    ((_, prefetch_cb, _, _),) = client.take("FetchRequest")  # the prefetch, from offset 3
    assert [r.offset for r in core.poll(1, 0.1)[TP0]] == [0]
    core.seek(TP0, 1, now=0.2)  # back: the buffer and the prefetch are both stale
    assert client.take("FetchRequest") == []  # one Fetch per broker at a time: the prefetch is out
    deliver(core, prefetch_cb, fetch_response({0: (0, records(3, 2))}), now=0.3)
    assert core.poll(None, 0.3) == {}
    assert core.position(TP0) == 1
    assert _fetch_offsets(client) == [1]
    ((_, cb3, _, _),) = client.take("FetchRequest")
    deliver(core, cb3, fetch_response({0: (0, records(0, 3))}), now=0.4)  # the broker starts at the batch
    assert [r.offset for r in core.poll(None, 0.5)[TP0]] == [1, 2]


def test_prefetched_answer_is_kept_but_not_returned_while_paused() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    deliver(core, cb, fetch_response({0: (0, records(0, 2))}))
    ((_, prefetch_cb, _, _),) = client.take("FetchRequest")
    core.pause([TP0])
    deliver(core, prefetch_cb, fetch_response({0: (0, records(2, 2))}), now=0.1)
    assert core.poll(None, 0.2) == {}
    assert client.take("FetchRequest") == []  # no fetching while paused
    assert core.position(TP0) == 0
    core.resume([TP0], now=0.3)
    # In order from the position: nothing skipped, nothing twice (as the Java consumer).
    assert [r.offset for r in core.poll(None, 0.4)[TP0]] == [0, 1, 2, 3]


def test_answer_for_an_earlier_assignment_is_dropped() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, old_cb, _, _),) = client.take("FetchRequest")
    core.assign([], now=0.1)  # revoked while its Fetch is out
    core.assign([TP0], now=0.2)  # and back, at the same offset
    answer_list_offsets(client, {0: 0})
    assert client.take("FetchRequest") == []  # the old Fetch still occupies the broker
    deliver(core, old_cb, fetch_response({0: (0, records(0, 3, b"old"))}), now=0.3)
    assert core.poll(None, 0.3) == {}
    assert core.position(TP0) == 0
    ((_, new_cb, _, _),) = client.take("FetchRequest")
    deliver(core, new_cb, fetch_response({0: (0, records(0, 3, b"new"))}), now=0.4)
    assert [r.value for r in core.poll(None, 0.5)[TP0]] == [b"new0", b"new1", b"new2"]


def test_answer_after_unassign_is_ignored() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    core.assign([], now=0.1)
    deliver(core, cb, fetch_response({0: (0, records(0, 3))}), now=0.2)
    assert core.poll(None, 0.3) == {}
    assert core.metrics()["buffered-bytes"] == 0


# --- close and get_timer ---------------------------------------------------------------


def _commit_ok() -> Any:
    return wire(OffsetCommitResponse(topics=[OC.OffsetCommitResponseTopic(name=T, partitions=[
        OC.OffsetCommitResponsePartition(partition_index=0, error_code=0)])]), 8)


def test_get_timer_has_no_past_deadline_while_closing_and_none_once_closed() -> None:
    core, client = make(group_id="g", auto_commit_interval_ms=1000)
    core.assign([TP0], now=0.0)
    client.take("OffsetFetchRequest")
    core.seek(TP0, 8, now=0.0)
    client.take("FetchRequest")
    assert core.get_timer() == 1.0  # the auto-commit interval
    done = core.close(5.0)  # long past that deadline
    # One final commit, no second auto-commit, no more fetching.
    ((_, cb, _, _),) = client.take("OffsetCommitRequest")
    assert client.sent == []
    assert not done.done
    timer = core.get_timer()
    assert timer is None or timer >= 5.0
    core.handle_timer(6.5)  # an interval later: still no auto-commit
    assert client.sent == []
    deliver(core, cb, _commit_ok(), now=7.0)
    assert done.done and core.closed
    assert core.get_timer() is None
    assert core.close(8.0).done  # closing again is harmless


def test_second_close_while_closing_shares_the_completion() -> None:
    core, client = make(group_id="g", auto_commit_interval_ms=1000)
    core.assign([TP0], now=0.0)
    client.take("OffsetFetchRequest")
    core.seek(TP0, 3, now=0.0)
    first = core.close(0.5)
    second = core.close(0.6)
    assert second is first
    ((_, cb, _, _),) = client.take("OffsetCommitRequest")
    deliver(core, cb, _commit_ok(), now=0.7)
    assert first.done and core.closed and core.get_timer() is None


# --- the shared v2 record reader ---------------------------------------------------------


def _consumer_view(blob: bytes, tp: TopicPartition, at: int = 0) -> list[ConsumerRecord]:
    pr = PartitionRecords(tp, 0, blob, at)
    out: list[ConsumerRecord] = []
    while got := pr.take(1000):
        out.extend(got)
    return out


def test_consumer_records_match_record_batch_on_the_golden_batch() -> None:
    tp = TopicPartition("t", 1)
    got = _consumer_view(GOLDEN_V2, tp)
    (batch,) = read_batches(GOLDEN_V2)
    assert [tuple(r[2:8]) for r in got] == batch.record_tuples()
    assert got == [
        ConsumerRecord("t", 1, 0, 1_600_000_000_000, 0, b"k", b"v", (("h", b"1"),), None, 1, 1, 2),
        ConsumerRecord("t", 1, 1, 1_600_000_000_005, 0, None, b"hello", (), None, -1, 5, -1),
    ]
    assert all(type(r) is ConsumerRecord for r in got)


def test_decode_records_shapes() -> None:
    start, end = 61, len(GOLDEN_V2)
    base_ts = 1_600_000_000_000
    narrow = decode_records(GOLDEN_V2, start, end, 2, 10, base_ts)
    assert narrow == [(10, base_ts, 0, b"k", b"v", (("h", b"1"),)), (11, base_ts + 5, 0, None, b"hello", ())]
    assert all(type(t) is tuple for t in narrow)
    wide = decode_records(GOLDEN_V2, start, end, 2, 10, base_ts, "x", 4, ConsumerRecord)
    assert [type(r) for r in wide] == [ConsumerRecord, ConsumerRecord]
    assert [tuple(r[2:8]) for r in wide] == narrow
    assert [(r.topic, r.partition) for r in wide] == [("x", 4), ("x", 4)]


_values = st.one_of(st.none(), st.binary(max_size=300))
_headers = st.lists(st.tuples(st.text(max_size=5), _values), max_size=3)


@given(
    recs=st.lists(st.tuples(st.integers(-(2**40), 2**40), _values, _values, _headers), min_size=1, max_size=40),
    base=st.integers(0, 2**40),
)
def test_consumer_records_match_record_batch(
    recs: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]], base: int
) -> None:
    b = RecordBatchBuilder()
    for ts, key, value, headers in recs:
        b.append(ts, key, value, headers)
    blob = b.seal(base_offset=base)
    (batch,) = read_batches(blob)
    got = _consumer_view(blob, TopicPartition("t", 0), base)
    assert [tuple(r[2:8]) for r in got] == batch.record_tuples()
    for r, (_ts, key, value, headers) in zip(got, recs, strict=True):
        assert r.serialized_key_size == (-1 if key is None else len(key))
        assert r.serialized_value_size == (-1 if value is None else len(value))
        hsize = sum(len(k.encode()) + (0 if v is None else len(v)) for k, v in headers)
        assert r.serialized_header_size == (hsize if headers else -1)


@given(
    flips=st.lists(st.tuples(st.integers(61, len(GOLDEN_V2) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(61, len(GOLDEN_V2)),
)
def test_corrupt_records_raise_only_decode_errors_in_the_consumer(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(GOLDEN_V2)
    for pos, val in flips:
        data[pos] = val
    # A batch length that covers only ``cut`` bytes, and a CRC that matches: the records decoder runs.
    struct.pack_into(">i", data, 8, cut - 12)
    blob = bytearray(data[:cut])
    struct.pack_into(">I", blob, 17, crc32c.crc32c(bytes(blob[21:])))
    try:
        _consumer_view(bytes(blob), TopicPartition("t", 0))
    except DecodeError:
        pass


def test_fetcher_fuzz_harness_runs_clean_over_its_seeds() -> None:
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("_harness_fetcher", root / "fuzz" / "fuzz_fetcher.py")
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    seeds = sorted((root / "fuzz" / "corpus" / "fetcher").iterdir())
    assert seeds
    for seed in seeds:
        for opts in (0, 1, 3, 0x37, 0xFF):
            harness.test_one_input(bytes([opts]) + seed.read_bytes()[1:])
    for data in (b"", b"\x00", b"\x01" + GOLDEN_V2, b"\x03" + GOLDEN_V2[:-1] + b"\x00" * 9):
        harness.test_one_input(data)


# --- step-by-step decoding of a batch -------------------------------------------------


def _blob(base: int, n: int, codec: int = 0, log_append: bool = False) -> bytes:
    b = RecordBatchBuilder(compression=codec)
    for i in range(n):
        b.append(1_000 + i, b"k%d" % i if i % 3 else None, b"v%d" % i, [("h", b"%d" % i)] if i % 5 == 0 else [])
    data = bytearray(b.seal(base_offset=base))
    if log_append:
        struct.pack_into(">h", data, 21, struct.unpack_from(">h", data, 21)[0] | 0x08)
        struct.pack_into(">q", data, 35, 77_777)
        struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    return bytes(data)


@given(
    steps=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    codec=st.sampled_from([0, 1, 4]),
    log_append=st.booleans(),
    start=st.integers(0, 60),
)
def test_any_take_sizes_give_the_records_and_positions_of_one_big_take(
    steps: list[int], codec: int, log_append: bool, start: int
) -> None:
    blob = _blob(10, 25, codec, log_append) + _blob(35, 30, codec, log_append)
    whole = _consumer_view(blob, TopicPartition("t", 0), start)
    assert [r.offset for r in whole] == [o for o in range(10, 65) if o >= start]
    pr = PartitionRecords(TopicPartition("t", 0), 0, blob, start)
    got: list[ConsumerRecord] = []
    for i in range(200):
        chunk = pr.take(steps[i % len(steps)])
        assert len(chunk) <= steps[i % len(steps)]
        if not chunk:
            break
        got.extend(chunk)
        assert pr.position == chunk[-1].offset + 1
    assert got == whole
    assert pr.exhausted and pr.position == 65


def test_decode_records_at_goes_on_where_it_stopped() -> None:
    blob = _blob(0, 9)
    end = len(blob)
    whole = decode_records(blob, 61, end, 9, 0, 1_000)
    pos, left, parts = 61, 9, []
    for n in (2, 0, 4, 5):
        recs, pos = decode_records_at(blob, pos, end, left, 0, 1_000, limit=n)
        left -= len(recs)
        parts += recs
    assert parts == whole and pos == end and left == 0


def test_corruption_after_the_first_step_raises_decode_error_later() -> None:
    blob = bytearray(_blob(0, 80))  # more records than one step; the last one has no headers
    blob[-1] = 7  # the last record's header count: past its end
    pr = PartitionRecords(TopicPartition("t", 0), 0, bytes(blob), 0, check_crcs=False)
    assert [r.offset for r in pr.take(2)] == [0, 1]
    offsets = [0, 1]
    try:
        for _ in range(100):
            offsets += [r.offset for r in pr.take(10)]
    except DecodeError:
        pass
    else:
        raise AssertionError("no DecodeError")
    assert offsets == list(range(len(offsets))) and len(offsets) < 80
    assert pr.position == len(offsets)


def test_records_before_a_bad_batch_are_handed_out_then_the_error_sticks() -> None:
    bad = bytearray(_blob(5, 3))
    bad[-2] ^= 0xFF  # the CRC no longer matches
    pr = PartitionRecords(TopicPartition("t", 0), 0, _blob(0, 5) + bytes(bad), 0)
    assert [r.offset for r in pr.take(10)] == [0, 1, 2, 3, 4]  # not lost with the error
    assert pr.position == 5
    for _ in range(2):
        try:
            pr.take(10)
        except DecodeError:
            pass
        else:
            raise AssertionError("no DecodeError")
    assert pr.position == 5


def test_poll_returns_the_good_records_then_raises() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    bad = bytearray(records(2, 2))
    bad[-2] ^= 0xFF
    deliver(core, cb, fetch_response({0: (0, records(0, 2) + bytes(bad))}))
    assert [r.offset for r in core.poll(None, 0.1)[TP0]] == [0, 1]
    try:
        core.poll(None, 0.2)
    except DecodeError:
        pass
    else:
        raise AssertionError("no DecodeError")
    assert core.position(TP0) == 2

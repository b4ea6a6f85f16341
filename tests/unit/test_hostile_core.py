"""Hostile or broken brokers, fed to the sans-I/O core as bytes (issue 15).

Each test drives a real core object (BrokerConnection, PartitionRecords,
ConsumerCore) with crafted broker answers and checks that the answer fails
only what it concerns, with a KafkaError, and that nothing stalls, repeats
or grows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kproto.connection import MAX_THROTTLE_MS, BrokerConnection, ConnectionState
from kproto.consumer import OffsetAndMetadata
from kproto.consumer.core import ConsumerCore
from kproto.errors import (
    CorruptRecordError,
    KafkaConnectionError,
    KafkaError,
    KafkaProtocolError,
    KafkaTimeoutError,
)
from kproto.protocol.messages import FetchResponse, MetadataRequest
from kproto.protocol.messages import fetch as F
from tests.unit.test_connection import (
    API_VERSIONS_V2,
    API_VERSIONS_V4,
    BROKER_KEYS,
    T0,
    UNSUPPORTED_V0,
    Recorder,
    api_versions_v2_response,
    metadata_req,
    new_conn,
    run_completions,
)
from tests.unit.test_consumer_core import (
    TP0,
    TP1,
    ScriptedClient,
    T,
    answer_list_offsets,
    deliver,
    fetch_response,
    make,
)

# --- defect 2: throttle_time_ms is broker input and is capped ---------------------------------

MAX_INT32 = 2**31 - 1


def throttled_conn() -> BrokerConnection:
    """A READY connection whose ApiVersions answer asked for a 2**31-1 ms throttle."""
    conn = new_conn()
    conn.connection_made(T0)
    assert conn.data_to_send() == API_VERSIONS_V4
    conn.receive_data(UNSUPPORTED_V0, T0)
    assert conn.data_to_send() == API_VERSIONS_V2
    conn.receive_data(api_versions_v2_response(1, BROKER_KEYS, throttle_ms=MAX_INT32), T0)
    assert conn.state is ConnectionState.READY
    return conn


def test_huge_throttle_is_capped_and_later_requests_flow() -> None:
    conn = throttled_conn()
    assert conn.throttled_until == T0 + MAX_THROTTLE_MS / 1000
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0 + 1)
    assert conn.data_to_send() == b""  # KIP-219: held back while throttled...
    assert conn.get_timer() == T0 + MAX_THROTTLE_MS / 1000
    conn.handle_timer(T0 + MAX_THROTTLE_MS / 1000)
    assert conn.data_to_send() == metadata_req(2)  # ...but no longer than the cap
    assert conn.state is ConnectionState.READY


def test_throttle_past_a_request_deadline_times_it_out_and_replaces_the_connection() -> None:
    conn = throttled_conn()
    short, other = Recorder(), Recorder()
    conn.send(MetadataRequest(), callback=short, now=T0, timeout_ms=5000)
    conn.send(MetadataRequest(), callback=other, now=T0)
    assert conn.get_timer() == T0 + 5
    conn.handle_timer(T0 + 5)
    run_completions(conn)
    ((_, err),) = short.calls
    assert isinstance(err, KafkaTimeoutError) and "throttled" in str(err)
    # The connection is closed for replacement: the rest fail with a connection error at once.
    assert conn.state is ConnectionState.CLOSED and conn.needs_close_command
    ((_, err2),) = other.calls
    assert isinstance(err2, KafkaConnectionError) and "throttle" in str(err2)


# --- defect 5: a decompression bomb's error path keeps nothing ---------------------------------


def test_decompression_bomb_error_keeps_no_payload_without_the_gc() -> None:
    """The failed decode's buffers are freed by reference counting alone.

    Before: the error kept on PartitionRecords held its traceback, whose frames
    held the 64 MiB output buffer and the PartitionRecords (a cycle), so each
    retry kept 64 MiB until the cyclic GC ran.
    """
    import gc
    import tracemalloc

    from kproto.protocol.compression import CODEC_GZIP
    from kproto.protocol.records import RecordBatchBuilder
    b = RecordBatchBuilder(compression=CODEC_GZIP)
    b.append(timestamp_ms=1, key=None, value=bytes(80 * 1024 * 1024))  # 80 MiB of zeros: ~80 KB gzipped
    bomb = b.seal(base_offset=0)
    assert len(bomb) < 200_000
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: 0})
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        for attempt in range(3):  # the consumer fetches the same bomb again after each error
            # A prefetch sent before the error is stale: answer it empty, then the bomb again.
            ((req, cb, _, _),) = client.take("FetchRequest")
            if req.topics[0].partitions[0].fetch_offset != 0:
                deliver(core, cb, fetch_response({0: (0, b"")}))
                ((req, cb, _, _),) = client.take("FetchRequest")
            assert req.topics[0].partitions[0].fetch_offset == 0
            deliver(core, cb, fetch_response({0: (0, bomb)}))
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            try:
                core.poll(None, 0.1 + attempt)
                raise AssertionError("the bomb was not refused")
            except KafkaError as exc:
                assert "bound" in str(exc)
                err = exc
            # The error the user holds references no decode frame or payload...
            assert tracemalloc.get_traced_memory()[0] - base < 1024 * 1024
            del err
            core.handle_timer(1.0 + attempt)
        # No retry adds to the last: zlib's own output assembly is the only doubling.
        assert tracemalloc.get_traced_memory()[1] < 2 * 64 * 1024 * 1024 + 8 * 1024 * 1024
    finally:
        tracemalloc.stop()
        gc.enable()


# --- crafted record batches ------------------------------------------------------------------


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def v2_batch(base: int, deltas: list[int], lod: int | None = None) -> bytes:
    """A CRC-valid v2 batch whose records carry exactly these offset deltas (values b"d<delta>")."""
    import struct

    import crc32c

    recs = b""
    for d in deltas:
        value = b"d%d" % d
        body = b"\x00" + _varint(0) + _varint(d) + _varint(-1) + _varint(len(value)) + value + _varint(0)
        recs += _varint(len(body)) + body
    lod = max(deltas) if lod is None else lod
    tail = struct.pack(">hiqqqhii", 0, lod, 1000, 1000, -1, -1, -1, len(deltas)) + recs
    crc = crc32c.crc32c(tail)
    head = struct.pack(">ib", -1, 2) + struct.pack(">I", crc)
    return struct.pack(">qi", base, len(head) + len(tail)) + head + tail


def started(positions: dict[int, int], **kw: Any) -> tuple[ConsumerCore, ScriptedClient]:
    """A consumer assigned the partitions of ``positions``, reset to those offsets."""
    core, client = make(auto_offset_reset="earliest", **kw)
    core.assign([tp for tp in (TP0, TP1) if tp.partition in positions], now=0.0)
    answer_list_offsets(client, positions)
    return core, client


def fetch_for(client: ScriptedClient, partition: int) -> tuple[Any, Callable[[Any, Any], None]]:
    """The outstanding Fetch that asks for ``partition`` (node 1 leads partition 0, node 2 partition 1)."""
    for i, (req, cb, _node, _mv) in enumerate(client.sent):
        if type(req).__name__ == "FetchRequest" and any(
            p.partition == partition for t in req.topics for p in t.partitions
        ):
            del client.sent[i]
            return req, cb
    raise AssertionError(f"no Fetch for partition {partition}")


def fetch_offset(req: Any) -> int:
    (topic,) = req.topics
    (p,) = topic.partitions
    return int(p.fetch_offset)


def encodable(req: Any) -> None:
    """The Fetch goes on the wire (issue 15: an offset past int64 made encoding raise)."""
    assert req.encode(12)


def drain(core: ConsumerCore, now: float, rounds: int = 10) -> tuple[list[int], list[KafkaError]]:
    """Poll until nothing more comes: the offsets handed out for TP0, and the errors raised."""
    offsets: list[int] = []
    errors: list[KafkaError] = []
    for i in range(rounds):
        try:
            got = core.poll(None, now + i * 0.001)
        except KafkaError as exc:
            errors.append(exc)
            continue
        offsets += [r.offset for r in got.get(TP0, [])]
    return offsets, errors


# --- defect 3: offsets past int64 -------------------------------------------------------------

INT64_MAX = 2**63 - 1


def test_batch_ending_past_int64_is_an_error_for_its_partition_only() -> None:
    """Before: offsets up to 2**63+4 were handed out, then the next Fetch raised
    ``ValueError: int too large`` inside and no Fetch was ever sent again."""
    core, client = started({0: INT64_MAX - 3, 1: 0})
    req0, cb0 = fetch_for(client, 0)
    req1, cb1 = fetch_for(client, 1)
    deliver(core, cb0, fetch_response({0: (0, v2_batch(INT64_MAX - 3, [0, 1, 2, 3, 4, 5]))}))
    deliver(core, cb1, fetch_response({1: (0, v2_batch(0, [0, 1, 2]))}))
    got, errors = [], []
    for i in range(4):
        try:
            got += [(tp.partition, r.offset) for tp, rs in core.poll(None, 0.1 + i).items() for r in rs]
        except KafkaError as exc:
            errors.append(exc)
    assert got == [(1, 0), (1, 1), (1, 2)]  # the other partition goes on
    assert errors and all(isinstance(e, CorruptRecordError) for e in errors)
    assert "2**63" in str(errors[0])
    assert core.position(TP0) == INT64_MAX - 3  # nothing of the bad batch handed out
    # Every Fetch the core sends afterwards can be encoded.
    core.handle_timer(10.0)
    fetches = client.take("FetchRequest")
    assert fetches
    for req, *_ in fetches:
        encodable(req)


def test_records_before_an_impossible_batch_are_handed_out_once() -> None:
    core, client = started({0: 0})
    _, cb = fetch_for(client, 0)
    blob = v2_batch(0, [0, 1]) + v2_batch(-7, [0, 1])  # a negative base offset
    deliver(core, cb, fetch_response({0: (0, blob)}))
    req, _ = fetch_for(client, 0)  # the prefetch starts after the good batch
    assert fetch_offset(req) == 2
    offsets, errors = drain(core, 0.1)
    assert offsets == [0, 1]
    assert errors and isinstance(errors[0], CorruptRecordError)
    assert core.position(TP0) == 2


def test_list_offsets_answer_below_minus_one_is_a_protocol_error_the_user_sees() -> None:
    """Before: an offset of -5 was taken as "none" and the reset retried silently for ever."""
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    answer_list_offsets(client, {0: -5})
    with pytest.raises(KafkaProtocolError, match="-5"):
        core.poll(None, 0.1)
    assert core.position(TP0) is None
    core.handle_timer(1.0)  # retried after the backoff; a good answer then works
    answer_list_offsets(client, {0: 4})
    assert core.position(TP0) == 4


def test_committed_offset_below_minus_one_is_a_protocol_error() -> None:
    from kproto.protocol.messages import OffsetFetchResponse
    from kproto.protocol.messages import offset_fetch as OF
    from tests.unit.test_consumer_core import T, wire

    core, client = make(group_id="g", auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    resp = OffsetFetchResponse(topics=[
        OF.OffsetFetchResponseTopic(name=T, partitions=[
            OF.OffsetFetchResponsePartition(partition_index=0, committed_offset=-9, metadata=""),
            OF.OffsetFetchResponsePartition(partition_index=7, committed_offset=3, metadata=""),
        ])])
    # The consumer's own lookup of its starting position: the user sees why it fails.
    ((_, cb, _, _),) = client.take("OffsetFetchRequest")
    deliver(core, cb, wire(resp, 7))
    with pytest.raises(KafkaProtocolError, match="-9"):
        core.poll(None, 0.1)
    assert core.position(TP0) is None
    p = core.committed([TP0], now=0.2)
    for _, cb, _, _ in client.take("OffsetFetchRequest"):  # with the lookup's retry, if sent
        deliver(core, cb, wire(resp, 7), now=0.2)
    assert isinstance(p.exception(), KafkaProtocolError)
    resp.topics[0].partitions[0].committed_offset = 3
    p2 = core.committed([TP0], now=1.0)
    for _, cb, _, _ in client.take("OffsetFetchRequest"):
        deliver(core, cb, wire(resp, 7), now=1.0)
    assert p2.result() == {TP0: OffsetAndMetadata(3, "", -1)}  # partition 7 was not asked for


# --- defect 4: duplicates and impossible offsets within a response ----------------------------


def test_partition_listed_twice_in_one_fetch_response_is_delivered_once() -> None:
    """Before: both entries were queued and offsets 0-2 were handed out twice."""
    core, client = started({0: 0})
    _, cb = fetch_for(client, 0)
    data = F.PartitionData(partition_index=0, high_watermark=3, last_stable_offset=3,
                           records=v2_batch(0, [0, 1, 2]))
    resp = FetchResponse(responses=[F.FetchableTopicResponse(topic=T, partitions=[data, data]),
                                    F.FetchableTopicResponse(topic=T, partitions=[data])])
    deliver(core, cb, type(resp).decode(resp.encode(12), 12))
    offsets, errors = drain(core, 0.1)
    assert offsets == [0, 1, 2] and not errors


@pytest.mark.parametrize(
    ("deltas", "lod", "before"),
    [
        ([0, 5, 2, 2], 5, "[0, 5, 2, 2] were handed out"),
        ([0, -5], 0, "offset -5 was handed out"),
        ([0, 1, 100], 2, "offset 100 was handed out, then the position went back to 3"),
        ([0, 1, 1], 2, "offset 1 was handed out twice"),
    ],
)
def test_record_offsets_outside_their_batch_are_a_corrupt_record_error(
    deltas: list[int], lod: int, before: str
) -> None:
    core, client = started({0: 0})
    _, cb = fetch_for(client, 0)
    blob = v2_batch(0, [0, 1, 2]) + v2_batch(3, deltas, lod)
    deliver(core, cb, fetch_response({0: (0, blob)}))
    offsets, errors = drain(core, 0.1)
    assert offsets == [0, 1, 2], before  # what precedes the bad batch, once
    assert errors and isinstance(errors[0], CorruptRecordError)
    assert core.position(TP0) == 3  # never moved back, never past the bad batch
    req, cb = fetch_for(client, 0)
    if fetch_offset(req) != 3:  # the prefetch sent before the error: its answer is stale
        deliver(core, cb, fetch_response({0: (0, v2_batch(fetch_offset(req), [0]))}))
        req, _ = fetch_for(client, 0)
    assert fetch_offset(req) == 3
    assert drain(core, 1.0) == ([], [])


def test_offsets_must_rise_across_decode_steps_too() -> None:
    """A batch decoded one record per poll: the check carries over between steps."""
    core, client = started({0: 0})
    _, cb = fetch_for(client, 0)
    deliver(core, cb, fetch_response({0: (0, v2_batch(0, [*range(40), 5], lod=40))}))
    seen: list[int] = []
    with pytest.raises(CorruptRecordError):
        for i in range(50):
            seen += [r.offset for r in core.poll(1, 0.1 + i).get(TP0, [])]
    assert seen == list(range(32))  # the first decode step; the second holds the repeat
    assert core.position(TP0) == 32


# --- defect 7 (core half): the response-size cap and one copy of a large frame ----------------


def test_response_cap_follows_the_fetch_sizes() -> None:
    """Before: the cap stayed at 100 MiB, so a 150 MiB answer to fetch_max_bytes=150 MiB was a
    protocol error on every attempt (0 records, reconnects, no error for ever)."""
    import attrs

    from kproto.client import ClientConfig
    from kproto.connection import DEFAULT_MAX_RESPONSE_SIZE
    from kproto.consumer import ConsumerConfig

    names = [f.name for f in attrs.fields(ClientConfig)]
    big = ConsumerConfig.from_kwargs(fetch_max_bytes=150 * 2**20).client_kwargs(names)
    assert big["max_response_size"] >= 300 * 2**20
    part = ConsumerConfig.from_kwargs(max_partition_fetch_bytes=120 * 2**20).client_kwargs(names)
    assert part["max_response_size"] >= 240 * 2**20
    assert ConsumerConfig.from_kwargs().client_kwargs(names)["max_response_size"] == DEFAULT_MAX_RESPONSE_SIZE
    core = ConsumerCore(ConsumerConfig.from_kwargs(fetch_max_bytes=150 * 2**20), now=0.0)
    assert core._client.config.max_response_size >= 300 * 2**20  # type: ignore[attr-defined]


def big_fetch_frame(cid: int, size: int) -> bytes:
    """A Fetch v12 response frame for correlation id ``cid`` carrying ``size`` bytes of records."""
    from kproto.protocol.headers import response_header_version

    resp = FetchResponse(responses=[F.FetchableTopicResponse(topic=T, partitions=[
        F.PartitionData(partition_index=0, high_watermark=1, last_stable_offset=1, records=bytes(size))])])
    body = resp.encode(12)
    header = cid.to_bytes(4, "big") + (b"\x00" if response_header_version(1, 12) >= 1 else b"")
    return (len(header) + len(body)).to_bytes(4, "big") + header + body


def test_a_large_frame_is_not_copied_into_a_second_buffer() -> None:
    """A ~50 MB Fetch answer fed in 64 KiB chunks is held once, not twice.

    Before: the receive buffer grew to the frame's size, then the whole frame was
    copied out of it (peak ~2x the frame). Now the buffer itself becomes the frame.
    """
    import tracemalloc

    from kproto.protocol.messages import FetchRequest
    from tests.unit.test_connection import ready_conn

    size = 50 * 1000 * 1000
    conn = ready_conn(keys=[*BROKER_KEYS, (1, 4, 12)])
    rec = Recorder()
    conn.send(FetchRequest(max_bytes=size), callback=rec, now=T0)
    conn.data_to_send()
    frame = big_fetch_frame(2, size)
    view = memoryview(frame)
    chunk = 64 * 1024
    tracemalloc.start()
    try:
        for i in range(0, len(frame), chunk):
            conn.receive_data(bytes(view[i : i + chunk]), T0 + 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    run_completions(conn)
    ((resp, err),) = rec.calls
    assert err is None and len(resp.responses[0].partitions[0].records) == size
    print(f"peak while receiving a {len(frame)}-byte frame: {peak / 1e6:.1f} MB")
    assert peak < 1.25 * len(frame)  # one buffer (with bytearray over-allocation), no second copy


# --- broker-supplied ids: found by fuzz/fuzz_producer_core.py ----------------------------------


def test_leader_without_an_address_is_no_leader() -> None:
    """Before: a Metadata answer naming leader 393217 (no such broker listed) made the
    producer's drain raise IllegalArgumentError out of receive_data/handle_timer."""
    import random

    from kproto.cluster import ClusterMetadata
    from kproto.producer import ProducerConfig, ProducerCore
    from tests.unit.test_client_rebootstrap import _metadata

    resp = _metadata(epoch=3, leader=393217, broker=1)
    encoded = type(resp).decode(resp.encode(12), 12)
    cm = ClusterMetadata()
    _, transient = cm.update(encoded)
    assert cm.leader_for("t", 0) is None and transient  # refreshed later, like LEADER_NOT_AVAILABLE
    assert cm.leader_epoch_for("t", 0) == 3
    # The whole producer core: a send to that partition waits for a leader instead of raising.
    core = ProducerCore(ProducerConfig.from_kwargs(bootstrap_servers="b1:9092"), now=0.0, rng=random.Random(1))
    core._client._cluster.update(encoded)  # type: ignore[attr-defined]
    assert core.send(topic="t", key=None, value=b"v", headers=None, partition=0, timestamp_ms=1, token=1, now=0.0)
    core.handle_timer(0.1)
    assert core.pending_count() == 1


def test_group_leader_assigns_the_partitions_listed_not_up_to_the_largest_index() -> None:
    """Found by fuzz/fuzz_consumer_core.py. Before: a Metadata answer listing partition
    2**31-1 made the group leader's range assignor build a list of 2**31 partitions
    (1.8 GB and counting); Java counts the partitions listed. (Index 1000 here: the
    old code lists 1001 partitions, without eating the machine.)"""
    from kproto.consumer.assignors import decode_assignment, encode_subscription
    from kproto.protocol.messages import JoinGroupResponse
    from kproto.protocol.messages import join_group as JG
    from tests.unit.test_consumer_core import wire

    core, client = make(group_id="g", enable_auto_commit=False)
    client.cluster.leaders = {(T, 0): 1, (T, 1000): 1}
    core.subscribe([T], now=0.0)
    ((_, cb, _, _),) = client.take("JoinGroupRequest")
    members = [JG.JoinGroupResponseMember(member_id="m1", metadata=encode_subscription([T]))]
    deliver(core, cb, wire(JoinGroupResponse(generation_id=1, protocol_type="consumer", protocol_name="range",
                                             leader="m1", member_id="m1", members=members), 5))
    ((sreq, _, _, _),) = client.take("SyncGroupRequest")
    assert {a.member_id: decode_assignment(a.assignment) for a in sreq.assignments} == {"m1": {TP0, TP1}}


def test_negative_partition_index_in_metadata_is_ignored() -> None:
    from kproto.cluster import ClusterMetadata
    from tests.unit.test_client_rebootstrap import _metadata

    resp = _metadata(epoch=1, leader=1, broker=1)
    resp.topics[0].partitions[0].partition_index = -3
    cm = ClusterMetadata()
    cm.update(type(resp).decode(resp.encode(12), 12))
    assert cm.partitions_for("t") == set()


@pytest.mark.parametrize("base", [-5, 2**63 - 2, -(2**63)])
def test_produce_answer_with_an_impossible_base_offset_reports_it_unknown(base: int) -> None:
    """Before: the broker's base offset was handed out as is (offsets past int64 or below -1)."""
    from kproto.producer import RecordsDelivered
    from tests.unit.test_producer_core import make as make_producer
    from tests.unit.test_producer_core import produce_requests, produce_response
    from tests.unit.test_producer_core import send as send_record

    core, client = make_producer()
    assert send_record(core, "a") and send_record(core, "b")
    core.data_to_send()
    (req,) = produce_requests(client)
    client.answer(req, produce_response(req, base=base))
    core.receive_data(1, b"", 0.01)
    (ev,) = core.events()
    assert isinstance(ev, RecordsDelivered) and ev.tokens == ["a", "b"] and ev.base_offset == -1


def test_a_fetch_answer_that_does_not_decode_is_reported_and_retried() -> None:
    """Before: a broker answering every Fetch with undecodable bytes made the consumer
    retry silently for ever (the connection's protocol error never reached the user)."""
    core, client = started({0: 0})
    for attempt in range(3):
        _, cb = fetch_for(client, 0)
        cb(None, KafkaProtocolError("bad FetchResponse v12 from node 1: 3 trailing bytes"))
        core.handle_timer(attempt + 1.0)  # after retry_backoff_ms the Fetch goes again
    with pytest.raises(KafkaProtocolError, match="trailing"):
        core.poll(None, 3.0)
    assert core.poll(None, 3.1) == {}  # once while it waits, not once per retry
    core.handle_timer(4.0)
    _, cb = fetch_for(client, 0)  # still fetching
    deliver(core, cb, fetch_response({0: (0, v2_batch(0, [0, 1]))}), 4.0)
    assert drain(core, 4.1) == ([0, 1], [])

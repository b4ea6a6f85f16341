"""Hostile or broken brokers, fed to the sans-I/O core as bytes (issue 15).

Each test drives a real core object (BrokerConnection, PartitionRecords,
ConsumerCore) with crafted broker answers and checks that the answer fails
only what it concerns, with a KafkaError, and that nothing stalls, repeats
or grows.
"""

from __future__ import annotations

from kproto.connection import MAX_THROTTLE_MS, BrokerConnection, ConnectionState
from kproto.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from kproto.protocol.messages import MetadataRequest
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


def test_throttle_is_capped_at_the_request_timeout_too() -> None:
    import attrs

    from tests.unit.test_connection import CONFIG

    conn = new_conn(attrs.evolve(CONFIG, request_timeout_ms=2000))
    conn.connection_made(T0)
    conn.data_to_send()
    conn.receive_data(UNSUPPORTED_V0, T0)
    conn.data_to_send()
    conn.receive_data(api_versions_v2_response(1, BROKER_KEYS, throttle_ms=MAX_INT32), T0)
    assert conn.throttled_until == T0 + 2


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
    from tests.unit.test_consumer_core import TP0, answer_list_offsets, deliver, fetch_response, make

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

"""BrokerConnection, byte for byte: literal frames in, exact frames and deadlines out."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kproto.connection import (
    CORRELATION_ID_LIMIT,
    BrokerConnection,
    ConnectionConfig,
    ConnectionState,
)
from kproto.errors import (
    Cancelled,
    IllegalArgumentError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaProtocolError,
    KafkaTimeoutError,
    UnsupportedVersionError,
)
from kproto.protocol.messages import MetadataRequest, ProduceRequest, SaslHandshakeRequest

CONFIG = ConnectionConfig(
    client_id="kproto", client_software_name="kproto", client_software_version="0.1.0.dev0"
)
T0 = 1000.0

# --- literal frames ------------------------------------------------------------

#: ApiVersions v4 request, correlation id 0: header v2 (client id "kproto", no tags),
#: body: compact strings "kproto" and "0.1.0.dev0" (KIP-511), no tags.
API_VERSIONS_V4 = bytes.fromhex(
    "00000024001200040000000000066b70726f746f00076b70726f746f0b302e312e302e6465763000"
)
#: ApiVersions v2 request, correlation id 1: header v1, empty body.
API_VERSIONS_V2 = bytes.fromhex("00000010001200020000000100066b70726f746f")


def api_versions_v2_response(
    correlation_id: int, keys: list[tuple[int, int, int]], throttle_ms: int = 0
) -> bytes:
    """ApiVersions v2 response: header v0 (always, KIP-511), error 0, the key ranges, throttle."""
    body = b"\x00\x00" + len(keys).to_bytes(4, "big")
    for key, lo, hi in keys:
        body += key.to_bytes(2, "big") + lo.to_bytes(2, "big") + hi.to_bytes(2, "big")
    body += throttle_ms.to_bytes(4, "big")
    payload = correlation_id.to_bytes(4, "big") + body
    return len(payload).to_bytes(4, "big") + payload


#: The broker does not know ApiVersions v4: v0 body, error 35, offers ApiVersions 0-2.
UNSUPPORTED_V0 = bytes.fromhex("0000001000000000002300000001001200000002")
BROKER_KEYS = [(0, 0, 11), (3, 0, 12), (10, 0, 6), (17, 0, 1), (18, 0, 2)]
#: Metadata v12 request, empty topic list, auto-create on: header v2 + 4 body bytes.
METADATA_V12_REQ = "000000150003000c{cid}00066b70726f746f0001010000"


def metadata_req(cid: int) -> bytes:
    return bytes.fromhex(METADATA_V12_REQ.format(cid=f"{cid:08x}"))


def metadata_v12_response(cid: int, throttle_ms: int = 0) -> bytes:
    """Metadata v12 response: header v1 (tags), no brokers, null cluster id, controller -1, no topics."""
    return bytes.fromhex(f"00000011{cid:08x}00{throttle_ms:08x}0100ffffffff0100")


# --- helpers ---------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, KafkaError | None]] = []

    def __call__(self, response: Any, error: KafkaError | None) -> None:
        self.calls.append((response, error))


def run_completions(conn: BrokerConnection) -> None:
    done, conn.completions = conn.completions, []
    for callback, response, error in done:
        callback(response, error)


def new_conn(config: ConnectionConfig = CONFIG, **kw: Any) -> BrokerConnection:
    conn = BrokerConnection(1, "b1", 9092, config=config, now=T0, **kw)
    conn.start_connect(T0)
    return conn


def ready_conn(
    config: ConnectionConfig = CONFIG, keys: list[tuple[int, int, int]] = BROKER_KEYS
) -> BrokerConnection:
    """A connection that went through the v4 -> v2 fallback; next correlation id is 2."""
    conn = new_conn(config)
    conn.connection_made(T0)
    assert conn.data_to_send() == API_VERSIONS_V4
    conn.receive_data(UNSUPPORTED_V0, T0)
    assert conn.data_to_send() == API_VERSIONS_V2
    conn.receive_data(api_versions_v2_response(1, keys), T0)
    assert conn.state is ConnectionState.READY
    return conn


# --- the handshake ---------------------------------------------------------------


def test_handshake_starts_with_api_versions_v4_and_a_setup_deadline() -> None:
    conn = BrokerConnection(1, "b1", 9092, config=CONFIG, now=T0)
    assert conn.state is ConnectionState.WAITING
    assert conn.get_timer() is None
    conn.start_connect(T0)
    assert conn.state is ConnectionState.CONNECTING
    assert conn.get_timer() == T0 + 10.0
    assert conn.data_to_send() == b""
    conn.connection_made(T0 + 0.5)
    assert conn.state is ConnectionState.API_VERSIONS
    assert conn.data_to_send() == API_VERSIONS_V4
    assert conn.get_timer() == T0 + 10.0


def test_api_versions_v4_answered_directly_makes_the_connection_ready() -> None:
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    resp = conn.receive_data  # the broker knows v4: flexible body, but header v0 still (KIP-511)
    body = bytes.fromhex("00000300030000000c00001200000004000000000000")
    resp(len(body + b"\0\0\0\0").to_bytes(4, "big") + b"\0\0\0\0" + body, T0 + 1)
    assert conn.state is ConnectionState.READY
    assert conn.broker_versions == {3: (0, 12), 18: (0, 4)}
    assert conn.api_version(3) == 12
    assert conn.api_version(3, max_version=9) == 9
    assert conn.api_version(0) is None  # the broker did not list Produce
    assert conn.get_timer() is None  # the setup deadline is gone once READY
    assert conn.is_ready(T0 + 1)


def test_unsupported_api_versions_retries_at_the_offered_version_kip_511() -> None:
    conn = ready_conn()
    assert conn.broker_versions[18] == (0, 2)
    assert conn.completions == []


def api_versions_request(version: int, cid: int) -> bytes:
    """The ApiVersions request this connection writes at ``version``."""
    if version >= 3:
        assert cid == 0
        return API_VERSIONS_V4[:6] + version.to_bytes(2, "big") + API_VERSIONS_V4[8:]
    return API_VERSIONS_V2[:6] + version.to_bytes(2, "big") + cid.to_bytes(4, "big") + API_VERSIONS_V2[12:]


def refused(cid: int, body: bytes) -> bytes:
    """An ApiVersions answer: header v0 then ``body`` (error code first)."""
    return (4 + len(body)).to_bytes(4, "big") + cid.to_bytes(4, "big") + body


def test_unsupported_api_versions_steps_down_to_v0_then_closes_never_repeating_a_version() -> None:
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    conn.receive_data(UNSUPPORTED_V0, T0)  # offers 0-2
    assert conn.data_to_send() == API_VERSIONS_V2
    # v2 refused too although it was offered: distrust the range and ask v0.
    conn.receive_data(bytes.fromhex("0000001000000001002300000001001200000002"), T0)
    assert conn.state is ConnectionState.API_VERSIONS
    assert conn.data_to_send() == api_versions_request(0, 2)
    conn.receive_data(refused(2, bytes.fromhex("002300000000")), T0)  # v0 refused: nothing lower
    assert conn.state is ConnectionState.CLOSED
    assert isinstance(conn.error, UnsupportedVersionError) and "v0" in str(conn.error)
    assert conn.needs_close_command


# --- tolerance as the Java client (issue 10) -------------------------------------------


def test_unsupported_api_versions_body_that_reads_as_nothing_retries_v0() -> None:
    """UNSUPPORTED_VERSION in a body that reads neither as v4 nor as v0: ask again at v0.

    The body is the one an independent broker sent (issue 10): after the error
    code, ``01 00 12 00 ...`` read as a v0 array length is 16781824 entries.
    """
    conn = new_conn()
    conn.connection_made(T0)
    assert conn.data_to_send() == API_VERSIONS_V4
    body = bytes.fromhex("0023" "01001200" "000300" "00000000")
    conn.receive_data(refused(0, body), T0)
    assert conn.state is ConnectionState.API_VERSIONS and conn.error is None
    assert conn.data_to_send() == api_versions_request(0, 1)
    assert conn.api_versions_version == 0
    v0 = api_versions_v2_response(1, BROKER_KEYS)[4:-4]  # v0: no throttle field
    conn.receive_data(len(v0).to_bytes(4, "big") + v0, T0)
    assert conn.state is ConnectionState.READY
    assert conn.api_version(3) == 12


def test_unsupported_api_versions_flexible_body_gives_the_broker_range() -> None:
    """The broker answers in the layout asked (v4, flexible), offering ApiVersions 0-3: retry at 3."""
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    # error 35, compact array of 1: (18, 0, 3, no tags), throttle 0, no tags
    body = bytes.fromhex("0023" "02" "0012" "0000" "0003" "00" "00000000" "00")
    conn.receive_data(refused(0, body), T0)
    assert conn.api_versions_version == 3
    assert conn.data_to_send() == api_versions_request(3, 0)[:8] + (1).to_bytes(4, "big") + API_VERSIONS_V4[12:]


def test_unsupported_api_versions_v0_body_without_a_range_retries_v0() -> None:
    """A v0 body with an empty key list (a pre-2.4 broker, KIP-511 not yet there): Java asks v0."""
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    conn.receive_data(refused(0, bytes.fromhex("002300000000")), T0)
    assert conn.data_to_send() == api_versions_request(0, 1)


def test_api_versions_answer_in_the_v0_layout_is_read_as_v0() -> None:
    """A v4 request answered in the v0 layout without an error: read as v0 (Java's parse fallback)."""
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    v0 = api_versions_v2_response(0, BROKER_KEYS)[4:-4]  # header v0, error 0, v0 array, no throttle
    conn.receive_data(len(v0).to_bytes(4, "big") + v0, T0)
    assert conn.state is ConnectionState.READY
    assert conn.broker_versions[3] == (0, 12)


def test_api_versions_answer_that_reads_as_nothing_is_a_protocol_error() -> None:
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    conn.receive_data(refused(0, bytes.fromhex("0000ff")), T0)
    assert conn.state is ConnectionState.CLOSED and isinstance(conn.error, KafkaProtocolError)


def test_api_versions_start_version_carries_over_from_the_last_connection() -> None:
    conn = new_conn(api_versions_version=0)
    conn.connection_made(T0)
    assert conn.data_to_send() == api_versions_request(0, 0)


def test_api_versions_error_other_than_unsupported_closes() -> None:
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    # error 31 CLUSTER_AUTHORIZATION_FAILED in a v0 body (no throttle field in v0... but we asked v4)
    body = bytes.fromhex("001f010000000000")
    conn.receive_data(len(body + b"\0" * 4).to_bytes(4, "big") + b"\0" * 4 + body, T0)
    assert conn.state is ConnectionState.CLOSED
    assert conn.error is not None and getattr(conn.error, "errno", None) == 31


def test_setup_deadline_closes_a_connection_that_never_finishes() -> None:
    conn = new_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0 + 1)
    assert conn.get_timer() == T0 + 10.0
    conn.handle_timer(T0 + 9.999)
    assert conn.state is ConnectionState.CONNECTING
    conn.handle_timer(T0 + 10.0)
    assert conn.state is ConnectionState.CLOSED
    assert conn.needs_close_command
    run_completions(conn)
    assert len(rec.calls) == 1 and isinstance(rec.calls[0][1], KafkaConnectionError)
    assert conn.get_timer() is None


# --- requests and responses --------------------------------------------------------


def test_request_queued_during_handshake_is_written_at_the_negotiated_version() -> None:
    conn = new_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.connection_made(T0)
    assert conn.data_to_send() == API_VERSIONS_V4
    conn.receive_data(UNSUPPORTED_V0, T0)
    conn.data_to_send()
    conn.receive_data(api_versions_v2_response(1, BROKER_KEYS), T0 + 0.25)
    assert conn.data_to_send() == metadata_req(2)
    assert conn.in_flight_count == 1
    assert conn.get_timer() == T0 + 30.0  # request_timeout_ms counts from send()
    conn.receive_data(metadata_v12_response(2), T0 + 0.5)
    assert conn.in_flight_count == 0
    run_completions(conn)
    [(response, error)] = rec.calls
    assert error is None
    assert response.brokers == [] and response.topics == [] and response.controller_id == -1
    assert conn.get_timer() is None


def test_response_split_byte_by_byte_and_two_in_one_chunk() -> None:
    conn = ready_conn()
    rec = Recorder()
    for _ in range(3):
        conn.send(MetadataRequest(), callback=rec, now=T0)
    assert conn.data_to_send() == metadata_req(2) + metadata_req(3) + metadata_req(4)
    first = metadata_v12_response(2)
    for i in range(len(first)):
        conn.receive_data(first[i : i + 1], T0)
        assert conn.in_flight_count == (3 if i < len(first) - 1 else 2)
    conn.receive_data(metadata_v12_response(3) + metadata_v12_response(4), T0)
    assert conn.in_flight_count == 0
    run_completions(conn)
    assert [e for _, e in rec.calls] == [None, None, None]


def test_in_flight_limit_holds_requests_back() -> None:
    conn = ready_conn(
        ConnectionConfig(max_in_flight_requests_per_connection=2, client_software_version="0.1.0.dev0")
    )
    rec = Recorder()
    for _ in range(3):
        conn.send(MetadataRequest(), callback=rec, now=T0)
    assert conn.data_to_send() == metadata_req(2) + metadata_req(3)
    assert (conn.in_flight_count, conn.queued_count) == (2, 1)
    assert not conn.is_ready(T0)
    conn.receive_data(metadata_v12_response(2), T0)
    assert conn.data_to_send() == metadata_req(4)
    assert (conn.in_flight_count, conn.queued_count) == (2, 0)


def test_no_response_request_completes_when_handed_to_the_driver() -> None:
    conn = ready_conn()
    rec = Recorder()
    conn.send(ProduceRequest(acks=0, timeout_ms=1000), callback=rec, now=T0, expect_response=False)
    assert conn.in_flight_count == 0
    assert conn.completions == []
    data = conn.data_to_send()
    # Produce v11 (flexible): header v2, null transactional id, acks 0, timeout 1000, no topics.
    assert data == bytes.fromhex("0000001a0000000b0000000200066b70726f746f00000000000003e80100")
    run_completions(conn)
    assert rec.calls == [(None, None)]
    assert conn.get_timer() is None


def test_correlation_ids_wrap_at_2_31() -> None:
    conn = BrokerConnection(1, "b", 1, config=CONFIG, now=T0, first_correlation_id=CORRELATION_ID_LIMIT - 1)
    conn.start_connect(T0)
    conn.connection_made(T0)
    assert conn.data_to_send()[8:12] == b"\x7f\xff\xff\xff"
    conn.receive_data(bytes.fromhex("000000107fffffff002300000001001200000002"), T0)
    assert conn.data_to_send()[8:12] == b"\x00\x00\x00\x00"


def test_no_version_overlap_fails_the_request_with_unsupported_version() -> None:
    conn = ready_conn(keys=[(3, 14, 15), (18, 0, 2)])  # a future broker that dropped Metadata <= 13
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    assert conn.data_to_send() == b""
    run_completions(conn)
    [(response, error)] = rec.calls
    assert response is None and isinstance(error, UnsupportedVersionError)
    assert "kproto supports 0-13" in str(error) and "versions 14-15" in str(error)
    assert conn.state is ConnectionState.READY


def test_request_the_codec_cannot_encode_fails_alone_and_leaves_no_bytes() -> None:
    conn = ready_conn()
    rec = Recorder()
    conn.send(ProduceRequest(transactional_id="tx"), callback=rec, now=T0, max_version=2)  # v2 has no txn id
    conn.send(MetadataRequest(), callback=rec, now=T0)
    assert conn.data_to_send() == metadata_req(2)
    run_completions(conn)
    assert isinstance(rec.calls[0][1], UnsupportedVersionError)


# --- throttling (KIP-219) -------------------------------------------------------------


def test_throttle_time_holds_back_the_next_request() -> None:
    conn = ready_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.data_to_send()
    conn.receive_data(metadata_v12_response(2, throttle_ms=500), T0 + 1)
    assert conn.throttled_until == T0 + 1.5
    assert not conn.is_ready(T0 + 1.2)
    conn.send(MetadataRequest(), callback=rec, now=T0 + 1.2)
    assert conn.data_to_send() == b""
    assert conn.get_timer() == T0 + 1.5
    conn.handle_timer(T0 + 1.5)
    assert conn.data_to_send() == metadata_req(3)
    assert conn.throttled_until == 0.0
    assert conn.get_timer() == T0 + 1.2 + 30


def test_throttle_end_is_a_deadline_even_with_nothing_queued() -> None:
    conn = ready_conn()
    conn.send(MetadataRequest(), callback=Recorder(), now=T0)
    conn.data_to_send()
    conn.receive_data(metadata_v12_response(2, throttle_ms=40), T0 + 1)
    assert conn.get_timer() == T0 + 1.04  # so a layer waiting for is_ready() wakes up
    conn.handle_timer(T0 + 1.04)
    assert conn.is_ready(T0 + 1.04)
    assert conn.get_timer() is None


# --- deadlines ------------------------------------------------------------------------


def test_in_flight_timeout_fails_the_request_and_closes_the_connection() -> None:
    conn = ready_conn()
    late, other = Recorder(), Recorder()
    conn.send(MetadataRequest(), callback=late, now=T0)
    conn.send(MetadataRequest(), callback=other, now=T0 + 5, timeout_ms=60000)
    conn.data_to_send()
    assert conn.get_timer() == T0 + 30
    conn.handle_timer(T0 + 29.999)
    assert conn.state is ConnectionState.READY
    conn.handle_timer(T0 + 30)
    assert conn.state is ConnectionState.CLOSED and conn.needs_close_command
    run_completions(conn)
    assert isinstance(late.calls[0][1], KafkaTimeoutError)
    assert isinstance(other.calls[0][1], KafkaConnectionError) and other.calls[0][1].retriable


def test_queued_request_times_out_alone() -> None:
    conn = new_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0, timeout_ms=2000)
    assert conn.get_timer() == T0 + 2
    conn.handle_timer(T0 + 2)
    assert conn.state is ConnectionState.CONNECTING
    run_completions(conn)
    assert isinstance(rec.calls[0][1], KafkaTimeoutError)
    assert conn.get_timer() == T0 + 10


# --- bad input from the broker ----------------------------------------------------------


def _bad(conn: BrokerConnection, data: bytes) -> list[tuple[Any, KafkaError | None]]:
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.data_to_send()
    conn.receive_data(data, T0)
    assert conn.state is ConnectionState.CLOSED
    assert conn.needs_close_command
    assert isinstance(conn.error, KafkaProtocolError)
    run_completions(conn)
    return rec.calls


def test_unexpected_correlation_id_is_a_protocol_error() -> None:
    [(resp, err)] = _bad(ready_conn(), metadata_v12_response(7))
    assert resp is None and isinstance(err, KafkaProtocolError) and err.retriable
    assert "expected 2" in str(err)


def test_frame_over_the_bound_is_rejected_from_its_size_prefix() -> None:
    small = ConnectionConfig(max_response_size=64, client_software_version="0.1.0.dev0")
    calls = _bad(ready_conn(small), b"\x00\x00\x00\x41")  # 65 bytes declared, nothing else sent yet
    assert isinstance(calls[0][1], KafkaProtocolError)


def test_http_reply_is_caught_by_the_default_bound() -> None:
    calls = _bad(ready_conn(), b"HTTP/1.1 400 Bad Request\r\n")
    assert "over the limit" in str(calls[0][1])


def test_negative_frame_size_is_a_protocol_error() -> None:
    _bad(ready_conn(), b"\xff\xff\xff\xfe")


def test_garbage_body_fails_the_request_with_a_protocol_error() -> None:
    [(resp, err)] = _bad(ready_conn(), bytes.fromhex("0000000700000002000000"))  # truncated
    assert resp is None and isinstance(err, KafkaProtocolError)


def test_trailing_bytes_after_a_body_are_accepted_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 10: a Metadata v12 answer with 1 byte after its fields is read as far as known (Java does)."""
    caplog.set_level(logging.DEBUG, logger="kproto.connection")
    conn = ready_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.data_to_send()
    good = metadata_v12_response(2)
    conn.receive_data((int.from_bytes(good[:4], "big") + 1).to_bytes(4, "big") + good[4:] + b"\x00", T0)
    run_completions(conn)
    [(response, error)] = rec.calls
    assert error is None and response.controller_id == -1 and response.brokers == []
    assert conn.state is ConnectionState.READY
    assert conn.responses_with_trailing_bytes == 1
    [record] = [r for r in caplog.records if r.name == "kproto.connection"]
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "MetadataResponse v12 from node 1: 1 bytes after the known fields ignored"


def test_a_truncated_body_is_still_a_protocol_error() -> None:
    good = metadata_v12_response(2)
    _bad(ready_conn(), (int.from_bytes(good[:4], "big") - 1).to_bytes(4, "big") + good[4:-1])


def test_unknown_tagged_fields_are_kept_and_ignored() -> None:
    """A Metadata v12 answer with tags this client does not know, in the header, a broker and the body."""
    conn = ready_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.data_to_send()
    payload = bytes.fromhex(
        "00000002"  # correlation id 2
        "01" "05" "02" "abcd"  # response header: one unknown tag (5), 2 bytes
        "00000000"  # throttle
        "02" "00000007" "03" "6231" "00002384" "00"  # brokers: node 7 "b1":9092, null rack
        "01" "09" "01" "ff"  # ... then that broker's tags: tag 9, 1 byte
        "00"  # null cluster id
        "ffffffff"  # controller -1
        "01"  # no topics
        "02" "07" "03" "010203" "1f" "00"  # body tags: tag 7 (3 bytes), tag 31 (empty)
    )
    conn.receive_data(len(payload).to_bytes(4, "big") + payload, T0)
    run_completions(conn)
    [(response, error)] = rec.calls
    assert error is None and conn.state is ConnectionState.READY
    assert [(b.node_id, b.host, b.port, b.rack) for b in response.brokers] == [(7, "b1", 9092, None)]
    assert response.brokers[0].unknown_tags == {9: b"\xff"}
    assert response.unknown_tags == {7: b"\x01\x02\x03", 31: b""}
    assert response.encode(12).endswith(bytes.fromhex("0207030102031f00"))  # written back on encode
    assert conn.responses_with_trailing_bytes == 0


def test_response_with_nothing_in_flight_is_a_protocol_error() -> None:
    conn = ready_conn()
    conn.receive_data(metadata_v12_response(2), T0)
    assert conn.state is ConnectionState.CLOSED and isinstance(conn.error, KafkaProtocolError)


def test_bad_frame_during_handshake_closes() -> None:
    conn = new_conn()
    conn.connection_made(T0)
    conn.data_to_send()
    conn.receive_data(b"\x00\x00\x00\x02\x00\x00", T0)  # too short for a correlation id
    assert conn.state is ConnectionState.CLOSED and isinstance(conn.error, KafkaProtocolError)


# --- lifecycle and misuse ----------------------------------------------------------------


def test_connection_lost_fails_everything_retriably() -> None:
    conn = ready_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.data_to_send()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.connection_lost(ConnectionResetError("reset"), T0)
    assert conn.state is ConnectionState.CLOSED and not conn.needs_close_command
    run_completions(conn)
    assert [type(e) for _, e in rec.calls] == [KafkaConnectionError, KafkaConnectionError]
    assert all(e is not None and e.retriable for _, e in rec.calls)


def test_close_cancels_pending_requests() -> None:
    conn = ready_conn()
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.close(None, T0)
    assert conn.needs_close_command
    run_completions(conn)
    assert isinstance(rec.calls[0][1], Cancelled)
    conn.close(None, T0)  # idempotent


def test_misuse_raises_at_the_call() -> None:
    conn = new_conn()
    with pytest.raises(IllegalStateError):
        conn.receive_data(b"\x00", T0)  # before connection_made
    with pytest.raises(IllegalArgumentError):
        conn.send(MetadataRequest(), callback=Recorder(), now=T0, timeout_ms=-1)
    with pytest.raises(IllegalStateError):
        conn.start_connect(T0)  # twice
    conn.connection_made(T0)
    with pytest.raises(IllegalStateError):
        conn.connection_made(T0)
    conn.close(None, T0)
    with pytest.raises(IllegalStateError):
        conn.send(MetadataRequest(), callback=Recorder(), now=T0)
    with pytest.raises(IllegalStateError):
        conn.receive_data(b"\x00", T0)


# --- the authentication hook -----------------------------------------------------------


class FakeSasl:
    """Sends SaslHandshake v1 and finishes when it is answered."""

    def __init__(self) -> None:
        self.responses: list[Any] = []

    def start(self, connection: BrokerConnection, now: float) -> None:
        def done(response: Any, error: KafkaError | None) -> None:
            self.responses.append(response)
            connection.authentication_done(error, now)

        connection.send_handshake_request(SaslHandshakeRequest(mechanism="PLAIN"), callback=done, now=now)


def test_authenticator_runs_between_api_versions_and_ready() -> None:
    sasl = FakeSasl()
    conn = BrokerConnection(1, "b1", 9092, config=CONFIG, now=T0, authenticator=sasl)
    conn.start_connect(T0)
    rec = Recorder()
    conn.send(MetadataRequest(), callback=rec, now=T0)
    conn.connection_made(T0)
    conn.data_to_send()
    conn.receive_data(UNSUPPORTED_V0, T0)
    conn.data_to_send()
    conn.receive_data(api_versions_v2_response(1, BROKER_KEYS), T0)
    assert conn.state is ConnectionState.AUTHENTICATING
    # SaslHandshake v1: header v1, mechanism "PLAIN"; the queued Metadata waits.
    assert conn.data_to_send() == bytes.fromhex("00000017001100010000000200066b70726f746f0005504c41494e")
    assert conn.get_timer() == T0 + 10  # still under the setup deadline
    conn.receive_data(bytes.fromhex("00000011000000020000000000010005504c41494e"), T0)
    run_completions(conn)
    assert sasl.responses[0].mechanisms == ["PLAIN"]
    assert conn.state is ConnectionState.READY
    assert conn.data_to_send() == metadata_req(3)


# --- any bytes at all ----------------------------------------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=7))
def test_arbitrary_bytes_only_close_with_a_protocol_error(data: bytes, chunk: int) -> None:
    """Whole or in chunks, broker bytes never raise: the connection waits or closes with a protocol error."""
    outcomes = []
    for step in (len(data) or 1, chunk):
        conn = ready_conn()
        rec = Recorder()
        conn.send(MetadataRequest(), callback=rec, now=T0)
        conn.data_to_send()
        for i in range(0, len(data), step):
            if conn.state is ConnectionState.CLOSED:
                break
            conn.receive_data(data[i : i + step], T0)
        if conn.state is ConnectionState.CLOSED:
            assert isinstance(conn.error, KafkaProtocolError)
        run_completions(conn)
        outcomes.append((conn.state, [type(e) for _, e in rec.calls]))
    assert outcomes[0] == outcomes[1]


# --- the transition table -------------------------------------------------------------------

import itertools  # noqa: E402

from kproto.connection import _TRANSITIONS, _Input  # noqa: E402


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(ConnectionState, _Input)), ids=lambda v: getattr(v, "value", v)
)
def test_every_state_input_pair_follows_the_table(state: ConnectionState, event: _Input) -> None:
    conn = BrokerConnection(1, "b", 1, config=CONFIG, now=T0)
    conn.state = state
    if (state, event) in _TRANSITIONS:
        conn._transition(event)
        assert conn.state is _TRANSITIONS[state, event]
    else:
        with pytest.raises(IllegalStateError):
            conn._transition(event)
        assert conn.state is state


def test_closed_is_terminal_and_everything_else_can_close() -> None:
    assert not [k for k in _TRANSITIONS if k[0] is ConnectionState.CLOSED]
    for state in ConnectionState:
        if state is not ConnectionState.CLOSED:
            assert _TRANSITIONS[state, _Input.CLOSE] is ConnectionState.CLOSED

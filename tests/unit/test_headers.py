"""Request/response headers and framing, asserted byte for byte."""

from __future__ import annotations

import struct

import pytest

from kproto.errors import DecodeError
from kproto.protocol.headers import (
    decode_response,
    decode_response_header,
    encode_request,
    read_frame,
    request_header_version,
    response_header_version,
    write_request,
)
from kproto.protocol.messages import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
)
from kproto.protocol.messages.api_versions import ApiVersion
from kproto.protocol.messages.metadata import MetadataRequestTopic


def test_header_versions() -> None:
    assert request_header_version(3, 8) == 1  # Metadata v8: not flexible
    assert request_header_version(3, 9) == 2  # Metadata v9: flexible
    assert request_header_version(18, 3) == 2  # ApiVersions v3
    assert request_header_version(18, 2) == 1
    assert response_header_version(3, 8) == 0
    assert response_header_version(3, 9) == 1
    assert response_header_version(18, 3) == 0  # ApiVersions: always v0
    assert response_header_version(18, 4) == 0
    assert response_header_version(36, 0) == 0  # SaslAuthenticate v0
    assert response_header_version(36, 2) == 1


def test_encode_api_versions_v3_request() -> None:
    frame = encode_request(
        ApiVersionsRequest(client_software_name="kp", client_software_version="1"),
        3,
        correlation_id=7,
        client_id="cid",
    )
    expected = (
        bytes.fromhex("0012000300000007")  # key 18, version 3, correlation 7
        + b"\x00\x03cid"  # client id: int16 length even in header v2
        + b"\x00"  # header tagged fields
        + b"\x03kp"
        + b"\x021"
        + b"\x00"  # compact strings, body tagged fields
    )
    assert frame == struct.pack(">i", len(expected)) + expected


def test_encode_metadata_v1_request_header_v1_with_null_client_id() -> None:
    frame = encode_request(MetadataRequest(topics=None), 1, correlation_id=1, client_id=None)
    assert frame == bytes.fromhex("0000000e0003000100000001ffffffffffff")


def test_write_request_appends_frames() -> None:
    out = bytearray(b"prefix")
    write_request(out, MetadataRequest(topics=None), 1, 1, None)
    write_request(out, MetadataRequest(topics=None), 1, 2, None)
    assert out[:6] == b"prefix"
    view = memoryview(bytes(out))
    first = read_frame(view, 6, 1 << 20)
    assert first is not None
    frame, pos = first
    assert bytes(frame[4:8]) == b"\x00\x00\x00\x01"
    second = read_frame(view, pos, 1 << 20)
    assert second is not None
    assert bytes(second[0][4:8]) == b"\x00\x00\x00\x02"
    assert second[1] == len(out)


def test_read_frame_needs_more_and_bounds() -> None:
    data = struct.pack(">i", 5) + b"abcde"
    for cut in range(len(data)):
        assert read_frame(memoryview(data[:cut]), 0, 100) is None
    got = read_frame(memoryview(data + b"\x00"), 0, 100)
    assert got is not None
    assert bytes(got[0]) == b"abcde" and got[1] == 9
    with pytest.raises(DecodeError, match="negative"):
        read_frame(memoryview(struct.pack(">i", -1)), 0, 100)
    with pytest.raises(DecodeError, match="limit"):
        read_frame(memoryview(struct.pack(">i", 101)), 0, 100)


def test_response_header_v0_and_v1() -> None:
    assert decode_response_header(memoryview(b"\x00\x00\x00\x09rest"), 3, 8) == (9, 4)
    # v1: correlation id then tagged fields (one tag 2 of 1 byte, skipped).
    assert decode_response_header(memoryview(b"\x00\x00\x00\x09\x01\x02\x01zrest"), 3, 9) == (9, 8)
    with pytest.raises(DecodeError):
        decode_response_header(memoryview(b"\x00\x00\x00"), 3, 0)
    with pytest.raises(DecodeError):
        decode_response_header(memoryview(b"\x00\x00\x00\x09"), 3, 9)
    with pytest.raises(DecodeError):
        decode_response_header(memoryview(b"\x00\x00\x00\x09\x01\x02\x05z"), 3, 9)


def test_decode_response_api_versions_uses_header_v0() -> None:
    body = ApiVersionsResponse(error_code=0, throttle_time_ms=3).encode(3)
    frame = memoryview(b"\x00\x00\x00\x2a" + body)
    cid, resp = decode_response(frame, ApiVersionsResponse, 3)
    assert cid == 42
    assert resp.throttle_time_ms == 3


def test_unsupported_api_versions_answer_is_read_as_v0() -> None:
    # The broker answers a too-new ApiVersions request with a v0 body.
    v0 = ApiVersionsResponse(error_code=35, api_keys=[ApiVersion(api_key=18, min_version=0, max_version=2)])
    frame = memoryview(b"\x00\x00\x00\x01" + v0.encode(0))
    cid, resp = decode_response(frame, ApiVersionsResponse, 3)
    assert cid == 1
    assert resp == v0


def test_decode_response_metadata_v12() -> None:
    resp = MetadataResponse(cluster_id="c", controller_id=3)
    frame = memoryview(b"\x00\x00\x00\x05\x00" + resp.encode(12))
    cid, got = decode_response(frame, MetadataResponse, 12)
    assert (cid, got) == (5, resp)
    with pytest.raises(DecodeError, match="trailing"):
        decode_response(memoryview(bytes(frame) + b"\x00"), MetadataResponse, 12)


def test_write_request_leaves_no_partial_frame_on_error() -> None:
    out = bytearray(b"queued")
    with pytest.raises(ValueError):
        write_request(out, MetadataRequest(topics=[MetadataRequestTopic(name=None)]), 9, 1, "c")
    assert out == b"queued"

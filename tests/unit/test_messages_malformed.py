"""Malformed bodies raise DecodeError and nothing else; misuse raises at the call."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kproto.errors import DecodeError, UnsupportedVersionError
from kproto.protocol._primitives import read_uvarint
from kproto.protocol.messages import (
    RESPONSE_TYPES,
    ApiVersionsResponse,
    FetchResponse,
    MetadataRequest,
    MetadataResponse,
    ProduceRequest,
    SaslHandshakeRequest,
)
from kproto.protocol.messages.fetch import FetchableTopicResponse, PartitionData
from kproto.protocol.messages.metadata import MetadataResponseBroker, MetadataResponseTopic


def _metadata_response() -> MetadataResponse:
    return MetadataResponse(
        brokers=[MetadataResponseBroker(node_id=1, host="broker-1", port=9092, rack="r1")],
        cluster_id="cluster",
        controller_id=1,
        topics=[MetadataResponseTopic(error_code=0, name="topic", topic_id=uuid.UUID(int=5))],
    )


def _fetch_response() -> FetchResponse:
    return FetchResponse(
        responses=[
            FetchableTopicResponse(
                topic="t",
                topic_id=uuid.UUID(int=9),
                partitions=[PartitionData(partition_index=0, high_watermark=10, records=b"r" * 40)],
            )
        ]
    )


@pytest.mark.parametrize("version", [0, 1, 5, 8, 9, 12])
def test_every_truncation_of_metadata_is_decode_error(version: int) -> None:
    body = _metadata_response().encode(version)
    for cut in range(len(body)):
        with pytest.raises(DecodeError):
            MetadataResponse.decode(body[:cut], version)


@pytest.mark.parametrize("version", [4, 11, 12, 13, 16, 18])
def test_every_truncation_of_fetch_is_decode_error(version: int) -> None:
    body = _fetch_response().encode(version)
    for cut in range(len(body)):
        with pytest.raises(DecodeError):
            FetchResponse.decode(body[:cut], version)


def test_trailing_bytes_are_decode_error_but_read_reports_end() -> None:
    body = _metadata_response().encode(12)
    with pytest.raises(DecodeError, match="trailing"):
        MetadataResponse.decode(body + b"\x00", 12)
    obj, end = MetadataResponse.read(memoryview(body + b"\x00"), 0, 12)
    assert end == len(body)
    assert obj == _metadata_response()


def test_negative_array_length_is_decode_error() -> None:
    # MetadataResponse v0: brokers array length first.
    with pytest.raises(DecodeError, match="negative array length"):
        MetadataResponse.decode(struct.pack(">i", -2), 0)
    # -1 (null) is not allowed for a non-nullable array either.
    with pytest.raises(DecodeError, match="negative array length"):
        MetadataResponse.decode(struct.pack(">ii", -1, 0), 0)


def test_null_array_allowed_where_nullable() -> None:
    # MetadataRequest v1+: topics is nullable (null = all topics).
    assert MetadataRequest.decode(struct.pack(">i", -1), 1).topics is None
    with pytest.raises(DecodeError):
        MetadataRequest.decode(struct.pack(">i", -1), 0)


def test_huge_array_length_is_rejected_before_allocating() -> None:
    with pytest.raises(DecodeError, match="exceeds"):
        MetadataResponse.decode(struct.pack(">i", 2**31 - 1) + b"\x00" * 8, 0)
    # Compact array (v9+): uvarint N+1.
    with pytest.raises(DecodeError, match="exceeds"):
        MetadataResponse.decode(struct.pack(">i", 0) + b"\xff\xff\xff\xff\x07", 9)


def test_huge_string_length_is_decode_error() -> None:
    # One broker, node id 1, host length 0x7fff but only 3 bytes follow.
    body = struct.pack(">iih", 1, 1, 0x7FFF) + b"abc"
    with pytest.raises(DecodeError, match="exceeds"):
        MetadataResponse.decode(body, 0)


def test_negative_string_length_is_decode_error() -> None:
    body = struct.pack(">iih", 1, 1, -1) + struct.pack(">ii", 9092, 0)
    with pytest.raises(DecodeError):
        MetadataResponse.decode(body, 0)  # host is not nullable
    body = struct.pack(">iih", 1, 1, -7) + struct.pack(">ii", 9092, 0)
    with pytest.raises(DecodeError):
        MetadataResponse.decode(body, 0)


def test_negative_records_length_is_decode_error() -> None:
    body = bytearray(_fetch_response().encode(4))
    # records length is the last int32 before the 40 record bytes.
    pos = len(body) - 40 - 4
    assert struct.unpack_from(">i", body, pos)[0] == 40
    struct.pack_into(">i", body, pos, -3)
    with pytest.raises(DecodeError):
        FetchResponse.decode(bytes(body[: pos + 4]), 4)
    struct.pack_into(">i", body, pos, 41)
    with pytest.raises(DecodeError, match="exceeds"):
        FetchResponse.decode(bytes(body), 4)


def test_invalid_utf8_is_decode_error() -> None:
    body = struct.pack(">iih", 1, 1, 2) + b"\xff\xfe" + struct.pack(">ii", 9092, 0)
    with pytest.raises(DecodeError, match="UTF-8"):
        MetadataResponse.decode(body, 0)


def test_overlong_varint_is_decode_error() -> None:
    with pytest.raises(DecodeError, match="longer than 5"):
        read_uvarint(memoryview(b"\x80\x80\x80\x80\x80\x01"), 0)
    with pytest.raises(DecodeError, match="32-bit"):
        read_uvarint(memoryview(b"\xff\xff\xff\xff\x7f"), 0)
    assert read_uvarint(memoryview(b"\xff\xff\xff\xff\x0f"), 0) == (2**32 - 1, 5)
    # ApiVersionsResponse v3: error code, then a compact array length.
    with pytest.raises(DecodeError):
        ApiVersionsResponse.decode(b"\x00\x00" + b"\x80" * 6 + b"\x01", 3)


def test_tagged_field_size_overrun_is_decode_error() -> None:
    body = bytearray(ApiVersionsResponse().encode(3))
    assert body[-1] == 0
    body[-1:] = b"\x01\x05\x10abc"  # one tag (5) claiming 16 bytes, 3 present
    with pytest.raises(DecodeError):
        ApiVersionsResponse.decode(bytes(body), 3)


def test_unsupported_versions() -> None:
    with pytest.raises(UnsupportedVersionError):
        ProduceRequest().encode(99)
    with pytest.raises(UnsupportedVersionError):
        ProduceRequest().encode(-1)
    with pytest.raises(UnsupportedVersionError):
        ProduceRequest.decode(b"", 99)
    with pytest.raises(UnsupportedVersionError):
        SaslHandshakeRequest.read(memoryview(b""), 0, 2)


def test_non_ignorable_field_that_a_version_cannot_carry() -> None:
    # allow_auto_topic_creation (v4+, default true, not ignorable).
    req = MetadataRequest(topics=None, allow_auto_topic_creation=False)
    with pytest.raises(UnsupportedVersionError, match="allow_auto_topic_creation"):
        req.encode(3)
    assert MetadataRequest.decode(req.encode(4), 4) == req
    # An ignorable field is silently dropped instead.
    resp = MetadataResponse(throttle_time_ms=5)
    assert MetadataResponse.decode(resp.encode(2), 2).throttle_time_ms == 0


def test_null_in_a_non_nullable_version_is_value_error() -> None:
    # MetadataResponseTopic.name is nullable only from v12.
    resp = MetadataResponse(topics=[MetadataResponseTopic(name=None)])
    assert MetadataResponse.decode(resp.encode(12), 12) == resp
    with pytest.raises(ValueError):
        resp.encode(11)


RESPONSE_CASES = [
    (key, v)
    for key in sorted(RESPONSE_TYPES)
    for v in range(RESPONSE_TYPES[key].MIN_VERSION, RESPONSE_TYPES[key].MAX_VERSION + 1)  # type: ignore[attr-defined]
]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=st.sampled_from(RESPONSE_CASES), data=st.binary(max_size=64))
def test_random_bytes_only_raise_decode_error(case: tuple[int, int], data: bytes) -> None:
    key, version = case
    cls = RESPONSE_TYPES[key]
    try:
        obj = cls.decode(data, version)  # type: ignore[attr-defined]
    except DecodeError:
        return
    # Whatever decodes re-encodes; after one normalisation (a bool byte other
    # than 0/1, an over-long varint) encoding is a fixed point. Bytes, not
    # objects, are compared so that a NaN float64 cannot break equality.
    once = obj.encode(version)
    assert cls.decode(once, version).encode(version) == once  # type: ignore[attr-defined]


def test_encode_errors_leave_the_buffer_untouched() -> None:
    out = bytearray(b"keep")
    with pytest.raises(ValueError, match="format requires"):
        ProduceRequest(acks=1 << 20).write(out, 3)  # acks is an int16
    assert out == b"keep"
    with pytest.raises(ValueError, match="not nullable"):
        MetadataResponse(topics=[MetadataResponseTopic(name=None)]).write(out, 11)
    assert out == b"keep"
    with pytest.raises(UnsupportedVersionError):
        MetadataRequest(topics=None, allow_auto_topic_creation=False).write(out, 3)
    assert out == b"keep"


def test_records_repr_shows_size_not_bytes() -> None:
    resp = _fetch_response()
    assert "records=<40 bytes>" in repr(resp)
    decoded = FetchResponse.decode(resp.encode(4), 4)
    assert isinstance(decoded.responses[0].partitions[0].records, memoryview)
    assert "records=<40 bytes>" in repr(decoded)

"""Request/response headers and the 4-byte size-prefixed frame.

Which header version a message uses follows the schema's flexible versions
(KIP-482): a flexible request uses request header v2 (tagged fields after the
client id), otherwise v1; a flexible response uses response header v1
(tagged fields after the correlation id), otherwise v0. One exception:
ApiVersions responses always use response header v0, so a client can read
the answer even when the broker does not support the requested version
(KIP-511). (Request header v0 served only ControlledShutdown v0, an
inter-broker API that Kafka 4 removed with ZooKeeper.)

Frame layout (all big-endian)::

    int32 size | header | body           (size counts header + body)

Request header v0: ``int16 api_key, int16 api_version, int32 correlation_id``;
v1 adds ``nullable string client_id`` (int16 length even in v2); v2 adds an
(empty) tagged-field section. Response header v0: ``int32 correlation_id``;
v1 adds a tagged-field section, which is skipped.
"""

from __future__ import annotations

import struct
from typing import ClassVar, Protocol, TypeVar

from kproto.errors import DecodeError
from kproto.protocol._primitives import skip_tagged_fields, write_nullable_string
from kproto.protocol.messages import REQUEST_FLEXIBLE_VERSIONS, RESPONSE_FLEXIBLE_VERSIONS, ApiVersionsRequest

__all__ = [
    "API_VERSIONS_KEY",
    "Request",
    "Response",
    "decode_response",
    "decode_response_header",
    "encode_request",
    "read_frame",
    "request_header_version",
    "response_header_version",
    "write_request",
]

API_VERSIONS_KEY = ApiVersionsRequest.API_KEY

_SIZE = struct.Struct(">i")
_REQ_HEADER = struct.Struct(">hhi")
_CORRELATION = struct.Struct(">i")
_ERROR_CODE = struct.Struct(">h")
_UNSUPPORTED_VERSION = 35


class Request(Protocol):
    """What :func:`encode_request` needs from a generated request class."""

    API_KEY: ClassVar[int]
    FLEXIBLE_VERSION: ClassVar[int | None]

    def write(self, out: bytearray, version: int) -> None: ...


_R = TypeVar("_R", bound="Response")


class Response(Protocol):
    """What :func:`decode_response` needs from a generated response class."""

    API_KEY: ClassVar[int]

    @classmethod
    def read(cls: type[_R], buf: memoryview, pos: int, version: int) -> tuple[_R, int]: ...


def request_header_version(api_key: int, api_version: int) -> int:
    """Return the request header version (0, 1 or 2) for this API and version."""
    flex = REQUEST_FLEXIBLE_VERSIONS.get(api_key)
    return 2 if flex is not None and api_version >= flex else 1


def response_header_version(api_key: int, api_version: int) -> int:
    """Return the response header version (0 or 1) for this API and version."""
    if api_key == API_VERSIONS_KEY:
        return 0
    flex = RESPONSE_FLEXIBLE_VERSIONS.get(api_key)
    return 1 if flex is not None and api_version >= flex else 0


def write_request(
    out: bytearray,
    request: Request,
    api_version: int,
    correlation_id: int,
    client_id: str | None,
) -> None:
    """Append one complete request frame (size prefix, header, body) to ``out``.

    Writing into the caller's send buffer avoids copying large Produce bodies.

    Raises:
        kproto.errors.UnsupportedVersionError: ``api_version`` is outside the
            request's valid versions, or a field set to a non-default value
            cannot be carried by that version.
        ValueError: a value does not fit its wire type (an int out of range,
            None where not nullable, a string over 32767 bytes).

    On error ``out`` is left as it was.
    """
    start = len(out)
    try:
        out += b"\x00\x00\x00\x00"
        api_key = request.API_KEY
        out += _REQ_HEADER.pack(api_key, api_version, correlation_id)
        write_nullable_string(out, client_id)
        flex = request.FLEXIBLE_VERSION
        if flex is not None and api_version >= flex:
            out.append(0)  # header tagged fields: none
        request.write(out, api_version)
    except BaseException:
        del out[start:]  # never leave half a frame in the send buffer
        raise
    _SIZE.pack_into(out, start, len(out) - start - 4)


def encode_request(
    request: Request,
    api_version: int,
    correlation_id: int,
    client_id: str | None,
) -> bytes:
    """Return one complete request frame: size prefix, header and body."""
    out = bytearray()
    write_request(out, request, api_version, correlation_id, client_id)
    return bytes(out)


def read_frame(buf: memoryview, pos: int, max_size: int) -> tuple[memoryview, int] | None:
    """Split one size-prefixed frame off ``buf[pos:]``.

    Returns ``(frame, next_pos)`` where ``frame`` is a zero-copy view of the
    header and body (without the size prefix), or ``None`` when more bytes are
    needed. The declared size is checked against ``max_size`` before the
    caller buffers anything more.

    Raises:
        kproto.errors.DecodeError: the declared size is negative or larger
            than ``max_size``.
    """
    if len(buf) - pos < 4:
        return None
    (size,) = _SIZE.unpack_from(buf, pos)
    if size < 0:
        raise DecodeError(f"negative frame size {size}")
    if size > max_size:
        raise DecodeError(f"frame size {size} is over the limit of {max_size} bytes")
    end = pos + 4 + size
    if end > len(buf):
        return None
    return buf[pos + 4 : end], end


def decode_response_header(buf: memoryview, api_key: int, api_version: int, pos: int = 0) -> tuple[int, int]:
    """Read a response header at ``buf[pos:]`` (a frame without its size prefix).

    Returns ``(correlation_id, body_offset)``.

    Raises:
        kproto.errors.DecodeError: the header is truncated or malformed.
    """
    if len(buf) - pos < 4:
        raise DecodeError("response frame too short for a correlation id")
    (correlation_id,) = _CORRELATION.unpack_from(buf, pos)
    pos += 4
    if response_header_version(api_key, api_version) >= 1:
        try:
            pos = skip_tagged_fields(buf, pos)
        except IndexError:
            raise DecodeError("truncated response header tagged fields") from None
    return correlation_id, pos


def decode_response(frame: memoryview, response_type: type[_R], api_version: int) -> tuple[int, _R]:
    """Decode a whole response frame (without size prefix): header then body.

    Returns ``(correlation_id, response)``. Trailing bytes after the body are
    a ``DecodeError``. ``records`` fields in the result are views of ``frame``.

    A broker that does not support the requested ApiVersions version answers
    with a version 0 body carrying UNSUPPORTED_VERSION (KIP-511); such a
    response is decoded as version 0, so the caller can read the broker's
    ranges and retry with a version it supports.
    """
    correlation_id, pos = decode_response_header(frame, response_type.API_KEY, api_version)
    if (
        response_type.API_KEY == API_VERSIONS_KEY
        and api_version > 0
        and len(frame) - pos >= 2
        and _ERROR_CODE.unpack_from(frame, pos)[0] == _UNSUPPORTED_VERSION
    ):
        api_version = 0
    response, end = response_type.read(frame, pos, api_version)
    if end != len(frame):
        raise DecodeError(f"{len(frame) - end} trailing bytes after the response body")
    return correlation_id, response

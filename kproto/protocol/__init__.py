"""The wire codec: primitives, generated messages, headers, records, compression.

- :mod:`kproto.protocol.messages` — every client-facing Kafka request/response (generated
  from the official JSON schemas by ``tools/gen_messages.py``; modules load
  lazily on first use).
- :mod:`kproto.protocol.headers` — request/response headers and the
  size-prefixed frame; its functions are re-exported here.
"""

from __future__ import annotations

from kproto.protocol.headers import (
    decode_response,
    decode_response_header,
    encode_request,
    read_frame,
    request_header_version,
    response_header_version,
    write_request,
)

__all__ = [
    "decode_response",
    "decode_response_header",
    "encode_request",
    "read_frame",
    "request_header_version",
    "response_header_version",
    "write_request",
]

"""The wire codec: primitives, generated messages, headers, records, compression.

- :mod:`kproto.protocol.messages` — every client-facing Kafka request/response (generated
  from the official JSON schemas by ``tools/gen_messages.py``; modules load
  lazily on first use).
- :mod:`kproto.protocol.headers` — request/response headers and the
  size-prefixed frame; its functions are re-exported here.
"""

from __future__ import annotations

from kproto.protocol import headers as _headers
from kproto.protocol.headers import *  # noqa: F403 - headers.__all__

__all__: list[str] = []
__all__ += _headers.__all__

"""The wire codec: primitives, generated messages, headers, records, compression.

- :mod:`kproto.protocol.messages` — every Kafka request/response (generated
  from the official JSON schemas by ``tools/gen_messages.py``).
- :mod:`kproto.protocol.headers` — request/response headers and framing.

Submodules are imported on demand; this package imports nothing heavy.
"""

from __future__ import annotations

__all__: list[str] = []

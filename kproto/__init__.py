"""kproto: a sans-I/O Kafka client core.

The core takes bytes, calls and the current time, and gives back bytes,
connection commands, one next deadline and typed events. Transports for
blocking sockets, asyncio and trio live in the ``transports`` package.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]

"""Transports that drive kproto's sans-I/O cores: blocking, asyncio and trio.

Pick the facade at import::

    from transports.sync import KafkaProducer      # blocking, a background I/O thread
    from transports.asyncio import KafkaProducer   # asyncio, a task on your loop
    from transports.trio import KafkaProducer      # trio, tasks in a nursery

The submodules are not imported here, so importing one runtime never imports
another.
"""

from __future__ import annotations

__all__: list[str] = []

"""``KafkaConsumer`` for trio: background work lives in a nursery owned by ``async with``.

``async with KafkaConsumer(...) as consumer:`` opens a nursery holding the
driver task and, per broker connection, a reader and a writer task. Leaving
the block (or ``await consumer.close()``) commits if asked, then cancels the
nursery: nothing outlives the block. The awaitable methods are those of
:class:`~transports._consumer_asyncio.AsyncConsumerBase`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import trio  # type: ignore[import-untyped,unused-ignore]  # trio 0.22 has no py.typed

from kproto.errors import IllegalStateError
from transports._consumer_asyncio import AsyncConsumerBase
from transports._trio_driver import TrioDriver

__all__ = ["KafkaConsumer", "leave_nursery"]

class KafkaConsumer(AsyncConsumerBase):
    """Consume records on trio: ``async with KafkaConsumer(*topics, **configs) as consumer``.

    Options as :class:`~kproto.consumer.ConsumerConfig`. The consumer works
    only inside its ``async with`` block, whose nursery holds its tasks.
    """

    def __init__(self, *topics: str, **configs: Any) -> None:
        self._setup(topics, configs, trio.current_time, allow_async_provider=True)
        self._driver: TrioDriver | None = None
        self._nursery_cm: Any = None

    def _require_running(self) -> None:
        if self._driver is None or not self._driver.running() and self._nursery_cm is None:
            raise IllegalStateError("use 'async with KafkaConsumer(...)' before poll()")

    def _kick(self) -> None:
        if self._driver is not None:
            self._driver.kick()

    def _flush(self) -> None:
        if self._driver is not None:
            self._driver.pump()
            self._driver.kick()

    async def _checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def _run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        if self._driver is None:
            raise IllegalStateError("use 'async with KafkaConsumer(...)' first")
        return await self._driver.run_until(done, timeout)

    async def __aenter__(self) -> KafkaConsumer:
        self._check_open()
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        self._driver = TrioDriver(
            self._core,
            nursery,
            self._security,
            clock=(trio.current_time, 0.0),
            **self._driver_settings(),
            recv_size=1 << 20,  # fetch responses are megabytes
        )
        await nursery.start(self._driver.run)
        return self

    def _shield(self) -> trio.CancelScope:
        return trio.CancelScope(shield=True)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await leave_nursery(self, exc_type, exc, tb)


async def leave_nursery(
    client: Any, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> bool | None:
    """A trio facade's ``__aexit__``: ``close()`` shielded from cancellation, then cancel and leave its nursery.

    ``client`` has ``close()``, ``_driver`` (a :class:`TrioDriver` or None) and
    ``_nursery_cm`` (the nursery entered by ``__aenter__``).
    """
    try:
        with trio.CancelScope(shield=True):
            await client.close()
    finally:
        cm, client._nursery_cm = client._nursery_cm, None
        driver: TrioDriver | None = client._driver
        if driver is not None:
            driver.nursery.cancel_scope.cancel()
        result: bool | None = await cm.__aexit__(exc_type, exc, tb)
    return result

"""``KafkaAdminClient`` for trio: its tasks live in a nursery owned by ``async with``.

``async with KafkaAdminClient(...) as admin:`` opens a nursery holding the
driver task and the connections' tasks; leaving the block (or ``await
admin.close()``) cancels it. The awaitable methods are
:class:`~transports._admin_asyncio.AsyncAdminBase`'s.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import trio  # type: ignore[import-untyped,unused-ignore]  # trio 0.22 has no py.typed

from kproto.admin.types import *  # noqa: F403  # re-exported: no __all__ here, so a star import takes every public name (mypy too)
from kproto.errors import IllegalStateError
from transports import _admin, _admin_asyncio
from transports._consumer_trio import leave_nursery
from transports._trio_driver import TrioDriver


class KafkaAdminClient(_admin_asyncio.AsyncAdminBase):
    """Administer a Kafka cluster on trio: ``async with KafkaAdminClient(**configs) as admin``.

    Options as the blocking client's; the client works only inside its
    ``async with`` block, whose nursery holds its tasks.
    """

    def __init__(self, **configs: Any) -> None:
        self._setup(configs, trio.current_time, allow_async_provider=True)
        self._driver: TrioDriver | None = None
        self._nursery_cm: Any = None

    async def _running_driver(self) -> TrioDriver:
        if self._driver is None:
            raise IllegalStateError("use 'async with KafkaAdminClient(...)' first")
        return self._driver

    async def __aenter__(self) -> KafkaAdminClient:
        self._check_open()
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        self._driver = TrioDriver(self._core, nursery, self._security, clock=(trio.current_time, 0.0), **_admin.ADMIN_DRIVER)
        await nursery.start(self._driver.run)
        return self

    async def _stop_driver(self) -> None:
        if self._driver is not None:
            self._driver.stop()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await leave_nursery(self, exc_type, exc, tb)

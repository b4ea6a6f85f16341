"""``KafkaAdminClient`` for asyncio: awaitable methods over one driver task.

``async with KafkaAdminClient(...)`` (or ``await admin.start()``; the first
call starts it too) runs the driver task; ``await admin.close()`` stops it.
:class:`AsyncAdminBase` is the awaiting part the trio client shares.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kproto.admin.types import *  # noqa: F403  # re-exported: no __all__ here, so a star import takes every public name (mypy too)
from transports import _admin
from transports._asyncio_driver import AsyncioDriver


class AsyncAdminBase(_admin.AdminFacadeBase):
    """Every admin method returns a coroutine: ``await admin.create_topics(...)``.

    The asyncio and trio clients differ only in how their driver is started
    and stopped (:meth:`_running_driver`, :meth:`_stop_driver`).
    """

    _driver: Any

    def _finish(self, call: _admin.AdminCall) -> Any:
        return self._await(call)

    async def _await(self, call: _admin.AdminCall) -> Any:
        driver = await self._running_driver()
        driver.kick()
        return self._result(call, await driver.run_until(self._done(call), self._wait_budget(call)))

    async def _running_driver(self) -> Any:
        """The driver, started (asyncio) or checked to be (trio)."""
        raise NotImplementedError

    async def _stop_driver(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Fail what is still open, close every connection and stop the driver (idempotent)."""
        if self._closed:
            return
        try:
            self._fail_open()
        finally:
            await self._stop_driver()


class KafkaAdminClient(AsyncAdminBase):
    """Administer a Kafka cluster on asyncio (kafka-python 3's methods, awaited).

    ``KafkaAdminClient(**configs)`` inside a running loop; options as the
    blocking client's.
    """

    def __init__(self, **configs: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._setup(configs, self._loop.time, allow_async_provider=True)
        self._driver: AsyncioDriver = AsyncioDriver(self._core, self._loop, self._security, **_admin.ADMIN_DRIVER)

    async def start(self) -> None:
        """Start the driver task (idempotent)."""
        self._check_open()
        if self._driver.task is None:
            self._driver.start("kproto-admin")

    async def _running_driver(self) -> AsyncioDriver:
        if self._driver.task is None:
            await self.start()
        return self._driver

    async def _stop_driver(self) -> None:
        driver = self._driver
        driver.stop()
        if driver.task is None:
            driver.shutdown()
            return
        try:
            await driver.task
        except Exception:  # the task's own failure: nothing left to report it to
            pass

    async def __aenter__(self) -> KafkaAdminClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

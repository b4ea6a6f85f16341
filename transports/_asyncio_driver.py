"""The asyncio backend of :class:`~transports._driving.EventLoopDriver`: connections are
``Protocol`` objects (sockets from ``asyncio_open_socket``); the task sleeps on a future."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kproto.driving import Connect
from transports._driving import Conn, EventLoopDriver
from transports._sockopts import asyncio_open_socket
from transports._tls import tls_failure

__all__ = ["AsyncioDriver", "BrokerProtocol"]


class AsyncioDriver(EventLoopDriver["BrokerProtocol"]):
    """Drives ``core`` on ``loop`` from one task (:meth:`start`); arguments as :class:`EventLoopDriver`."""

    def __init__(self, core: Any, loop: asyncio.AbstractEventLoop, security: Any, **driver: Any) -> None:
        # BaseEventLoop.time is monotonic() in a Python method: one frame less per send.
        now = time.monotonic if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time else loop.time
        super().__init__(core, security, now=now, **driver)
        self.loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._progress: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self.asleep = False
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def sleep(self, timer: float | None) -> None:
        loop = self.loop
        self._waiter = loop.create_future()
        self.asleep = True
        # A due timer still goes through call_at: the loop gets a turn first.
        handle = None if timer is None else loop.call_at(timer, self.kick)
        try:
            await self._waiter
        finally:
            self._waiter = None
            self.asleep = False
            if handle is not None:
                handle.cancel()

    async def progress(self, deadline: float | None) -> bool:
        if self._progress is None or self._progress.done():
            self._progress = self.loop.create_future()
        timeout = None if deadline is None else deadline - self.loop.time()
        if timeout is not None and timeout <= 0:
            return False
        done, _ = await asyncio.wait({self._progress}, timeout=timeout)  # (wait() never cancels it)
        return bool(done)

    def progressed(self) -> None:
        p = self._progress
        if p is not None and not p.done():
            p.set_result(None)

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, name: str) -> None:
        self.task = self.loop.create_task(self.run(), name=name)

    def connect(self, cmd: Connect) -> None:
        conn = self.conns[cmd.node_id] = BrokerProtocol(self, cmd.node_id, cmd.host, cmd.port)
        conn.opening = self.loop.create_task(self.connection(conn))

    def write(self, out: list[tuple[int, bytes]]) -> None:
        conns = self.conns
        for node_id, data in out:
            proto = conns.get(node_id)
            if proto is not None and proto.transport is not None:
                proto.transport.write(data)

    async def open(self, conn: BrokerProtocol) -> None:
        ctx = self.ssl_context
        sock, name = await asyncio_open_socket(self.loop, conn.host, conn.port, self.sockets, bootstrap=conn.node_id < 0)
        try:
            await self.loop.create_connection(lambda: conn, sock=sock, ssl=ctx, server_hostname=ctx and name)
        except BaseException:
            sock.close()
            raise

    def open_failed(self, exc: BaseException, conn: BrokerProtocol) -> BaseException:
        return tls_failure(exc, conn.host, conn.port) if self.ssl_context is not None else exc


class BrokerProtocol(Conn, asyncio.Protocol):
    """One broker connection; every callback feeds the core and kicks the driver."""

    def __init__(self, driver: AsyncioDriver, node_id: int, host: str, port: int) -> None:
        super().__init__(node_id, host, port)
        self.driver = driver
        self.transport: asyncio.Transport | None = None
        self.opening: asyncio.Task[bool] | None = None

    def close(self, *, abort: bool) -> None:
        if not abort and self.opening is not None:
            self.opening.cancel()
        if self.transport is not None:
            (self.transport.abort if abort else self.transport.close)()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.closed_by_us:
            transport.close()
        else:
            self.driver.made(self)

    def data_received(self, data: bytes) -> None:
        self.driver.received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.driver.lost(self, exc)

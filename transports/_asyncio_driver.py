"""The asyncio driver: one task runs a producer or a consumer core on the running loop.

Broker connections are asyncio ``Protocol`` objects (:class:`BrokerProtocol`):
their callbacks feed the core directly and poke the driver, which then pulls
commands, bytes and events from the core (:func:`~transports._driving.pump`)
and sleeps until the core's next deadline (``call_at``) or the next poke.

Names are resolved by ``loop.create_connection`` through ``loop.getaddrinfo``
(the default executor): the loop never blocks on DNS. Whatever fails while
opening a connection (an ``OSError``, a ``UnicodeError`` for a host name the
IDNA codec refuses, an advertised port outside 1..65535) fails that attempt
through ``connection_lost``; bytes that make the core raise fail that
connection. Only the core raising while told so, or in the loop, is a crash:
``on_crash`` fails what is pending and every later call raises it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from kproto.driving import Connect
from transports._driving import EventLoopDriver, Sink, pump
from transports._sockets import bad_address, feed, resolve_failure
from transports._tls import Security, lost_error, tls_failure

__all__ = ["AsyncioDriver", "BrokerProtocol"]


class AsyncioDriver(EventLoopDriver):
    """Drives ``core`` on ``loop`` from one task (:meth:`run`); arguments as :class:`EventLoopDriver`."""

    def __init__(
        self,
        core: Any,
        loop: asyncio.AbstractEventLoop,
        security: Security | None,
        *,
        sink: Sink | None,
        on_crash: Callable[[Any, BaseException, float], None],
        what: str,
    ) -> None:
        # BaseEventLoop.time is ``time.monotonic()`` in a Python method: call
        # monotonic directly then (one frame less per send); a loop with its
        # own ``time`` (uvloop, a test clock) keeps it.
        now = time.monotonic if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time else loop.time
        super().__init__(core, security, now=now, sink=sink, on_crash=on_crash, what=what)
        self.loop = loop
        self.conns: dict[int, BrokerProtocol] = {}
        self._connecting: dict[int, asyncio.Task[None]] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._progress: asyncio.Future[None] | None = None
        self._stop = False
        #: Waiting on ``_waiter`` and not kicked since: send() reads it to
        #: skip the kick() call when the driver is awake already.
        self.asleep = False
        self.task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        """Wake the driver task (cheap when it is already awake)."""
        self.asleep = False
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def progress(self, deadline: float | None) -> bool:
        """Wait for the driver's next iteration; False if ``deadline`` passed."""
        if self._progress is None or self._progress.done():
            self._progress = self.loop.create_future()
        fut = self._progress
        if deadline is None:
            await asyncio.shield(fut)
            return True
        timeout = deadline - self.loop.time()
        if timeout <= 0:
            return False
        done, _ = await asyncio.wait({fut}, timeout=timeout)
        return bool(done)

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, name: str) -> None:
        self.task = self.loop.create_task(self.run(), name=name)

    def stop(self) -> None:
        self._stop = True
        self.kick()

    async def run(self) -> None:
        loop = self.loop
        core = self.core
        try:
            while not self._stop:
                now = loop.time()
                timer = core.get_timer()
                if timer is not None and timer <= now:
                    core.handle_timer(now)
                self.pump()
                if self._stop:
                    break
                timer = core.get_timer()
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
        except Exception as exc:
            self.crash(exc)
        finally:
            self.shutdown()

    def pump(self) -> None:
        """Commands, bytes and events until the core has nothing more to say; wakes progress waiters."""
        pump(self.core, self, self.sink)
        p = self._progress
        if p is not None and not p.done():
            p.set_result(None)

    def shutdown(self) -> None:
        for task in list(self._connecting.values()):
            task.cancel()
        self._connecting.clear()
        for node_id in list(self.conns):
            self.disconnect(node_id)
        p = self._progress
        if p is not None and not p.done():
            p.set_result(None)

    # --- the IO backend (transports._driving.IO) ---------------------------------

    def connect(self, cmd: Connect) -> None:
        self._connecting[cmd.node_id] = self.loop.create_task(self._connect(cmd))

    def disconnect(self, node_id: int) -> None:
        task = self._connecting.pop(node_id, None)
        if task is not None:
            task.cancel()
        proto = self.conns.pop(node_id, None)
        if proto is not None and proto.transport is not None:
            proto.closed_by_us = True
            proto.transport.close()

    def write(self, out: list[tuple[int, bytes]]) -> None:
        conns = self.conns
        for node_id, data in out:
            proto = conns.get(node_id)
            if proto is not None and proto.transport is not None:
                proto.transport.write(data)

    def report_lost(self, node_id: int, err: BaseException | None) -> None:
        """``core.connection_lost``; the core raising there is a crash."""
        try:
            self.core.connection_lost(node_id, err, self.loop.time())
        except Exception as exc:
            self.crash(exc)
            return
        self.kick()

    async def _connect(self, cmd: Connect) -> None:
        ctx = self.ssl_context
        err: BaseException | None = bad_address(cmd.host, cmd.port)
        try:
            if err is None:
                if self.token_cache is not None:
                    await self.token_cache.refresh()  # async OAUTHBEARER provider: a fresh token per connection
                await self.loop.create_connection(
                    lambda: BrokerProtocol(self, cmd.node_id, cmd.host, cmd.port),
                    cmd.host,
                    cmd.port,
                    ssl=ctx,
                    server_hostname=cmd.host if ctx is not None else None,
                )
        except OSError as exc:  # ssl.SSLError included
            err = tls_failure(exc, cmd.host, cmd.port) if ctx is not None else exc
        except Exception as exc:  # UnicodeError from the IDNA codec, ValueError...
            err = resolve_failure(exc, cmd.host, cmd.port)
        finally:
            self._connecting.pop(cmd.node_id, None)
        if err is not None:
            self.report_lost(cmd.node_id, err)


class BrokerProtocol(asyncio.Protocol):
    """One broker connection; every callback feeds the core and pokes the driver."""

    def __init__(self, driver: AsyncioDriver, node_id: int, host: str = "", port: int = 0) -> None:
        self.driver = driver
        self.node_id = node_id
        self.host = host
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.closed_by_us = False
        #: Bytes arrived (a TLS error before that is an authentication failure).
        self.got_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        d = self.driver
        d.conns[self.node_id] = self
        try:
            d.core.connection_made(self.node_id, d.loop.time())
        except Exception as exc:
            d.crash(exc)
            return
        d.kick()

    def data_received(self, data: bytes) -> None:
        d = self.driver
        self.got_data = True
        failed = feed(d.core, self.node_id, data, d.loop.time())
        if failed is not None and not self.closed_by_us:
            # That connection goes; the core fails or retries its requests.
            self.closed_by_us = True
            if d.conns.get(self.node_id) is self:
                del d.conns[self.node_id]
            if self.transport is not None:
                self.transport.abort()
            d.report_lost(self.node_id, failed)
            return
        d.kick()

    def connection_lost(self, exc: Exception | None) -> None:
        d = self.driver
        if d.conns.get(self.node_id) is self:
            del d.conns[self.node_id]
        if not self.closed_by_us:
            # TLS 1.3: the server's verdict on our certificate comes after our handshake.
            err = lost_error(exc, self.host, self.port, tls=d.ssl_context is not None, got_data=self.got_data)
            d.report_lost(self.node_id, err)

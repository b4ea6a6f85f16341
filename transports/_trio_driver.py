"""The trio driver: one task runs a producer or a consumer core, one task pair per connection.

All tasks live in the nursery the facade owns. Each broker connection is a
task that opens a TCP (and TLS) stream, then reads into the core while a
writer task sends what :func:`~transports._driving.pump` queued for it. The
driver task sleeps until the core's next deadline or the next kick.

Names resolve in trio's worker thread (``trio.open_tcp_stream``), never on
the run. Whatever fails while opening a connection, and bytes that make the
core raise, fail that connection only; the core raising while told so, or in
the loop, is a crash: ``on_crash`` fails what is pending, the driver stops
and every later call raises it. Nothing escapes into the user's nursery.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

import trio  # type: ignore[import-untyped,unused-ignore]  # trio 0.22 has no py.typed

from kproto.driving import Connect
from transports._driving import EventLoopDriver, Sink, pump
from transports._sockets import bad_address, connect_failure, feed, resolve_failure
from transports._tls import Security, lost_error

__all__ = ["TrioDriver", "core_clock"]

#: What a broken connection raises.
_IO_ERRORS: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


def core_clock() -> tuple[Callable[[], float], float]:
    """The clock a core runs on, and what to add to its times to get trio's.

    Under trio's default clock (``offset + time.perf_counter()``) that is
    ``time.perf_counter`` itself (a C call, no Python frame per send) and the
    offset; under any other clock (``MockClock``, autojump) it is the run's
    clock, offset 0. Told apart by the clock's public face only: the default
    clock is the one whose time moves with ``perf_counter`` at a fixed offset.
    """
    clock = trio.lowlevel.current_clock()
    if type(clock).__name__ == "SystemClock" and type(clock).__module__.startswith("trio."):
        offset = getattr(clock, "offset", None)
        if not isinstance(offset, float):
            offset = clock.current_time() - time.perf_counter()
        return time.perf_counter, offset
    return clock.current_time, 0.0


class _Conn:
    __slots__ = ("closed_by_us", "got_data", "has_data", "host", "node_id", "out", "port", "scope", "stream")

    def __init__(self, node_id: int, host: str, port: int) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.stream: trio.abc.Stream | None = None
        self.scope = trio.CancelScope()
        #: Bytes arrived (a TLS error before that is an authentication failure).
        self.got_data = False
        #: Bytes the writer has yet to take, in order (joined only when more than one).
        self.out: list[bytes] = []
        self.has_data = trio.Event()
        self.closed_by_us = False


class TrioDriver(EventLoopDriver):
    """Drives ``core`` from tasks in ``nursery``; arguments as :class:`EventLoopDriver`.

    ``clock`` is the core's clock and its offset to trio's (:func:`core_clock`):
    a core time plus the offset is a trio time.
    """

    def __init__(
        self,
        core: Any,
        nursery: trio.Nursery,
        security: Security | None,
        *,
        clock: tuple[Callable[[], float], float],
        sink: Sink | None,
        on_crash: Callable[[Any, BaseException, float], None],
        what: str,
        recv_size: int = 256 * 1024,
    ) -> None:
        super().__init__(core, security, now=clock[0], sink=sink, on_crash=on_crash, what=what)
        self.offset = clock[1]
        self.nursery = nursery
        self._recv_size = recv_size
        self.conns: dict[int, _Conn] = {}
        self._wake = trio.Event()
        #: No kick since the driver last woke: the next kick sets the event
        #: (send() reads it to skip the call when the driver is awake already).
        self.asleep = True
        self._progress = trio.Event()
        self._running = False
        self.stopping = False
        self.stopped = trio.Event()

    def kick(self) -> None:
        """Wake the driver task (a flag check when it is already awake)."""
        if self.asleep:
            self.asleep = False
            self._wake.set()

    async def progress(self, deadline: float | None) -> bool:
        ev = self._progress
        with trio.move_on_at(math.inf if deadline is None else deadline + self.offset):
            await ev.wait()
            return True
        return False

    def running(self) -> bool:
        return self._running

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        core = self.core
        clock = self.now
        self._running = True
        task_status.started()
        try:
            while not self.stopping:
                now = clock()
                timer = core.get_timer()
                if timer is not None and timer <= now:
                    core.handle_timer(now)
                self.pump()
                if self.stopping:
                    break
                timer = core.get_timer()
                if not self._wake.is_set():
                    with trio.move_on_at(math.inf if timer is None else timer + self.offset):
                        await self._wake.wait()
                else:
                    await trio.lowlevel.checkpoint()
                self._wake = trio.Event()
                self.asleep = True
        except Exception as exc:
            self.crash(exc)
        finally:
            self._running = False
            self.shutdown()

    def pump(self) -> None:
        """Commands, bytes and events until the core has nothing more to say; wakes progress waiters."""
        pump(self.core, self, self.sink)
        self._progress.set()
        self._progress = trio.Event()

    def stop(self) -> None:
        """Close every connection and end the driver task."""
        self.stopping = True
        for node_id in list(self.conns):
            self.disconnect(node_id)
        self.kick()

    def shutdown(self) -> None:
        for node_id in list(self.conns):
            self.disconnect(node_id)
        self._progress.set()
        self.stopped.set()

    # --- the IO backend (transports._driving.IO) ---------------------------------

    def connect(self, cmd: Connect) -> None:
        conn = self.conns[cmd.node_id] = _Conn(cmd.node_id, cmd.host, cmd.port)
        self.nursery.start_soon(self._connection, conn)

    def disconnect(self, node_id: int) -> None:
        conn = self.conns.pop(node_id, None)
        if conn is not None:
            conn.closed_by_us = True
            conn.scope.cancel()

    def write(self, out: list[tuple[int, bytes]]) -> None:
        conns = self.conns
        for node_id, data in out:
            conn = conns.get(node_id)
            if conn is not None:
                conn.out.append(data)
                conn.has_data.set()

    # --- connections -------------------------------------------------------------

    def _lost(self, conn: _Conn, exc: BaseException | None, *, raw: bool = False) -> None:
        """Report ``conn`` lost (``exc`` mapped by ``lost_error`` unless ``raw``); a core raise is a crash."""
        if conn.closed_by_us or self.stopping:
            return
        if not raw:
            # trio wraps the ssl error (BrokenResourceError from SSLError); TLS 1.3
            # reports a refused client certificate on the first read.
            exc = lost_error(exc, conn.host, conn.port, tls=self.ssl_context is not None, got_data=conn.got_data)
        conn.closed_by_us = True
        if self.conns.get(conn.node_id) is conn:
            del self.conns[conn.node_id]
        conn.scope.cancel()
        try:
            self.core.connection_lost(conn.node_id, exc, self.now())
        except Exception as crash:
            self.crash(crash)
            return
        self.kick()

    async def _connection(self, conn: _Conn) -> None:
        host, port = conn.host, conn.port
        bad = bad_address(host, port)
        with conn.scope:
            try:
                if bad is not None:
                    raise bad
                if self.token_cache is not None:
                    await self.token_cache.refresh()  # async OAUTHBEARER provider: a fresh token per connection
                conn.stream = await trio.open_tcp_stream(host, port)
                if self.ssl_context is not None:
                    conn.stream = tls = trio.SSLStream(conn.stream, self.ssl_context, server_hostname=host)
                    await tls.do_handshake()
            except (OSError, trio.BrokenResourceError) as exc:  # ssl.SSLError is an OSError
                self._lost(conn, connect_failure(exc))
            except Exception as exc:  # UnicodeError from the IDNA codec, ValueError, a bad port...
                self._lost(conn, exc if exc is bad else resolve_failure(exc, host, port), raw=True)
            else:
                if not conn.closed_by_us:
                    try:
                        self.core.connection_made(conn.node_id, self.now())
                    except Exception as exc:
                        self.crash(exc)
                    else:
                        self.kick()
                        async with trio.open_nursery() as n:
                            n.start_soon(self._writer, conn)
                            await self._reader(conn)
            finally:
                if conn.stream is not None:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(conn.stream)

    async def _reader(self, conn: _Conn) -> None:
        assert conn.stream is not None
        size = self._recv_size
        while True:
            try:
                data = await conn.stream.receive_some(size)
            except _IO_ERRORS as exc:
                self._lost(conn, exc)
                return
            if not data:
                self._lost(conn, None)
                return
            conn.got_data = True
            failed = feed(self.core, conn.node_id, data, self.now())
            if failed is not None:  # that connection goes; the core fails or retries its requests
                self._lost(conn, failed, raw=True)
                return
            self.kick()

    async def _writer(self, conn: _Conn) -> None:
        assert conn.stream is not None
        while True:
            await conn.has_data.wait()
            conn.has_data = trio.Event()
            if conn.out:
                chunks, conn.out = conn.out, []
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                try:
                    await conn.stream.send_all(data)
                except _IO_ERRORS as exc:
                    self._lost(conn, exc)
                    return

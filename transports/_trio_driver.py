"""The trio backend of :class:`~transports._driving.EventLoopDriver`: in the facade's nursery, the
driver task and per connection one that opens it (``trio_open_socket``) and reads, and a writer."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import trio  # type: ignore[import-untyped,unused-ignore]  # trio 0.22 has no py.typed

from kproto.driving import Connect
from transports._driving import Conn, EventLoopDriver
from transports._sockopts import trio_open_socket

__all__ = ["TrioDriver"]

#: What a broken connection raises.
_IO_ERRORS: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class _Conn(Conn):
    __slots__ = ("has_data", "out", "scope", "stream")

    def __init__(self, node_id: int, host: str, port: int) -> None:
        super().__init__(node_id, host, port)
        self.stream: trio.abc.Stream | None = None
        self.scope = trio.CancelScope()
        #: Bytes the writer has yet to take, in order (joined only when more than one).
        self.out: list[bytes] = []
        self.has_data = trio.Event()

    def close(self, *, abort: bool) -> None:
        self.scope.cancel()


class TrioDriver(EventLoopDriver[_Conn]):
    """Drives ``core`` from tasks in ``nursery``; ``clock``: the core's clock and its offset to trio's."""

    io_errors = _IO_ERRORS

    def __init__(self, core: Any, nursery: trio.Nursery, security: Any, *,
                 clock: tuple[Callable[[], float], float], recv_size: int = 256 * 1024, **driver: Any) -> None:
        super().__init__(core, security, now=clock[0], **driver)
        self.offset = clock[1]
        self.nursery = nursery
        self._recv_size = recv_size
        self._wake = trio.Event()
        self.asleep = True  # the next kick sets the event
        self._progress = trio.Event()
        self._running = False
        self.stopped = trio.Event()

    def kick(self) -> None:
        if self.asleep:
            self.asleep = False
            self._wake.set()

    async def sleep(self, timer: float | None) -> None:
        if not self._wake.is_set():
            with trio.move_on_at(math.inf if timer is None else timer + self.offset):
                await self._wake.wait()
        else:
            await trio.lowlevel.checkpoint()
        self._wake = trio.Event()
        self.asleep = True

    async def progress(self, deadline: float | None) -> bool:
        with trio.move_on_at(math.inf if deadline is None else deadline + self.offset):
            await self._progress.wait()
            return True
        return False

    def progressed(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    def running(self) -> bool:
        return self._running

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._running = True
        task_status.started()
        try:
            await super().run()
        finally:
            self._running = False
            self.stopped.set()

    def connect(self, cmd: Connect) -> None:
        conn = self.conns[cmd.node_id] = _Conn(cmd.node_id, cmd.host, cmd.port)
        self.nursery.start_soon(self._connection, conn)

    def write(self, out: list[tuple[int, bytes]]) -> None:
        conns = self.conns
        for node_id, data in out:
            conn = conns.get(node_id)
            if conn is not None:
                conn.out.append(data)
                conn.has_data.set()

    async def open(self, conn: _Conn) -> None:
        sock, name = await trio_open_socket(conn.host, conn.port, self.sockets, bootstrap=conn.node_id < 0)
        # trio's SocketStream turns TCP_NODELAY on whatever socket_options say.
        conn.stream = trio.SocketStream(sock)
        if self.ssl_context is not None:
            conn.stream = tls = trio.SSLStream(conn.stream, self.ssl_context, server_hostname=name)
            await tls.do_handshake()

    def open_failed(self, exc: BaseException, conn: _Conn) -> BaseException | None:
        """The attempts' own errors (``open_tcp_stream`` chains them as a group), then ``lost_error``."""
        inner = getattr(exc.__cause__, "exceptions", None)
        if inner and len(inner) == 1:
            exc = inner[0]
        elif inner:
            error = OSError(f"{exc}: " + "; ".join(f"{type(e).__name__}: {e}" for e in inner))
            error.__cause__ = exc
            exc = error
        return self.lost_error(exc, conn)

    async def _connection(self, conn: _Conn) -> None:
        with conn.scope:
            try:
                if await self.connection(conn) and not conn.closed_by_us and self.made(conn):
                    async with trio.open_nursery() as n:
                        n.start_soon(self._writer, conn)
                        await self._reader(conn)
            finally:
                if conn.stream is not None:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(conn.stream)

    async def _reader(self, conn: _Conn) -> None:
        assert conn.stream is not None
        try:
            while data := await conn.stream.receive_some(self._recv_size):
                if not self.received(conn, data):
                    return
        except _IO_ERRORS as exc:
            self.lost(conn, exc)
            return
        self.lost(conn, None)

    async def _writer(self, conn: _Conn) -> None:
        assert conn.stream is not None
        try:
            while True:
                await conn.has_data.wait()
                conn.has_data = trio.Event()
                if conn.out:
                    chunks, conn.out = conn.out, []
                    await conn.stream.send_all(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except _IO_ERRORS as exc:
            self.lost(conn, exc)


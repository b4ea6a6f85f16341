"""The driver loop, written once: :func:`pump`, :class:`Driver` (connections and their reports to the
core) and :class:`EventLoopDriver` (asyncio and trio). A failure opening a connection, or bytes the
core raises on, fail that connection only; the core raising elsewhere is a crash: ``on_crash`` fails
what is pending and every later call raises it (docs/delivery.md, "Hostile brokers")."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from kproto import driving
from kproto.driving import Connect
from kproto.errors import IllegalStateError, KafkaProtocolError
from kproto.events import Event
from transports._common import crashed_error
from transports._sockopts import SocketSettings, bad_address, resolve_failure
from transports._tls import lost_error

__all__ = ["IO", "Conn", "Driven", "Driver", "EventLoopDriver", "Sink", "pump"]

log = logging.getLogger("transports")

#: Takes a batch of core events; None: the core's events are not read.
Sink = Callable[[Sequence[Event]], object]


class Driven(driving.Driven, Protocol):
    """A core a transport drives: :class:`kproto.driving.Driven` plus its events."""

    def events(self) -> Sequence[Event]:
        """Events since the last call (drains them)."""


class IO(Protocol):
    """A runtime's connections: opened, closed without a report, written per node in order."""

    def connect(self, cmd: Connect) -> None: ...
    def disconnect(self, node_id: int) -> None: ...
    def write(self, out: list[tuple[int, bytes]]) -> None: ...


def pump(core: Driven, io: IO, sink: Sink | None) -> None:
    """Commands, bytes and events until the core has nothing more to say (at most eight
    rounds: a sink feeding the core, as the producer's, cannot starve the sockets)."""
    for _ in range(8):
        cmds = core.commands()
        for cmd in cmds:
            if type(cmd) is Connect:
                # A node connects once: a connection it still has is closed first, unreported
                # (a core closes before it reconnects; this keeps a stray Connect from leaking a socket).
                io.disconnect(cmd.node_id)
                io.connect(cmd)
            else:
                io.disconnect(cmd.node_id)
        out = core.data_to_send()
        if out:
            io.write(out)
        evs = None if sink is None else core.events()
        if evs:
            sink(evs)  # type: ignore[misc]  # evs is None when sink is
        if not cmds and not out and not evs:
            return


class Conn:
    """One broker connection; a backend's subclass closes it."""

    __slots__ = ("closed_by_us", "got_data", "host", "node_id", "port")

    def __init__(self, node_id: int, host: str, port: int) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        #: Closed on purpose or reported lost already: nothing more is reported.
        self.closed_by_us = False
        #: Bytes arrived (a TLS error before that is an authentication failure).
        self.got_data = False

    def close(self, *, abort: bool) -> None:
        """Close the connection (``abort``: it failed) or stop opening it."""
        raise NotImplementedError


C = TypeVar("C", bound=Conn)


class Driver(Generic[C]):
    """A core's connections (``conns``) and their reports to it, for every runtime.

    ``on_crash(core, exc, now)`` is told when the core raises; ``what`` names the driver in errors.
    """

    def __init__(self, core: Any, ssl_context: Any, *, now: Callable[[], float], sink: Sink | None,
                 on_crash: Callable[[Any, BaseException, float], None] | None, what: str) -> None:
        self.core = core
        self.ssl_context = ssl_context
        #: socket_options, buffer sizes, DNS policy, selector class (transports/_sockopts.py).
        self.sockets = SocketSettings.of(getattr(core, "config", None))
        self.now = now
        self.sink = sink
        self._on_crash = on_crash
        self.what = what
        #: What killed the driver (a bug); every later call names it.
        self.crashed: BaseException | None = None
        self.conns: dict[int, C] = {}
        self.stopping = False

    def kick(self) -> None:
        """Wake the driver (an event loop's task) to pump."""

    def progressed(self) -> None:
        """Wake the facades' waiters (an event loop's tasks)."""

    def pump(self) -> None:
        """Commands, bytes and events until the core has nothing more to say; wakes progress waiters."""
        pump(self.core, self, self.sink)  # type: ignore[arg-type]  # subclasses implement IO
        self.progressed()

    def disconnect(self, node_id: int) -> None:
        conn = self.conns.pop(node_id, None)
        if conn is not None:
            conn.closed_by_us = True
            conn.close(abort=False)

    def crash(self, exc: BaseException) -> None:
        """The core raised (a bug): fail what is pending, stop, make later calls raise."""
        if self.crashed is None:
            self.crashed = exc
            if self._on_crash is not None:
                self._on_crash(self.core, exc, self.now())
        self.stop()

    def stop(self) -> None:
        """Close every connection (no reports) and end the driver."""
        self.stopping = True
        for node_id in list(self.conns):
            self.disconnect(node_id)
        self.kick()

    def made(self, conn: C) -> bool:
        """``core.connection_made``; False if the core raised (a crash)."""
        try:
            self.core.connection_made(conn.node_id, self.now())
        except Exception as exc:
            self.crash(exc)
            return False
        self.kick()
        return True

    def received(self, conn: C, data: bytes | bytearray) -> bool:
        """Feed ``data``; False if the core raised on it (the connection is failed)."""
        conn.got_data = True
        try:
            self.core.receive_data(conn.node_id, data, self.now())
        except Exception as exc:
            log.warning("node %s: the core raised on its bytes; dropping the connection", conn.node_id, exc_info=exc)
            error = KafkaProtocolError(f"node {conn.node_id}: handling the broker's bytes raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self.lost(conn, error, raw=True)
            return False
        self.kick()
        return True

    def lost_error(self, exc: BaseException | None, conn: C) -> BaseException | None:
        # TLS 1.3: the server's verdict on our certificate comes after our handshake.
        return lost_error(exc, conn.host, conn.port, tls=self.ssl_context is not None, got_data=conn.got_data)

    def lost(self, conn: C, exc: BaseException | None, *, raw: bool = False) -> None:
        """Report ``conn`` lost (``exc`` mapped by ``lost_error`` unless ``raw``); a core raise is a crash."""
        if conn.closed_by_us or self.stopping:
            return
        if not raw:
            exc = self.lost_error(exc, conn)
        conn.closed_by_us = True
        if self.conns.get(conn.node_id) is conn:
            del self.conns[conn.node_id]
        conn.close(abort=True)
        try:
            self.core.connection_lost(conn.node_id, exc, self.now())
        except Exception as crash:
            self.crash(crash)
            return
        self.kick()



class EventLoopDriver(Driver[C], ABC):
    """The asyncio and trio loop: :meth:`run` in one task; a runtime adds IO's connect and
    write, waking and sleeping the task, ``progress`` (the facades' waits) and opening."""

    def __init__(self, core: Any, security: Any, **driver: Any) -> None:
        super().__init__(core, security.ssl_context if security is not None else None, **driver)
        self.token_cache = security.token_cache if security is not None else None
        self.ended = False  # run() returned
        #: Asleep and not kicked since: send() reads it to skip kick() when the driver is awake.
        self.asleep = False

    @abstractmethod
    async def sleep(self, timer: float | None) -> None: ...
    @abstractmethod
    async def progress(self, deadline: float | None) -> bool: ...
    @abstractmethod
    async def open(self, conn: C) -> None: ...
    @abstractmethod
    def running(self) -> bool: ...
    @abstractmethod
    def open_failed(self, exc: BaseException, conn: C) -> BaseException | None: ...

    io_errors: tuple[type[BaseException], ...] = ()

    async def run(self) -> None:
        """The loop: the due timer, :meth:`pump`, sleep; shuts down when stopped or crashed."""
        core = self.core
        clock = self.now
        try:
            while not self.stopping:
                now = clock()
                timer = core.get_timer()
                if timer is not None and timer <= now:
                    core.handle_timer(now)
                self.pump()
                if self.stopping:
                    break
                await self.sleep(core.get_timer())
        except Exception as exc:
            self.crash(exc)
        finally:
            self.ended = True
            self.shutdown()

    def shutdown(self) -> None:
        """Close every connection and wake the waiters (the driver task has ended or never ran)."""
        for node_id in list(self.conns):
            self.disconnect(node_id)
        self.progressed()

    async def run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Let the driver work until ``done()`` or ``timeout`` seconds; returns ``done()``."""
        deadline = None if timeout is None else self.now() + timeout
        while not done():
            if self.crashed is not None:
                raise crashed_error(self.what, self.crashed)
            if not self.running():
                raise IllegalStateError(f"{self.what} is not running; use 'async with' or start()")
            if not await self.progress(deadline):
                return done()
        return True

    async def connection(self, conn: C) -> bool:
        """Open ``conn``; False (reported lost) if that failed."""
        bad = bad_address(conn.host, conn.port)
        try:
            if bad is not None:
                raise bad
            if self.token_cache is not None:
                await self.token_cache.refresh()  # async OAUTHBEARER provider: a fresh token per connection
            await self.open(conn)
        except Exception as exc:  # UnicodeError from the IDNA codec, ValueError, a bad port...
            io = isinstance(exc, (OSError, *self.io_errors))  # ssl.SSLError is an OSError
            self.lost(conn, self.open_failed(exc, conn) if io else exc if exc is bad else
                      resolve_failure(exc, conn.host, conn.port), raw=True)
            return False
        return True

"""The blocking-socket backend: a ``selectors`` loop in the calling thread. Names resolve on every
connect (KIP-899) on the resolver pool of transports/_sockopts.py, which wakes the loop; TLS is a
non-blocking ``ssl.SSLSocket`` whose handshake runs in the loop before the core hears ``connection_made``."""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final

from kproto.driving import Connect
from transports._common import crashed_error
from transports._driving import Conn, Driven, Driver, Sink, pump
from transports._sockopts import Attempt, bad_address, resolve_failure, resolve_later
from transports._tls import handshake_closed, tls_failure

__all__ = ["SelectorDriver"]

_READ: Final = selectors.EVENT_READ
_RW: Final = selectors.EVENT_READ | selectors.EVENT_WRITE


class _Conn(Conn):
    __slots__ = ("attempt", "out", "pending", "sel", "sock", "up")

    def __init__(self, cmd: Connect, sel: selectors.BaseSelector) -> None:
        super().__init__(cmd.node_id, cmd.host, cmd.port)
        self.sel = sel
        self.pending: Future[list[Any]] | None = None  # the name being resolved
        self.attempt: Attempt | None = None  # the addresses left to try until TCP is up (use_all_dns_ips)
        self.sock: socket.socket | None = None  # an ssl.SSLSocket once TCP is up, with TLS
        self.up = False  # reported to the core (TCP, then TLS, done)
        self.out = bytearray()  # what the core wrote and the socket did not take yet

    def close(self, *, abort: bool) -> None:
        if self.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.sock)
            self.sock.close()


class SelectorDriver(Driver[_Conn]):
    """Runs a core over non-blocking sockets in the caller's thread, one :meth:`step` at a time.

    ``reads`` ``recv`` calls of ``recv_size`` per readable socket per step (fetch responses are
    megabytes); ``on_crash(core, exc, now)`` is told when :meth:`run_once` dies of a bug. A thread
    feeding the core from others (the sync producer's) passes ``serve``, run first in each step and
    returning the longest sleep, and ``busy``: work queued that ``select`` must not sleep on.
    """

    def __init__(self, core: Driven, clock: Callable[[], float] = time.monotonic,
                 ssl_context: ssl.SSLContext | None = None, *, sink: Sink | None = None, recv_size: int = 1 << 20,
                 reads: int = 8, on_crash: Callable[[Any, BaseException, float], None] | None = None,
                 serve: Callable[[], float] | None = None, busy: Callable[[], bool] = bool,
                 what: str) -> None:
        super().__init__(core, ssl_context, now=clock, sink=sink, on_crash=on_crash, what=what)
        self._recv_size = recv_size
        self._reads = reads
        self.serve = serve
        self.busy = busy  # (bool: bool() is False)
        self._sel = self.sockets.selector()
        self._resolving: list[_Conn] = []
        self._wake: tuple[socket.socket, socket.socket] | None = None
        #: A wake-up byte is in flight (another wakeup() need not send one).
        self.wake_pending = False
        #: In ``select`` (or about to be): a thread adding work must call :meth:`wakeup`.
        self.sleeping = False

    def enable_wakeup(self) -> None:
        """Let another thread interrupt :meth:`step` with :meth:`wakeup`."""
        if self._wake is None:
            self._wake = socket.socketpair()
            for sock in self._wake:
                sock.setblocking(False)
            self._sel.register(self._wake[0], _READ, None)

    def wakeup(self) -> None:
        """Make a :meth:`step` blocked in another thread return soon."""
        if self._wake is not None and not self.wake_pending:
            self.wake_pending = True
            try:  # (try, not contextlib.suppress: user threads call this per wake-up)
                self._wake[1].send(b"\0")
            except OSError:
                pass  # the buffer is full: a wakeup is pending

    def step(self, timeout: float) -> None:
        """Pump once, wait for I/O up to ``timeout`` or the core's timer, feed what came, run the timer."""
        core = self.core
        if self.serve is not None:
            timeout = min(timeout, self.serve())
        pump(core, self, self.sink)
        t = core.get_timer()
        if t is not None:
            timeout = min(timeout, t - self.now())
        self.sleeping = True
        if self.busy():  # (read after sleeping is set: a thread that queued work before saw it False)
            timeout = 0.0
        elif self._resolving and self._wake is None:
            timeout = min(timeout, 0.02)  # no wake-up pair: look for the resolvers' answers often
        if self._sel.get_map():
            ready = self._sel.select(max(0.0, timeout))
        else:
            if timeout > 0:
                time.sleep(timeout)
            ready = []
        self.sleeping = False
        if self._resolving:
            for resolved in [c for c in self._resolving if c.pending is None or c.pending.done()]:
                self._resolving.remove(resolved)
                if not resolved.closed_by_us:
                    self._open(resolved)
        now = self.now()
        for key, mask in ready:
            conn: _Conn | None = key.data
            if conn is None:
                # Drain, then re-arm: a wakeup() between the two leaves a spurious wake-up, never a lost one.
                with contextlib.suppress(OSError):
                    while key.fileobj.recv(4096):  # type: ignore[union-attr]
                        pass
                self.wake_pending = False
            elif conn.closed_by_us:
                continue
            elif conn.attempt is not None:
                self._connected(conn)
            elif not conn.up:
                self._handshake(conn)
            else:
                if mask & selectors.EVENT_WRITE and conn.out:
                    self._write(conn)
                if mask & _READ and not conn.closed_by_us:
                    self._read(conn)
        t = core.get_timer()
        if t is not None and t <= now:
            core.handle_timer(now)

    def crash(self, exc: BaseException) -> None:
        raise exc  # out of step(): run_once (or the producer's I/O thread) takes the driver down

    def run_once(self, timeout: float) -> None:
        """A :meth:`step` and a pump; a bug kills the driver: this and every later call raise ``IllegalStateError``."""
        if self.crashed is not None:
            raise crashed_error(self.what, self.crashed)
        try:
            self.step(timeout)
            pump(self.core, self, self.sink)
        except Exception as exc:
            Driver.crash(self, exc)
            raise crashed_error(self.what, exc) from exc

    def run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Run steps until ``done()`` or ``timeout`` seconds; returns ``done()``."""
        deadline = None if timeout is None else self.now() + timeout
        while not done():
            left = 1.0 if deadline is None else deadline - self.now()
            if left <= 0:
                return done()
            self.run_once(left)
        return True

    def close(self) -> None:
        """Close every socket (no ``connection_lost`` reports), the wake-up pair and the selector."""
        for node_id in list(self.conns):
            self.disconnect(node_id)
        for sock in self._wake or ():
            sock.close()
        self._wake = None
        self._sel.close()

    # --- the IO backend (transports._driving.IO) ---------------------------------

    def connect(self, cmd: Connect) -> None:
        conn = self.conns[cmd.node_id] = _Conn(cmd, self._sel)
        bad = bad_address(cmd.host, cmd.port)
        try:
            if bad is not None:
                raise bad
            conn.pending = resolve_later(cmd.host, cmd.port, self.sockets, bootstrap=cmd.node_id < 0, notify=self.wakeup)
        except Exception as exc:  # or the resolver pool refused work (interpreter shutting down)
            self.lost(conn, exc if exc is bad else resolve_failure(exc, cmd.host, cmd.port), raw=True)
            return
        if conn.pending.done():
            self._open(conn)
        else:
            self._resolving.append(conn)

    def _open(self, conn: _Conn) -> None:
        """Connect to the first address that takes a connect, now that the name is resolved."""
        assert conn.pending is not None
        try:
            conn.attempt = Attempt(conn.pending.result(), self.sockets, f"{conn.host}:{conn.port}")
        except Exception as exc:
            self.lost(conn, resolve_failure(exc, conn.host, conn.port), raw=True)
            return
        self._next(conn)

    def _next(self, conn: _Conn) -> None:
        """Connect ``conn`` to its next address (``use_all_dns_ips``); lost when none is left."""
        assert conn.attempt is not None
        conn.close(abort=True)
        conn.sock = conn.attempt.start()
        if conn.sock is None:
            self.lost(conn, conn.attempt.error, raw=True)
        else:
            self._sel.register(conn.sock, selectors.EVENT_WRITE, conn)

    def write(self, out: list[tuple[int, bytes]]) -> None:
        conns = self.conns
        for node_id, data in out:
            conn = conns.get(node_id)
            if conn is not None:
                conn.out += data
        for node_id, _ in out:  # one send per node for all its requests
            conn = conns.get(node_id)
            if conn is not None and conn.out and conn.up:
                self._write(conn)

    # --- sockets ---------------------------------------------------------------

    def _connected(self, conn: _Conn) -> None:
        """The connect finished: the next address if it failed, else TLS's handshake or the report."""
        sock, attempt = conn.sock, conn.attempt
        assert sock is not None and attempt is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            attempt.fail(OSError(err, errno.errorcode.get(err, "connect failed")))
            self._next(conn)
            return
        conn.attempt = None
        if self.ssl_context is None:
            self._sel.modify(sock, _READ, conn)
        else:
            self._sel.unregister(sock)
            try:  # it verifies the name of the address connected to
                conn.sock = self.ssl_context.wrap_socket(
                    sock, server_hostname=attempt.name or conn.host, do_handshake_on_connect=False
                )
            except (ssl.SSLError, ValueError) as exc:
                self.lost(conn, tls_failure(exc, conn.host, conn.port), raw=True)
                return
            self._sel.register(conn.sock, _READ, conn)
        self._handshake(conn)

    def _handshake(self, conn: _Conn) -> None:
        """Advance the TLS handshake (none without TLS); once done, report ``conn`` made."""
        sock = conn.sock
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.do_handshake()
            except ssl.SSLWantReadError:
                return self._want(conn, _READ)
            except ssl.SSLWantWriteError:
                return self._want(conn, _RW)
            except OSError as exc:  # ssl.SSLError is one
                self.lost(conn, tls_failure(exc, conn.host, conn.port) if isinstance(exc, ssl.SSLError)
                          else handshake_closed(conn.host, conn.port, exc), raw=True)
                return None
        conn.up = True
        if self.made(conn):
            self._write(conn) if conn.out else self._want(conn, _READ)
        return None

    def _read(self, conn: _Conn) -> None:
        sock = conn.sock
        assert sock is not None
        size = self._recv_size
        tls = isinstance(sock, ssl.SSLSocket)
        budget = self._reads * size  # an SSLSocket reads one TLS record (16 KiB) at a time
        while budget > 0:
            try:
                data = sock.recv(size)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as exc:
                self.lost(conn, exc)  # lost_error: TLS 1.3 refuses our certificate at the first read
                return
            if not data:
                self.lost(conn, None)
                return
            if not self.received(conn, data) or (not tls and len(data) < size):
                return  # the core raised on these bytes (that connection went), or nothing more
            budget -= len(data) if tls else size

    def _write(self, conn: _Conn) -> None:
        sock = conn.sock
        assert sock is not None
        try:
            n = sock.send(conn.out)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            n = 0
        except OSError as exc:
            self.lost(conn, exc, raw=True)
            return
        del conn.out[:n]
        self._want(conn, _RW if conn.out else _READ)

    def _want(self, conn: _Conn, events: int) -> None:
        assert conn.sock is not None
        if self._sel.get_key(conn.sock).events != events:
            self._sel.modify(conn.sock, events, conn)

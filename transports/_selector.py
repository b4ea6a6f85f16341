"""The blocking-socket backend: a ``selectors`` loop in the calling thread. Names resolve on every
connect (KIP-899) on the resolver pool of transports/_sockopts.py, which wakes the loop; TLS is a
:class:`~transports._tls.TLSSession` over memory buffers, reported made once its handshake is done."""

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
from transports._tls import TLSSession, closed_error, tls_failure

__all__ = ["SelectorDriver"]

_READ: Final = selectors.EVENT_READ
_RW: Final = selectors.EVENT_READ | selectors.EVENT_WRITE


class _Conn(Conn):
    __slots__ = ("attempt", "out", "pending", "plain", "sel", "sock", "tls", "up")

    def __init__(self, cmd: Connect, sel: selectors.BaseSelector) -> None:
        super().__init__(cmd.node_id, cmd.host, cmd.port)
        self.sel = sel
        self.pending: Future[list[Any]] | None = None  # the name being resolved
        self.attempt: Attempt | None = None  # the addresses left to try until TCP is up (use_all_dns_ips)
        self.sock: socket.socket | None = None
        self.tls: TLSSession | None = None
        self.up = False  # reported to the core
        self.out = bytearray()  # raw bytes to write (ciphertext with TLS)
        self.plain = bytearray()  # what the core sent before that

    def close(self, *, abort: bool) -> None:
        if self.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.sock)
            self.sock.close()


class SelectorDriver(Driver[_Conn]):
    """Runs a core over non-blocking sockets in the caller's thread, one :meth:`step` at a time.

    ``reads`` ``recv`` calls of ``recv_size`` per readable socket per step (fetch responses are
    megabytes); ``on_crash(core, exc, now)`` is told when :meth:`run_once` dies of a bug.
    """

    def __init__(self, core: Driven, clock: Callable[[], float] = time.monotonic,
                 ssl_context: ssl.SSLContext | None = None, *, sink: Sink | None = None, recv_size: int = 1 << 20,
                 reads: int = 8, on_crash: Callable[[Any, BaseException, float], None] | None = None,
                 what: str) -> None:
        super().__init__(core, ssl_context, now=clock, sink=sink, on_crash=on_crash, what=what)
        self._recv_size = recv_size
        self._reads = reads
        self._sel = self.sockets.selector()
        self._resolving: list[_Conn] = []
        self._wake: tuple[socket.socket, socket.socket] | None = None
        #: A wake-up byte is in flight (another wakeup() need not send one).
        self._wake_pending = False
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
        if self._wake is not None and not self._wake_pending:
            self._wake_pending = True
            try:  # (try, not contextlib.suppress: user threads call this per wake-up)
                self._wake[1].send(b"\0")
            except OSError:
                pass  # the buffer is full: a wakeup is pending

    def busy(self) -> bool:
        """Work arrived that ``select`` must not sleep on (checked after ``sleeping`` is set)."""
        return False

    def flush(self, now: float | None = None) -> None:
        """Carry out the core's commands, write its bytes, hand its events to the sink."""
        pump(self.core, self, self.sink)

    def step(self, timeout: float) -> None:
        """Pump once, wait for I/O up to ``timeout`` or the core's timer, feed what came, run the timer."""
        core = self.core
        pump(core, self, self.sink)
        t = core.get_timer()
        if t is not None:
            timeout = min(timeout, t - self.now())
        self.sleeping = True
        if self.busy():
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
                self._wake_pending = False
            elif conn.closed_by_us:
                continue
            elif conn.attempt is not None:
                self._connected(conn)
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

    def close_connections(self) -> None:
        """Close every broker socket (no ``connection_lost`` reports)."""
        for node_id in list(self.conns):
            self.disconnect(node_id)

    def close(self) -> None:
        """Close every socket, the wake-up pair and the selector."""
        self.close_connections()
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
            self.failed_open(conn, exc, bad)
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
        """Connect ``conn`` to its next address; lost when none is left."""
        assert conn.attempt is not None
        conn.close(abort=True)
        conn.sock = conn.attempt.start()
        if conn.sock is None:
            self.lost(conn, conn.attempt.error, raw=True)
            return
        if self.ssl_context is not None:
            try:  # a session per address: it verifies that address's name
                conn.tls = TLSSession(self.ssl_context, conn.attempt.name or conn.host)
            except (ssl.SSLError, ValueError) as exc:
                self.lost(conn, tls_failure(exc, conn.host, conn.port), raw=True)
                return
        self._sel.register(conn.sock, selectors.EVENT_WRITE, conn)

    def write(self, out: list[tuple[int, bytes]]) -> None:
        conns = self.conns
        for node_id, data in out:
            conn = conns.get(node_id)
            if conn is not None:
                tls = conn.tls
                if not conn.up:
                    conn.plain += data
                elif tls is None:
                    conn.out += data
                else:
                    conn.out += tls.encrypt(data)
        for node_id, _ in out:  # one send per node for all its requests
            conn = conns.get(node_id)
            if conn is not None and conn.out and conn.up:
                self._write(conn)

    # --- sockets ---------------------------------------------------------------

    def _connected(self, conn: _Conn) -> None:
        """The socket connected or failed; ``use_all_dns_ips``: try the next address."""
        assert conn.sock is not None and conn.attempt is not None
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            conn.attempt.fail(OSError(err, errno.errorcode.get(err, "connect failed")))
            self._next(conn)
            return
        conn.attempt = None
        self._sel.modify(conn.sock, _READ, conn)
        if conn.tls is None:
            self._up(conn, b"")
        else:
            self._tls(conn, b"")

    def _up(self, conn: _Conn, raw: bytes) -> None:
        """Report ``conn`` made; write ``raw`` (TLS's last handshake bytes) and what the core sent before."""
        conn.up = True
        tls = conn.tls
        conn.out += raw
        if conn.plain:
            conn.out += conn.plain if tls is None else tls.encrypt(conn.plain)
            conn.plain.clear()
        if self.made(conn) and conn.out:
            self._write(conn)

    def _tls(self, conn: _Conn, raw: bytes) -> tuple[bytes, bool] | None:
        """Feed ``raw`` to TLS: the plaintext and whether the peer closed; None if ``conn`` failed."""
        tls = conn.tls
        assert tls is not None
        try:
            data, closed = tls.receive(raw)
        except ssl.SSLError as exc:
            # TLS 1.3: a refused client certificate shows up here, after our handshake.
            self.lost(conn, exc if tls.received_data else tls_failure(exc, conn.host, conn.port), raw=True)
            return None
        raw = tls.outgoing()
        if not conn.up and tls.handshake_done:
            self._up(conn, raw)
        elif raw:
            conn.out += raw
            self._write(conn)
        return None if conn.closed_by_us else (data, closed)

    def _read(self, conn: _Conn) -> None:
        sock = conn.sock
        assert sock is not None
        size = self._recv_size
        for _ in range(self._reads):
            try:
                data = sock.recv(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.lost(conn, closed_error(conn.tls, exc, conn.host, conn.port), raw=True)
                return
            if not data:
                self.lost(conn, closed_error(conn.tls, None, conn.host, conn.port), raw=True)
                return
            more = len(data) == size
            closed = False
            if conn.tls is not None:
                got = self._tls(conn, data)
                if got is None:
                    return
                data, closed = got
            if data and not self.received(conn, data):
                return  # the core raised on these bytes: that connection went
            if closed:
                self.lost(conn, None, raw=True)
            if closed or not more or conn.closed_by_us:
                return

    def _write(self, conn: _Conn) -> None:
        sock = conn.sock
        assert sock is not None
        try:
            n = sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self.lost(conn, exc, raw=True)
            return
        del conn.out[:n]
        want = _RW if conn.out else _READ
        if self._sel.get_key(sock).events != want:
            self._sel.modify(sock, want, conn)

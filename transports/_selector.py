"""The blocking-socket backend: one ``selectors`` loop for the sync producer and consumer.

Runs in the calling thread; names resolve on every connect (a broker that moved, KIP-899)
on a small resolver pool that wakes the loop (``resolve_later`` in transports/_sockopts.py,
which also sets the socket options and tries every address in turn). TLS is a
:class:`~transports._tls.TLSSession` over memory buffers whose handshake runs in this loop;
the core hears ``connection_made`` once it is done.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, TypeVar

from kproto.driving import Connect
from transports._common import crashed_error
from transports._driving import Driven, Sink, bad_address, feed, pump, resolve_failure
from transports._sockopts import Attempt, SocketSettings, resolve_later
from transports._tls import TLSSession, closed_error, tls_failure

__all__ = ["SelectorDriver"]

_READ: Final = selectors.EVENT_READ
_RW: Final = selectors.EVENT_READ | selectors.EVENT_WRITE


class _Conn:
    __slots__ = ("attempt", "connecting", "host", "node_id", "out", "plain", "port", "sock", "tcp_up", "tls")

    def __init__(
        self, node_id: int, sock: socket.socket, host: str, port: int, tls: TLSSession | None, attempt: Attempt
    ) -> None:
        self.attempt = attempt  # the addresses left to try (use_all_dns_ips)
        self.node_id = node_id
        self.sock = sock
        self.host = host
        self.port = port
        self.out = bytearray()  # raw bytes to write (ciphertext with TLS)
        self.connecting = True  # not reported to the core yet (TCP, then TLS, under way)
        self.tcp_up = False
        self.tls = tls
        self.plain = bytearray()  # what the core sent before the TLS handshake finished


def _error(err: int) -> OSError:
    return OSError(err, errno.errorcode.get(err, "connect failed"))


class SelectorDriver:
    """Runs a core over non-blocking sockets in the caller's thread, one :meth:`step` at a time.

    ``reads`` ``recv`` calls of ``recv_size`` per readable socket per step (fetch responses are
    megabytes); ``on_crash(core, exc, now)`` is told when :meth:`run_once` dies of a bug.
    """

    def __init__(
        self,
        core: Driven,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
        *,
        sink: Sink | None = None,
        recv_size: int = 1 << 20,
        reads: int = 8,
        on_crash: Callable[[Any, BaseException, float], None] | None = None,
    ) -> None:
        self.core = core
        self.clock = clock
        self.ssl_context = ssl_context
        self.sink = sink
        self._recv_size = recv_size
        self._reads = reads
        self._on_crash = on_crash
        #: socket_options, buffer sizes, DNS policy and selector class from the core's config.
        self.sockets = SocketSettings.of(getattr(core, "config", None))
        self._sel = self.sockets.selector()
        self._conns: dict[int, _Conn] = {}
        #: Connections whose name is being resolved off this thread (transports/_sockopts.py).
        self._resolving: dict[int, tuple[Connect, Future[list[Any]]]] = {}
        self._wake: tuple[socket.socket, socket.socket] | None = None
        #: A wake-up byte is in flight (another wakeup() need not send one).
        self._wake_pending = False
        #: In ``select`` (or about to be): a thread adding work must call :meth:`wakeup`.
        self.sleeping = False
        #: What a step died of; later :meth:`run_once` calls raise it.
        self.crashed: BaseException | None = None

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

    pump = flush  # the event-loop drivers' name, for code shared with them

    def step(self, timeout: float) -> None:
        """Flush, wait for I/O up to ``timeout`` or the core's timer, feed what came, run the timer."""
        core = self.core
        pump(core, self, self.sink)
        now = self.clock()
        t = core.get_timer()
        if t is not None:
            timeout = min(timeout, t - now)
        self.sleeping = True
        if self.busy():
            timeout = 0.0
        elif self._resolving and self._wake is None:
            timeout = min(timeout, 0.02)  # no wake-up pair: look for the resolvers' answers often
        if self._conns or self._wake is not None:
            ready = self._sel.select(max(0.0, timeout))
        else:
            if timeout > 0:
                time.sleep(timeout)
            ready = []
        self.sleeping = False
        if self._resolving:
            self._resolved()
        now = self.clock()
        conns = self._conns
        for key, mask in ready:
            conn: _Conn | None = key.data
            if conn is None:
                # Drain, then re-arm: a wakeup() between the two leaves a spurious wake-up, never a lost one.
                with contextlib.suppress(OSError):
                    while key.fileobj.recv(4096):  # type: ignore[union-attr]
                        pass
                self._wake_pending = False
            elif conns.get(conn.node_id) is not conn:
                continue
            elif not conn.tcp_up:
                self._finish_connect(conn, now)
            else:
                if mask & selectors.EVENT_WRITE and conn.out:
                    self._write(conn)
                if mask & _READ and conns.get(conn.node_id) is conn:
                    self._read(conn, now)
        t = core.get_timer()
        if t is not None and t <= now:
            core.handle_timer(now)

    def run_once(self, timeout: float) -> None:
        """One :meth:`step`; a bug kills the driver: this and every later call raise ``IllegalStateError``."""
        if self.crashed is not None:
            raise crashed_error("the consumer's driver", self.crashed)
        try:
            self.step(timeout)
            pump(self.core, self, self.sink)
        except Exception as exc:
            self.crashed = exc
            if self._on_crash is not None:
                self._on_crash(self.core, exc, self.clock())
            self.close_connections()
            raise crashed_error("the consumer's driver", exc) from exc

    def run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Run steps until ``done()`` or ``timeout`` seconds; returns ``done()``."""
        deadline = None if timeout is None else self.clock() + timeout
        while not done():
            left = 1.0 if deadline is None else deadline - self.clock()
            if left <= 0:
                return done()
            self.run_once(left)
        return True

    def close_connections(self) -> None:
        """Close every broker socket (no ``connection_lost`` reports)."""
        for conn in list(self._conns.values()):
            self._drop(conn)

    def close(self) -> None:
        """Close every socket, the wake-up pair and the selector."""
        self.close_connections()
        for sock in self._wake or ():
            sock.close()
        self._wake = None
        self._sel.close()

    # --- the IO backend (transports._driving.IO) ---------------------------------

    def connect(self, cmd: Connect) -> None:
        err = bad_address(cmd.host, cmd.port)
        if err is not None:
            self.core.connection_lost(cmd.node_id, err, self.clock())
            return
        try:
            pending = resolve_later(
                cmd.host, cmd.port, self.sockets, bootstrap=cmd.node_id < 0, notify=self.wakeup
            )
        except Exception as exc:  # the resolver pool refused work (interpreter shutting down)
            self.core.connection_lost(cmd.node_id, resolve_failure(exc, cmd.host, cmd.port), self.clock())
            return
        if pending.done():
            self._open(cmd, pending)
        else:
            self._resolving[cmd.node_id] = (cmd, pending)

    def _open(self, cmd: Connect, resolved: Future[list[Any]]) -> None:
        """Connect to the first address that takes a connect, now that the name is resolved."""
        host, port = cmd.host, cmd.port
        try:
            attempt = Attempt(resolved.result(), self.sockets, f"{host}:{port}")
        except Exception as exc:
            self.core.connection_lost(cmd.node_id, resolve_failure(exc, host, port), self.clock())
            return
        sock = attempt.start()
        if sock is None:
            self.core.connection_lost(cmd.node_id, attempt.error, self.clock())
            return
        conn = _Conn(cmd.node_id, sock, host, port, None, attempt)
        err = self._new_tls(conn)
        if err is not None:
            sock.close()
            self.core.connection_lost(cmd.node_id, err, self.clock())
            return
        self._conns[cmd.node_id] = conn
        self._sel.register(sock, selectors.EVENT_WRITE, conn)

    def _new_tls(self, conn: _Conn) -> BaseException | None:
        """A TLS session for the address being tried (it verifies that address's name)."""
        if self.ssl_context is None:
            return None
        try:
            conn.tls = TLSSession(self.ssl_context, conn.attempt.name or conn.host)
        except (ssl.SSLError, ValueError) as exc:
            return tls_failure(exc, conn.host, conn.port)
        return None

    def _next_address(self, conn: _Conn, error: BaseException) -> bool:
        """``use_all_dns_ips``: the address failed; move ``conn`` to the next one. False: none left."""
        attempt = conn.attempt
        attempt.fail(error)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()
        sock = attempt.start() if attempt.more() else None
        if sock is None or self._new_tls(conn) is not None:
            if sock is not None:
                sock.close()
            return False
        conn.sock = sock
        self._sel.register(sock, selectors.EVENT_WRITE, conn)
        return True

    def _resolved(self) -> None:
        """Open the connections whose names came back from the resolver threads."""
        for node_id, (cmd, pending) in list(self._resolving.items()):
            if pending.done():
                del self._resolving[node_id]
                self._open(cmd, pending)

    def disconnect(self, node_id: int) -> None:
        self._resolving.pop(node_id, None)
        conn = self._conns.get(node_id)
        if conn is not None:
            self._drop(conn)

    def write(self, out: list[tuple[int, bytes]]) -> None:
        conns = self._conns
        for node_id, data in out:
            conn = conns.get(node_id)
            if conn is not None:
                tls = conn.tls
                if tls is None:
                    conn.out += data
                elif conn.connecting:
                    conn.plain += data
                else:
                    conn.out += tls.encrypt(data)
        for node_id, _ in out:  # one send per node for all its requests
            conn = conns.get(node_id)
            if conn is not None and conn.out and not conn.connecting:
                self._write(conn)

    # --- sockets ---------------------------------------------------------------

    def _finish_connect(self, conn: _Conn, now: float) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            if not self._next_address(conn, _error(err)):
                self._lost(conn, conn.attempt.error, now)
            return
        conn.tcp_up = True
        self._sel.modify(conn.sock, _READ, conn)
        if conn.tls is None:
            conn.connecting = False
            self.core.connection_made(conn.node_id, now)
            if conn.out:
                self._write(conn)
            return
        try:
            done = conn.tls.do_handshake()
        except ssl.SSLError as exc:
            self._lost(conn, tls_failure(exc, conn.host, conn.port), now)
            return
        self._tls_progress(conn, done, now)

    def _tls_progress(self, conn: _Conn, done: bool, now: float) -> None:
        """Write what TLS has to send; report the connection once the handshake is done."""
        tls = conn.tls
        assert tls is not None
        raw = tls.outgoing()
        if done and conn.connecting:
            conn.connecting = False
            if conn.plain:
                raw += tls.encrypt(conn.plain)
                conn.plain.clear()
            self.core.connection_made(conn.node_id, now)
        if raw:
            conn.out += raw
            self._write(conn)

    def _read(self, conn: _Conn, now: float) -> None:
        sock = conn.sock
        tls = conn.tls
        size = self._recv_size
        for _ in range(self._reads):
            try:
                data = sock.recv(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(conn, closed_error(tls, exc, conn.host, conn.port), now)
                return
            if not data:
                self._lost(conn, closed_error(tls, None, conn.host, conn.port), now)
                return
            more = len(data) == size
            closed = False
            if tls is not None:
                try:
                    data, closed = tls.receive(data)
                except ssl.SSLError as exc:
                    # TLS 1.3: a refused client certificate shows up here, after our handshake.
                    self._lost(conn, exc if tls.received_data else tls_failure(exc, conn.host, conn.port), now)
                    return
                self._tls_progress(conn, tls.handshake_done, now)
                if self._conns.get(conn.node_id) is not conn:
                    return
            if data and (failed := feed(self.core, conn.node_id, data, now)) is not None:
                self._lost(conn, failed, now)  # the core raised on these bytes: that connection goes
                return
            if closed:
                if self._conns.get(conn.node_id) is conn:
                    self._lost(conn, None, now)
                return
            if not more or self._conns.get(conn.node_id) is not conn:
                return

    def _write(self, conn: _Conn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._lost(conn, exc, self.clock())
            return
        del conn.out[:n]
        want = _RW if conn.out else _READ
        if self._sel.get_key(conn.sock).events != want:
            self._sel.modify(conn.sock, want, conn)

    def _lost(self, conn: _Conn, exc: BaseException | None, now: float) -> None:
        self._drop(conn)
        self.core.connection_lost(conn.node_id, exc, now)

    def _drop(self, conn: _Conn) -> None:
        if self._conns.get(conn.node_id) is conn:
            del self._conns[conn.node_id]
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()


_Client = TypeVar("_Client", bound="SelectorClient")


class SelectorClient:
    """``with`` support and a finalizer for a blocking facade whose :class:`SelectorDriver` is ``_driver``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Client) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Sockets only: no commit or request from a finalizer.
        driver = getattr(self, "_driver", None)
        if driver is not None and not getattr(self, "_closed", True):
            try:
                driver.close()
            except Exception:
                pass

"""The blocking-socket backend: one ``selectors`` loop for the sync producer and consumer.

Runs in the calling thread; names resolve there on every connect (a broker that moved,
KIP-899). TLS is a :class:`~transports._tls.TLSSession` over memory buffers whose handshake
runs in this loop; the core hears ``connection_made`` once it is done.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Final

from kproto.driving import Connect
from kproto.errors import KafkaConnectionError, KafkaError
from kproto.socks5 import ProxyAddress, Socks5Handshake
from transports._common import crashed_error
from transports._driving import Driven, Sink, bad_address, feed, pump, resolve_failure
from transports._tls import TLSSession, closed_error, tls_failure

__all__ = ["SelectorDriver"]

_READ: Final = selectors.EVENT_READ
_RW: Final = selectors.EVENT_READ | selectors.EVENT_WRITE


class _Conn:
    __slots__ = ("connecting", "host", "node_id", "out", "plain", "port", "sock", "socks", "tcp_up", "tls")

    def __init__(self, node_id: int, sock: socket.socket, host: str, port: int, tls: TLSSession | None) -> None:
        self.node_id = node_id
        self.sock = sock
        self.host = host
        self.port = port
        self.out = bytearray()  # raw bytes to write (ciphertext with TLS)
        self.connecting = True  # not reported to the core yet (TCP, then TLS, under way)
        self.tcp_up = False
        self.tls = tls
        self.plain = bytearray()  # what the core sent before the TLS handshake finished
        self.socks: Socks5Handshake | None = None  # the proxy handshake before TLS, while under way


def _error(err: int) -> OSError:
    return OSError(err, errno.errorcode.get(err, "connect failed"))


class SelectorDriver:
    """Runs a core over non-blocking sockets in the caller's thread, one :meth:`step` at a time.

    ``reads`` ``recv`` calls of ``recv_size`` per readable socket per step (fetch responses are
    megabytes); ``on_crash(core, exc, now)`` is told when :meth:`run_once` dies of a bug.
    ``proxy``, with ``ssl_context``: reach brokers through this SOCKS5 proxy, whose handshake
    runs before TLS (without TLS the core runs it).
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
        proxy: ProxyAddress | None = None,
    ) -> None:
        self.core = core
        self.proxy = proxy if ssl_context is not None else None
        self.clock = clock
        self.ssl_context = ssl_context
        self.sink = sink
        self._recv_size = recv_size
        self._reads = reads
        self._on_crash = on_crash
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}
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
        if self._conns or self._wake is not None:
            ready = self._sel.select(max(0.0, timeout))
        else:
            if timeout > 0:
                time.sleep(timeout)
            ready = []
        self.sleeping = False
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
        pump(core, self, self.sink)

    def run_once(self, timeout: float) -> None:
        """One :meth:`step`; a bug kills the driver: this and every later call raise ``IllegalStateError``."""
        if self.crashed is not None:
            raise crashed_error("the consumer's driver", self.crashed)
        try:
            self.step(timeout)
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
        host, port, ctx, proxy = cmd.host, cmd.port, self.ssl_context, self.proxy
        err: BaseException | None = bad_address(host, port)
        sock = tls = None
        if err is None:
            try:
                dial = (host, port) if proxy is None else (proxy.host, proxy.port)
                family, stype, proto, _, addr = socket.getaddrinfo(*dial, type=socket.SOCK_STREAM)[0]
                sock = socket.socket(family, stype, proto)
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    tls = None if ctx is None else TLSSession(ctx, host)
                except (ssl.SSLError, ValueError) as exc:
                    err = tls_failure(exc, host, port)
                else:
                    code = sock.connect_ex(addr)  # in progress or done: _finish_connect checks SO_ERROR
                    if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                        err = _error(code)
            except Exception as exc:
                err = resolve_failure(exc, host, port)
        if err is not None or sock is None:
            if sock is not None:
                sock.close()
            self.core.connection_lost(cmd.node_id, err, self.clock())
            return
        conn = self._conns[cmd.node_id] = _Conn(cmd.node_id, sock, host, port, tls)
        if proxy is not None:
            conn.socks = Socks5Handshake(proxy, host, port)
        self._sel.register(sock, selectors.EVENT_WRITE, conn)

    def disconnect(self, node_id: int) -> None:
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
            self._lost(conn, _error(err), now)
            return
        conn.tcp_up = True
        self._sel.modify(conn.sock, _READ, conn)
        if conn.tls is None:
            conn.connecting = False
            self.core.connection_made(conn.node_id, now)
            if conn.out:
                self._write(conn)
            return
        if conn.socks is not None:
            conn.out += conn.socks.data_to_send()
            self._write(conn)
            return
        self._start_tls(conn, now)

    def _start_tls(self, conn: _Conn, now: float) -> None:
        assert conn.tls is not None
        try:
            done = conn.tls.do_handshake()
        except ssl.SSLError as exc:
            self._lost(conn, tls_failure(exc, conn.host, conn.port), now)
            return
        self._tls_progress(conn, done, now)

    def _socks_read(self, conn: _Conn, socks: Socks5Handshake, now: float) -> None:
        """The proxy's answer during the SOCKS5 handshake (before TLS; see ``socks5_tunnel``)."""
        try:
            data = conn.sock.recv(512)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(conn, exc, now)
            return
        try:
            if not data:
                raise KafkaConnectionError("the SOCKS5 proxy closed the connection during its handshake")
            socks.receive_data(data)
        except KafkaError as exc:
            self._lost(conn, exc, now)
            return
        conn.out += socks.data_to_send()
        if conn.out:
            self._write(conn)
        if socks.done and self._conns.get(conn.node_id) is conn:
            conn.socks = None
            self._start_tls(conn, now)

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
        if conn.socks is not None:
            self._socks_read(conn, conn.socks, now)
            return
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

"""A fault-injecting TCP proxy for the integration tests (loopback only, one thread, bounded).

::

    client  <->  FaultProxy(port)  <->  broker(target_port)

Faults, switchable at any time from the test thread:

- ``delay = seconds``: every chunk is held that long in each direction;
- ``blackhole = True``: bytes are read and dropped in both directions, on
  current and new connections (the TCP connections stay open: only a request
  timeout can notice);
- ``cut()``: every current connection is reset (RST: SO_LINGER 0);
- ``refuse = True``: new connections are accepted and closed at once.

Bounds: at most ``MAX_CONNECTIONS`` pairs, and at most ``MAX_BUFFERED`` bytes
waiting per direction (a pair over it is cut): a stuck client cannot make
the test process grow without limit.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from _loopback import LoopbackServer

if TYPE_CHECKING:
    from _broker import TansuBroker

__all__ = ["FaultProxy", "tansu_behind_proxy"]

#: Connection pairs at once (a client has a handful; a leak shows as a cut).
MAX_CONNECTIONS = 64
#: Bytes held per direction (delay queue + unsent), 16 MiB.
MAX_BUFFERED = 16 * 1024 * 1024


class _Side:
    """One socket of a pair: what is waiting to be written to it."""

    __slots__ = ("buffered", "out", "peer", "queue", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peer: _Side | None = None
        self.queue: deque[tuple[float, bytes]] = deque()  # (due, data) not yet released
        self.out = bytearray()  # released, not yet written
        self.buffered = 0


class FaultProxy(LoopbackServer):
    """Forward 127.0.0.1:``port`` to 127.0.0.1:``target_port`` with injectable faults."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        super().__init__("fault-proxy", port, backlog=16)
        self.target_port = target_port
        self.delay = 0.0
        self.blackhole = False
        self.refuse = False
        self._sides: dict[socket.socket, _Side] = {}
        self._lock = threading.Lock()
        self._cut_requested = False
        self._start_thread()

    # --- test-thread side -------------------------------------------------

    @property
    def connections(self) -> int:
        """Connection pairs open now."""
        with self._lock:
            return len(self._sides) // 2

    def cut(self) -> None:
        """Reset every current connection (the proxy keeps listening)."""
        self._cut_requested = True
        self._wake()
        deadline = time.monotonic() + 5
        while self._cut_requested and time.monotonic() < deadline:
            time.sleep(0.005)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the proxy thread (LoopbackServer hooks) ------------------------------

    def _timeout(self) -> float:
        timeout = 0.05
        now = time.monotonic()
        for side in self._sides.values():
            if side.queue:
                timeout = min(timeout, max(0.0, side.queue[0][0] - now))
        return timeout

    def _ready(self, side: _Side, mask: int) -> None:
        if side.sock not in self._sides:
            return
        if mask & selectors.EVENT_READ:
            self._read(side)
        if mask & selectors.EVENT_WRITE and side.sock in self._sides:
            self._flush(side)

    def _tick(self) -> None:
        if self._cut_requested:
            for side in list(self._sides.values()):
                self._drop(side, reset=True)
            self._cut_requested = False
        now = time.monotonic()
        for side in list(self._sides.values()):
            moved = False
            while side.queue and side.queue[0][0] <= now:
                side.out += side.queue.popleft()[1]
                moved = True
            if moved:
                self._flush(side)

    def _teardown(self) -> None:
        for side in list(self._sides.values()):
            self._drop(side, reset=True)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        self.accepted += 1
        if self.refuse or len(self._sides) >= 2 * MAX_CONNECTIONS:
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=1.0)
        except OSError:
            _reset(client)
            return
        a, b = _Side(client), _Side(upstream)
        a.peer, b.peer = b, a
        with self._lock:
            for side in (a, b):
                side.sock.setblocking(False)
                side.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sides[side.sock] = side
                self._sel.register(side.sock, selectors.EVENT_READ, side)

    def _read(self, side: _Side) -> None:
        try:
            data = side.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(side, reset=False)
            return
        if self.blackhole:
            return
        dst = side.peer
        assert dst is not None
        dst.buffered += len(data)
        if dst.buffered > MAX_BUFFERED:
            self._drop(side, reset=True)
            return
        if self.delay > 0:
            dst.queue.append((time.monotonic() + self.delay, data))
        else:
            dst.out += data
            self._flush(dst)

    def _flush(self, side: _Side) -> None:
        if side.out:
            try:
                n = side.sock.send(side.out)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._drop(side, reset=True)
                return
            del side.out[:n]
            side.buffered -= n
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if side.out else 0)
        try:
            if self._sel.get_key(side.sock).events != want:
                self._sel.modify(side.sock, want, side)
        except (KeyError, ValueError):
            pass

    def _drop(self, side: _Side, *, reset: bool) -> None:
        """Close both sockets of ``side``'s pair (with RST if ``reset``)."""
        with self._lock:
            for s in (side, side.peer):
                if s is None or s.sock not in self._sides:
                    continue
                del self._sides[s.sock]
                try:
                    self._sel.unregister(s.sock)
                except (KeyError, ValueError):
                    pass
                if reset:
                    _reset(s.sock)
                else:
                    s.sock.close()


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@contextmanager
def tansu_behind_proxy() -> Iterator[tuple[TansuBroker, FaultProxy]]:
    """A Tansu broker that advertises a :class:`FaultProxy`'s port: every client connection goes through it."""
    from _broker import TansuBroker, free_port

    target = free_port()
    proxy = FaultProxy(target)
    broker = TansuBroker(port=target, advertised_port=proxy.port)
    broker.start()
    try:
        yield broker, proxy
    finally:
        broker.stop()
        proxy.close()

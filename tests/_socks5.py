"""A SOCKS5 server (RFC 1928 CONNECT, RFC 1929 username/password) on loopback for the integration tests.

::

    with Socks5Server(username="u", password="p") as proxy:
        KafkaProducer(bootstrap_servers=broker.bootstrap, proxy_url=proxy.url("u", "p"))
        proxy.targets   # [(atyp, host, port), ...] of every CONNECT it served

Stdlib only: a listener thread and a thread per connection (handshake, then
a ``select`` relay in both directions). Modes a test switches:
``refuse = <RFC 1928 reply code>`` answers every CONNECT with that code;
``garbage = b"..."`` answers the greeting with those bytes. Bounds: at most
``MAX_CONNECTIONS`` at once (more are closed at accept), relay chunks of 64 KiB.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import threading
from typing import Any

__all__ = ["Socks5Server"]

MAX_CONNECTIONS = 64


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed during the SOCKS5 handshake")
        data += chunk
    return data


class Socks5Server:
    """See the module docstring."""

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.username = username
        self.password = password
        self.refuse = 0
        self.garbage: bytes | None = None
        #: ``(atyp, host, port)`` of every CONNECT served (ATYP 1 IPv4, 3 domain, 4 IPv6).
        self.targets: list[tuple[int, str, int]] = []
        #: Handshakes that failed authentication.
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)  # the accept loop sees _stop soon
        self.port: int = self._listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, name=f"socks5-{self.port}", daemon=True)

    def url(self, username: str | None = None, password: str | None = None, scheme: str = "socks5") -> str:
        """``scheme://[user:password@]127.0.0.1:port``."""
        cred = f"{username}:{password}@" if username is not None else ""
        return f"{scheme}://{cred}127.0.0.1:{self.port}"

    def __enter__(self) -> Socks5Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for s in list(self._conns):
                s.close()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._lock:
                if len(self._conns) >= MAX_CONNECTIONS:
                    sock.close()
                    continue
                self._conns.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            upstream = self._handshake(client)
            if upstream is not None:
                self._relay(client, upstream)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    s.close()
                    with self._lock:
                        self._conns.discard(s)

    def _handshake(self, client: socket.socket) -> socket.socket | None:
        version, n = _recv_exact(client, 2)
        methods = _recv_exact(client, n)
        if self.garbage is not None:
            client.sendall(self.garbage)
            return None
        if version != 5:
            return None
        if self.username is not None:
            if 2 not in methods:
                self.auth_failures += 1  # counted before the answer: the test may look at once
                client.sendall(b"\x05\xff")
                return None
            client.sendall(b"\x05\x02")
            _ver, ulen = _recv_exact(client, 2)
            user = _recv_exact(client, ulen).decode()
            (plen,) = _recv_exact(client, 1)
            password = _recv_exact(client, plen).decode()
            if (user, password) != (self.username, self.password):
                self.auth_failures += 1
                client.sendall(b"\x01\x01")
                return None
            client.sendall(b"\x01\x00")
        else:
            client.sendall(b"\x05\x00")
        _ver, cmd, _rsv, atyp = _recv_exact(client, 4)
        host: Any
        if atyp == 1:
            host = str(ipaddress.IPv4Address(_recv_exact(client, 4)))
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(_recv_exact(client, 16)))
        else:
            (length,) = _recv_exact(client, 1)
            host = _recv_exact(client, length).decode()
        port = int.from_bytes(_recv_exact(client, 2), "big")
        with self._lock:
            self.targets.append((atyp, host, port))
        if cmd != 1 or self.refuse:
            client.sendall(bytes([5, self.refuse or 7, 0, 1, 0, 0, 0, 0, 0, 0]))
            return None
        try:
            upstream = socket.create_connection((host, port), timeout=5)
        except OSError:
            client.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")  # connection refused
            return None
        upstream.settimeout(None)
        with self._lock:
            self._conns.add(upstream)
        bound_host, bound_port = upstream.getsockname()[:2]
        client.sendall(b"\x05\x00\x00\x01" + ipaddress.IPv4Address(bound_host).packed + bound_port.to_bytes(2, "big"))
        return upstream

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        while not self._stop:
            readable, _, _ = select.select([a, b], [], [], 0.5)
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                peer[s].sendall(data)

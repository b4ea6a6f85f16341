"""A SASL-terminating gate in front of Tansu, for SASL over real sockets.

Tansu cannot create SASL users with in-memory storage (TESTING.md), so this
gate plays the broker's SASL part: per client connection it

1. forwards ApiVersions to Tansu and adds SaslHandshake (0-1) and
   SaslAuthenticate (0-2) to the answer;
2. answers SaslHandshake and SaslAuthenticate itself: PLAIN against one
   user, SCRAM-SHA-256/512 through ``scramp``'s server, OAUTHBEARER against
   one token;
3. once authenticated, relays bytes both ways untouched. A request other
   than those before authentication closes the connection, as Kafka does.

One thread per connection (loopback only, at most ``MAX_CONNECTIONS``);
``attempts`` counts SaslAuthenticate exchanges that began, ``failures`` the
ones refused. Advertise the gate's port from Tansu so every connection of
the client goes through it.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import scramp

from kproto.protocol.headers import request_header_version, response_header_version
from kproto.protocol.messages import (
    REQUEST_TYPES,
    ApiVersionsResponse,
    SaslAuthenticateResponse,
    SaslHandshakeResponse,
)
from kproto.protocol.messages.api_versions import ApiVersion

__all__ = ["SaslGate"]

MAX_CONNECTIONS = 32
#: Largest frame the gate reads before authentication (Kafka's own pre-auth bound is 512 KiB... of
#: a SASL token; ApiVersions and SASL frames are tiny).
MAX_PREAUTH_FRAME = 64 * 1024


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def _read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    if not 0 <= size <= MAX_PREAUTH_FRAME:
        raise ConnectionError(f"frame of {size} bytes before authentication")
    return _recv_exact(sock, size)


def _respond(api_key: int, version: int, cid: int, response: Any) -> bytes:
    header = cid.to_bytes(4, "big") + (b"\0" if response_header_version(api_key, version) == 1 else b"")
    payload = header + response.encode(version)
    return len(payload).to_bytes(4, "big") + payload


class SaslGate:
    """Listen on 127.0.0.1:``port``; authenticate; relay to 127.0.0.1:``target_port``."""

    def __init__(
        self,
        target_port: int,
        *,
        username: str = "alice",
        password: str = "alice-secret",
        token: str = "good-token",
        mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"),
        port: int = 0,
    ) -> None:
        self.target_port = target_port
        self.username = username
        self.password = password
        self.token = token
        self.mechanisms = list(mechanisms)
        self.attempts = 0
        self.failures = 0
        self.accepted = 0
        self._scram = {m: scramp.ScramMechanism(m) for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")}
        self._auth_info = {
            m: mech.make_auth_info(password, iteration_count=4096) for m, mech in self._scram.items()
        }
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stop = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept_loop, name=f"sasl-gate-{self.port}", daemon=True)
        self._thread.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(5)
        self._listener.close()

    def __enter__(self) -> SaslGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            live = [t for t in self._threads if t.is_alive()]
            self._threads = live
            if len(live) >= MAX_CONNECTIONS:
                client.close()
                continue
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(t)
            t.start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._socks.extend(socks)

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(None)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._track(client, upstream)
        try:
            if self._authenticate(client, upstream):
                self._relay(client, upstream)
        except (OSError, ConnectionError, ValueError, scramp.ScramException):
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    def _authenticate(self, client: socket.socket, upstream: socket.socket) -> bool:
        mechanism: str | None = None
        scram_server: Any = None
        while not self._stop:
            frame = _read_frame(client)
            api_key, version, cid = struct.unpack_from(">hhi", frame, 0)
            if api_key == 18:  # ApiVersions: Tansu's answer plus the SASL APIs
                upstream.sendall(len(frame).to_bytes(4, "big") + frame)
                answer = _read_frame(upstream)
                body = memoryview(answer)[4:]
                error_code = struct.unpack_from(">h", body, 0)[0]
                if error_code != 0:
                    client.sendall(len(answer).to_bytes(4, "big") + answer)
                    continue
                resp, _ = ApiVersionsResponse.read(body, 0, version)
                keys = [k for k in resp.api_keys if k.api_key not in (17, 36)]
                keys += [
                    ApiVersion(api_key=17, min_version=0, max_version=1),
                    ApiVersion(api_key=36, min_version=0, max_version=2),
                ]
                resp.api_keys = keys
                payload = answer[:4] + resp.encode(version)
                client.sendall(len(payload).to_bytes(4, "big") + payload)
                continue
            if api_key not in (17, 36):
                return False  # not authenticated: Kafka closes the connection
            (n,) = struct.unpack_from(">h", frame, 8)
            pos = 10 + max(n, 0) + (1 if request_header_version(api_key, version) == 2 else 0)
            request, _ = REQUEST_TYPES[api_key].read(memoryview(frame), pos, version)
            if api_key == 17:
                mechanism = request.mechanism
                ok = mechanism in self.mechanisms
                client.sendall(
                    _respond(
                        17,
                        version,
                        cid,
                        SaslHandshakeResponse(error_code=0 if ok else 33, mechanisms=self.mechanisms),
                    )
                )
                if mechanism in self._scram:
                    info = self._auth_info[mechanism]
                    # scramp asks for the user's stored credentials; one user here
                    scram_server = self._scram[mechanism].make_server(lambda _user, info=info: info)
                continue
            token = bytes(request.auth_bytes)
            done, reply, error = self._step(mechanism, scram_server, token)
            if error is not None:
                self.failures += 1
                client.sendall(
                    _respond(36, version, cid, SaslAuthenticateResponse(error_code=58, error_message=error))
                )
                return False
            client.sendall(_respond(36, version, cid, SaslAuthenticateResponse(auth_bytes=reply)))
            if done:
                return True
        return False

    def _step(self, mechanism: str | None, scram_server: Any, token: bytes) -> tuple[bool, bytes, str | None]:
        """One SaslAuthenticate: ``(done, reply, error message or None)``."""
        bad = f"Authentication failed: invalid credentials with SASL mechanism {mechanism}"
        if mechanism == "PLAIN":
            self.attempts += 1
            parts = token.split(b"\0")
            ok = len(parts) == 3 and parts[1].decode() == self.username and parts[2].decode() == self.password
            return True, b"", None if ok else bad
        if mechanism == "OAUTHBEARER":
            self.attempts += 1
            ok = f"auth=Bearer {self.token}\x01".encode() in token
            return True, b"", None if ok else bad
        if scram_server is not None:
            if scram_server.stage is None:
                self.attempts += 1
                try:
                    scram_server.set_client_first(token.decode())
                except scramp.ScramException:
                    return True, b"", bad
                return False, scram_server.get_server_first().encode(), None
            try:
                scram_server.set_client_final(token.decode())
            except scramp.ScramException:
                return True, b"", bad
            return True, scram_server.get_server_final().encode(), None
        return True, b"", "no mechanism"

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(5)

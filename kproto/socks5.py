"""The SOCKS5 handshake (RFC 1928, RFC 1929) as a pure state machine.

Theory of operation
-------------------
With ``proxy_url`` set, the client connects to the proxy instead of the
broker; once TCP is up, the broker connection runs this handshake before
its first Kafka byte (as it runs SASL before ``READY``), then the stream is
the broker's. Not with TLS (refused at construction): the transports run
TLS before the core sees the connection, and the tunnel must come first. :class:`Socks5Handshake` owns no socket: it gives bytes to
write (:meth:`~Socks5Handshake.data_to_send`) and takes the proxy's bytes
(:meth:`~Socks5Handshake.receive_data`, any split)::

    GREETING --method 0x00--------------------> CONNECT_SENT
    GREETING --method 0x02--> AUTH_SENT --ok--> CONNECT_SENT
    CONNECT_SENT --reply 0x00--> DONE

1. Greeting (RFC 1928 section 3): version 5 and the methods offered: "no
   authentication" (0x00), plus "username/password" (0x02) when the URL has
   credentials. The proxy picks one; 0xFF (none acceptable) or one not
   offered ends the handshake.
2. Username/password (RFC 1929): version 1, then each as a length byte and
   1..255 bytes; status 0 is success.
3. CONNECT (RFC 1928 section 4): the broker as an IPv4 (ATYP 1) or IPv6
   (ATYP 4) address when it is an IP literal, else as a domain name (ATYP
   3), which the proxy resolves: the core does no name resolution (as
   ``socks5h://`` in kafka-python; a ``socks5://`` URL behaves the same
   here). The reply's code 0 means the tunnel is open; its bound address is
   read (and checked) and ignored.

Errors. A reply code other than 0 is the proxy refusing
(:class:`~kproto.errors.KafkaConnectionError` naming RFC 1928's reason:
retriable, the broker may come back); a refused method or wrong credentials
are :class:`~kproto.errors.AuthenticationFailedError` (retrying cannot fix
them); bytes that are not SOCKS5 (another version, an unknown address type,
a non-zero reserved byte, anything after the reply before Kafka has spoken)
are a :class:`~kproto.errors.KafkaProtocolError`. Nothing is buffered beyond
the longest reply (262 bytes: a domain name of 255).
"""

from __future__ import annotations

import enum
import ipaddress
from typing import Final, NoReturn
from urllib.parse import unquote, urlsplit

import attrs

from kproto.errors import (
    AuthenticationFailedError,
    IllegalStateError,
    KafkaConfigurationError,
    KafkaConnectionError,
    KafkaProtocolError,
)

__all__ = ["ProxyAddress", "Socks5Handshake", "parse_proxy_url"]

_VERSION: Final = 5
_AUTH_VERSION: Final = 1
_NO_AUTH: Final = 0x00
_USER_PASS: Final = 0x02
_NO_ACCEPTABLE: Final = 0xFF
_CONNECT: Final = 0x01
_ATYP_IPV4: Final = 0x01
_ATYP_DOMAIN: Final = 0x03
_ATYP_IPV6: Final = 0x04
#: RFC 1928 section 6 reply codes.
_REPLIES: Final = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
#: URL schemes accepted (kafka-python's): ``socks5h`` asks the proxy to resolve names.
SCHEMES: Final = ("socks5", "socks5h")
DEFAULT_PORT: Final = 1080


@attrs.frozen(kw_only=True)
class ProxyAddress:
    """A parsed ``proxy_url``: where the proxy listens and the RFC 1929 credentials."""

    #: Proxy host name or IP literal.
    host: str
    #: Proxy port.
    port: int
    #: RFC 1929 user name, or None for no authentication.
    username: str | None = None
    #: RFC 1929 password (never shown in reprs).
    password: str | None = attrs.field(default=None, repr=False)


def _bad(url: str, why: str) -> KafkaConfigurationError:
    # Credentials stay out of the message: only what follows the last "@" is shown.
    if "@" in url:
        head = url.split("://", 1)[0] + "://" if "://" in url else ""
        url = head + "...@" + url.rsplit("@", 1)[1]
    shown = url
    return KafkaConfigurationError(f"proxy_url={shown!r} is not allowed: {why}")


def parse_proxy_url(url: object) -> ProxyAddress:
    """``socks5://[user:password@]host[:port]`` (or ``socks5h://``) -> :class:`ProxyAddress`.

    Raises:
        KafkaConfigurationError: not such a URL; the message never shows the password.
    """
    if not isinstance(url, str):
        raise KafkaConfigurationError(f"proxy_url must be a 'socks5://host:port' string, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _bad(url, f"{exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise _bad(url, "it must start with socks5:// or socks5h:// (SOCKS5 is the only proxy kind)")
    if not parts.hostname:
        raise _bad(url, "it names no proxy host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _bad(url, "it must be scheme://[user:password@]host[:port] with nothing after")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is not None or password is not None:
        for what, value in (("user name", username or ""), ("password", password or "")):
            if not 1 <= len(value.encode()) <= 255:
                raise _bad(url, f"the {what} must be 1..255 bytes (RFC 1929)")
    return ProxyAddress(host=parts.hostname, port=port or DEFAULT_PORT, username=username, password=password)


class _State(enum.Enum):
    GREETING = "greeting"
    AUTH_SENT = "auth_sent"
    CONNECT_SENT = "connect_sent"
    DONE = "done"
    FAILED = "failed"


def _target(host: str, port: int) -> bytes:
    """RFC 1928 DST.ADDR and DST.PORT for ``host:port``."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna") if not host.isascii() else host.encode()
        if not 1 <= len(name) <= 255:
            raise KafkaConnectionError(f"broker host name {host!r} is too long for SOCKS5 (255 bytes)") from None
        addr = bytes([_ATYP_DOMAIN, len(name)]) + name
    else:
        addr = bytes([_ATYP_IPV4 if ip.version == 4 else _ATYP_IPV6]) + ip.packed
    return addr + port.to_bytes(2, "big")


class Socks5Handshake:
    """One SOCKS5 CONNECT to ``host:port`` through ``proxy``; see the module docstring.

    Raises (from :meth:`receive_data`):
        KafkaConnectionError: the proxy refused the CONNECT.
        AuthenticationFailedError: no acceptable method, or wrong credentials.
        KafkaProtocolError: bytes that are not a SOCKS5 answer.
    """

    def __init__(self, proxy: ProxyAddress, host: str, port: int) -> None:
        self._proxy = proxy
        self._where = f"SOCKS5 proxy {proxy.host}:{proxy.port} (to {host}:{port})"
        self._host = host
        self._port = port
        self._state = _State.GREETING
        self._buf = bytearray()
        methods = [_NO_AUTH] if proxy.username is None else [_NO_AUTH, _USER_PASS]
        self._out = bytearray([_VERSION, len(methods), *methods])

    @property
    def done(self) -> bool:
        """The tunnel is open: what follows is the broker's stream."""
        return self._state is _State.DONE

    def data_to_send(self) -> bytes:
        """Bytes to write to the proxy, drained."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        """Take the proxy's bytes (any split).

        Raises:
            IllegalStateError: called after the handshake ended.
        """
        if self._state in (_State.DONE, _State.FAILED):
            raise IllegalStateError(f"{self._where}: handshake already {self._state.value}")
        self._buf += data
        while not self.done and self._step():
            pass
        if self.done and self._buf:
            # A broker speaks only when asked: bytes here are not the broker's.
            self._fail(KafkaProtocolError(f"{self._where}: {len(self._buf)} bytes after its reply, "
                                          "before any request"))

    def _fail(self, error: Exception) -> NoReturn:
        self._state = _State.FAILED
        self._buf.clear()
        raise error

    def _send_connect(self) -> None:
        try:
            target = _target(self._host, self._port)
        except KafkaConnectionError as exc:
            self._fail(exc)
        self._out += bytes([_VERSION, _CONNECT, 0]) + target
        self._state = _State.CONNECT_SENT

    def _step(self) -> bool:
        """Consume one whole message if buffered; False when more bytes are needed."""
        buf = self._buf
        if self._state is not _State.CONNECT_SENT:
            # The method choice and the RFC 1929 status are both two bytes: version, value.
            if len(buf) < 2:
                return False
            version, value = buf[0], buf[1]
            del buf[:2]
            if self._state is _State.GREETING:
                self._on_method(version, value)
            else:
                self._on_auth(version, value)
            return True
        return self._on_reply(buf)

    def _on_method(self, version: int, method: int) -> None:
        if version != _VERSION:
            self._fail(KafkaProtocolError(f"{self._where}: answered version {version}, not SOCKS5"))
        if method == _NO_ACCEPTABLE:
            self._fail(AuthenticationFailedError(
                f"{self._where} accepts none of the methods offered (no authentication"
                + (", username/password)" if self._proxy.username is not None else
                   "); set user:password@ in proxy_url")))
        if method == _USER_PASS and self._proxy.username is not None:
            user = self._proxy.username.encode()
            password = (self._proxy.password or "").encode()
            self._out += bytes([_AUTH_VERSION, len(user)]) + user + bytes([len(password)]) + password
            self._state = _State.AUTH_SENT
        elif method == _NO_AUTH:
            self._send_connect()
        else:
            self._fail(KafkaProtocolError(f"{self._where}: chose method {method:#04x}, which was not offered"))

    def _on_auth(self, version: int, status: int) -> None:
        if version != _AUTH_VERSION:
            self._fail(KafkaProtocolError(f"{self._where}: username/password reply version {version}, not 1"))
        if status != 0:
            self._fail(AuthenticationFailedError(f"{self._where} rejected the user name and password"))
        self._send_connect()

    def _on_reply(self, buf: bytearray) -> bool:
        """The CONNECT reply: VER REP RSV ATYP BND.ADDR BND.PORT."""
        if len(buf) < 5:
            return False
        version, reply, reserved, atyp = buf[0], buf[1], buf[2], buf[3]
        if version != _VERSION or reserved != 0:
            self._fail(KafkaProtocolError(f"{self._where}: bad reply header {bytes(buf[:4]).hex()}"))
        if reply != 0:
            reason = _REPLIES.get(reply, f"unassigned reply code {reply}")
            self._fail(KafkaConnectionError(f"{self._where} refused: {reason}"))
        if atyp == _ATYP_IPV4:
            size = 4 + 4 + 2
        elif atyp == _ATYP_IPV6:
            size = 4 + 16 + 2
        elif atyp == _ATYP_DOMAIN:
            size = 4 + 1 + buf[4] + 2
        else:
            self._fail(KafkaProtocolError(f"{self._where}: unknown address type {atyp} in its reply"))
        if len(buf) < size:
            return False
        del buf[:size]
        self._state = _State.DONE
        return True

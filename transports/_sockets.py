"""Non-blocking socket set-up shared by the selector-based drivers (sync producer and consumer)."""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl

from transports._tls import TLSSession, tls_failure

__all__ = ["start_connect"]


def start_connect(
    host: str, port: int, ssl_context: ssl.SSLContext | None
) -> tuple[socket.socket, TLSSession | None, bool] | BaseException:
    """Begin a non-blocking TCP connection to ``host:port``.

    The name is resolved on every call (a broker that moved, KIP-899). With
    ``ssl_context`` the socket gets a :class:`TLSSession` over memory BIOs;
    its handshake is the caller's to run once TCP is up.

    Returns:
        ``(sock, tls, connected)`` (``connected``: TCP was up at once), or the
        error to report to ``connection_lost``: an ``OSError`` from resolving,
        creating or connecting, or a TLS set-up failure mapped by
        :func:`~transports._tls.tls_failure`. On error no socket is left open.
    """
    try:
        family, stype, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, stype, proto)
    except OSError as exc:
        return exc
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = None
    if ssl_context is not None:
        try:
            tls = TLSSession(ssl_context, host)
        except (ssl.SSLError, ValueError) as exc:
            sock.close()
            return tls_failure(exc, host, port)
    err = sock.connect_ex(addr)
    if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
        sock.close()
        return OSError(err, errno.errorcode.get(err, "connect failed"))
    return sock, tls, err == 0

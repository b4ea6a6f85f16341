"""Socket set-up the drivers share: address checks, name-resolution failures, non-blocking connect.

``start_connect`` is the selector-based drivers' (sync producer and consumer);
:func:`bad_address` and :func:`resolve_failure` are every driver's: whatever
goes wrong before a connection is open fails that connection attempt (the
core reports it and retries with backoff), never the driver loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import ssl
from typing import Any

from kproto.errors import KafkaConnectionError, KafkaProtocolError
from transports._tls import TLSSession, tls_failure

__all__ = ["bad_address", "connect_failure", "feed", "input_failure", "resolve_failure", "start_connect"]

log = logging.getLogger("transports")


def bad_address(host: str, port: int) -> KafkaProtocolError | None:
    """The protocol error of a broker address no socket can take, else None.

    ``bootstrap_servers`` is checked at construction; this catches what a
    Metadata response advertises. A port outside 1..65535 would be wrapped
    modulo 2**16 by ``getaddrinfo`` (70000 becomes 4464): a different broker.
    """
    if type(port) is not int or not 0 < port < 65536:
        return KafkaProtocolError(f"broker address {host}:{port}: port outside 1..65535")
    if not host or "\x00" in host:
        return KafkaProtocolError(f"broker address {host!r}:{port}: not a host name")
    return None


def resolve_failure(exc: Exception, host: str, port: int) -> BaseException:
    """What a failed connection attempt reports to ``connection_lost``.

    An ``OSError`` (refused, unreachable, ``gaierror``) goes as it is. Anything
    else raised while resolving or connecting (a ``UnicodeError`` from the IDNA
    codec for a label over 63 characters, a ``ValueError``) becomes a
    ``KafkaConnectionError`` naming the host, with the original as ``__cause__``.
    """
    if isinstance(exc, OSError):
        return exc
    error = KafkaConnectionError(f"cannot resolve or connect to {host!r}:{port}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def start_connect(
    host: str, port: int, ssl_context: ssl.SSLContext | None
) -> tuple[socket.socket, TLSSession | None, bool] | BaseException:
    """Begin a non-blocking TCP connection to ``host:port``.

    The name is resolved on every call (a broker that moved, KIP-899), on the
    caller's thread (the sync drivers' own I/O thread or the consumer's
    caller). With ``ssl_context`` the socket gets a :class:`TLSSession` over
    memory BIOs; its handshake is the caller's to run once TCP is up.

    Returns:
        ``(sock, tls, connected)`` (``connected``: TCP was up at once), or the
        error to report to ``connection_lost``: see :func:`resolve_failure`, a
        :func:`bad_address` error, or a TLS set-up failure mapped by
        :func:`~transports._tls.tls_failure`. On error no socket is left open.
    """
    bad = bad_address(host, port)
    if bad is not None:
        return bad
    try:
        family, stype, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, stype, proto)
    except Exception as exc:
        return resolve_failure(exc, host, port)
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
    try:
        err = sock.connect_ex(addr)
    except Exception as exc:
        sock.close()
        return resolve_failure(exc, host, port)
    if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
        sock.close()
        return OSError(err, errno.errorcode.get(err, "connect failed"))
    return sock, tls, err == 0


def feed(core: Any, node_id: int, data: bytes | bytearray, now: float) -> KafkaProtocolError | None:
    """``core.receive_data``; if it raises, the error to report for that connection (logged), else None."""
    try:
        core.receive_data(node_id, data, now)
    except Exception as exc:
        log.warning("node %s: the core raised on its bytes; dropping the connection", node_id, exc_info=exc)
        return input_failure(exc, node_id)
    return None


def input_failure(exc: Exception, node_id: int) -> KafkaProtocolError:
    """What a driver reports as lost when the core raised on a connection's bytes.

    The core turns bad bytes into a protocol error itself; an exception out
    of ``receive_data`` is a bug, so that connection goes (its requests are
    failed or retried by the core) and the driver loop goes on.
    """
    error = KafkaProtocolError(
        f"node {node_id}: handling the broker's bytes raised {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error


def connect_failure(exc: BaseException) -> BaseException:
    """trio's "all attempts to connect to H:P failed" with the attempts' own errors brought forward.

    ``trio.open_tcp_stream`` chains the per-address errors (an exception
    group) as ``__cause__``; one attempt's error (``Connection refused``) is
    reported as it is, several are named in the message.
    """
    inner = getattr(exc.__cause__, "exceptions", None)
    if not inner:
        return exc
    if len(inner) == 1:
        return inner[0]  # type: ignore[no-any-return]
    error = OSError(f"{exc}: " + "; ".join(f"{type(e).__name__}: {e}" for e in inner))
    error.__cause__ = exc
    return error

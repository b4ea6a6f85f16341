"""Socket options and name resolution for every transport (kafka-python's socket options).

:class:`SocketSettings` is read once from a facade's config:

- ``socket_options`` (``[(level, option, value), ...]``; None: kproto's own,
  TCP_NODELAY), ``send_buffer_bytes`` (SO_SNDBUF) and ``receive_buffer_bytes``
  (SO_RCVBUF) are set on every broker socket before it connects (buffer sizes
  must be set before connect to shape the TCP window, as Java does);
- ``client_dns_lookup``: ``'use_all_dns_ips'`` tries every address a name
  resolves to, in turn, until one connects (KIP-302);
  ``'resolve_canonical_bootstrap_servers_only'`` (KIP-235) first replaces a
  bootstrap name by the canonical name of each of its addresses (reverse
  lookup, as Java's ``getCanonicalHostName``), which TLS then verifies;
- ``selector``: the sync transport's ``selectors.BaseSelector`` class.

Name resolution never blocks an I/O loop: asyncio resolves with
``loop.getaddrinfo`` (the default executor), trio with
``trio.socket.getaddrinfo`` (a worker thread), and the sync transport hands
names to a small shared pool of resolver threads (:func:`resolve_later`) and
goes on serving its other connections until the answer wakes it; numeric
addresses need no lookup and connect at once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import ipaddress
import selectors
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from kproto.errors import KafkaConnectionError, KafkaProtocolError

__all__ = [
    "Attempt",
    "SocketSettings",
    "addresses",
    "asyncio_connect_any",
    "asyncio_open_socket",
    "bad_address",
    "new_socket",
    "resolve",
    "resolve_failure",
    "resolve_later",
    "trio_connect_any",
    "trio_open_socket",
]

_AddrInfo = tuple[int, int, int, str, Any]
_DEFAULT_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


class SocketSettings(NamedTuple):
    """What every broker socket gets; :meth:`of` reads it from a config."""

    #: ``(level, option, value)`` set before connecting, in order.
    options: tuple[tuple[int, int, int | bytes], ...] = _DEFAULT_OPTIONS
    #: Try every resolved address in turn (else only the first).
    all_addresses: bool = True
    #: Replace a bootstrap name by its addresses' canonical names first.
    canonical_bootstrap: bool = False
    #: The sync transport's selector class.
    selector: Callable[[], selectors.BaseSelector] = selectors.DefaultSelector

    @classmethod
    def of(cls, config: Any) -> SocketSettings:
        """The settings of a ``ProducerConfig``/``ConsumerConfig`` (anything else: the defaults)."""
        if config is None or not hasattr(config, "client_dns_lookup"):
            return cls()
        opts: list[tuple[int, int, int | bytes]] = [
            (int(level), int(name), value) for level, name, value in (config.socket_options or _DEFAULT_OPTIONS)
        ]
        if config.send_buffer_bytes is not None:
            opts.append((socket.SOL_SOCKET, socket.SO_SNDBUF, config.send_buffer_bytes))
        if config.receive_buffer_bytes is not None:
            opts.append((socket.SOL_SOCKET, socket.SO_RCVBUF, config.receive_buffer_bytes))
        return cls(
            options=tuple(opts),
            all_addresses=config.client_dns_lookup == "use_all_dns_ips",
            canonical_bootstrap=config.client_dns_lookup == "resolve_canonical_bootstrap_servers_only",
            selector=config.selector or selectors.DefaultSelector,
        )


def addresses(infos: Sequence[_AddrInfo], settings: SocketSettings) -> list[_AddrInfo]:
    """The addresses to try, in resolver order without repeats (only the first unless ``all_addresses``)."""
    out: list[_AddrInfo] = []
    seen: set[Any] = set()
    for info in infos:
        if info[4] not in seen:
            seen.add(info[4])
            out.append(info)
    return out if settings.all_addresses else out[:1]


def new_socket(info: _AddrInfo, settings: SocketSettings) -> socket.socket:
    """A non-blocking socket for ``info`` with every option set (closed again if one fails).

    Raises:
        OSError: the socket or an option was refused (the connection attempt fails with it).
    """
    sock = socket.socket(info[0], info[1], info[2])
    try:
        sock.setblocking(False)
        for level, name, value in settings.options:
            if level == socket.IPPROTO_TCP and info[0] == getattr(socket, "AF_UNIX", None):
                continue
            sock.setsockopt(level, name, value)
    except BaseException:
        sock.close()
        raise
    return sock


def _canonical(addr: Any) -> str:
    """Java's ``getCanonicalHostName``: the reverse-lookup name of ``addr``, else the address itself."""
    try:
        return socket.getnameinfo((addr[0], addr[1]), socket.NI_NAMEREQD)[0]
    except OSError:
        return str(addr[0])


def resolve(host: str, port: int, settings: SocketSettings, *, bootstrap: bool) -> list[tuple[_AddrInfo, str]]:
    """Blocking: ``[(addrinfo, name to verify), ...]`` to try in turn (the sync transport's)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not (bootstrap and settings.canonical_bootstrap):
        return [(info, host) for info in addresses(infos, settings)]
    out: list[tuple[_AddrInfo, str]] = []
    for name in dict.fromkeys(_canonical(info[4]) for info in addresses(infos, settings)):
        out += [(info, name) for info in addresses(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM), settings)]
    return out


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
#: Names resolved at once for the sync transport; more wait their turn.
_RESOLVER_THREADS = 4


def bad_address(host: str, port: int) -> KafkaProtocolError | None:
    """The protocol error of an advertised address no socket can take, else None.

    ``getaddrinfo`` wraps a port modulo 2**16 (70000 becomes 4464): a different broker."""
    if type(port) is not int or not 0 < port < 65536:
        return KafkaProtocolError(f"broker address {host}:{port}: port outside 1..65535")
    if not host or "\x00" in host:
        return KafkaProtocolError(f"broker address {host!r}:{port}: not a host name")
    return None


def resolve_failure(exc: Exception, host: str, port: int) -> BaseException:
    """An ``OSError`` as is; else (IDNA ``UnicodeError``, ``ValueError``) a ``KafkaConnectionError``."""
    if isinstance(exc, OSError):
        return exc
    error = KafkaConnectionError(f"cannot resolve or connect to {host!r}:{port}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_later(
    host: str, port: int, settings: SocketSettings, *, bootstrap: bool, notify: Callable[[], None]
) -> concurrent.futures.Future[list[tuple[_AddrInfo, str]]]:
    """:func:`resolve` off the caller's thread, for the sync transport's I/O loop.

    A numeric address (nothing to look up, unless its canonical name is
    wanted) resolves at once on the caller's thread. A name goes to a small
    shared pool of resolver threads, and ``notify()`` (the driver's wake-up)
    is called from there when the answer is in: a slow resolver delays that
    one connection, not the loop's other connections.
    """
    global _pool
    if _is_numeric(host) and not (bootstrap and settings.canonical_bootstrap):
        done: concurrent.futures.Future[list[tuple[_AddrInfo, str]]] = concurrent.futures.Future()
        try:
            done.set_result(resolve(host, port, settings, bootstrap=bootstrap))
        except Exception as exc:
            done.set_exception(exc)
        return done
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(_RESOLVER_THREADS, thread_name_prefix="kproto-resolver")
        pending = _pool.submit(resolve, host, port, settings, bootstrap=bootstrap)
    pending.add_done_callback(lambda _f: notify())
    return pending


class Attempt:
    """A sync connection attempt over its addresses, one non-blocking ``connect`` at a time.

    :meth:`start` opens a socket to the next address; the driver waits for it
    to be writable, reads ``SO_ERROR``, and on a failure calls :meth:`start`
    again while :meth:`more` says addresses are left (``use_all_dns_ips``).
    """

    __slots__ = ("error", "name", "settings", "targets")

    def __init__(self, targets: Sequence[tuple[_AddrInfo, str]], settings: SocketSettings, what: str) -> None:
        self.targets = list(targets)
        self.settings = settings
        #: The name TLS verifies for the address being tried.
        self.name = ""
        #: Why the last address failed.
        self.error: BaseException = OSError(f"{what} resolved to no address")

    def more(self) -> bool:
        """Addresses are left to try."""
        return bool(self.targets)

    def fail(self, error: BaseException) -> None:
        """The address being tried failed with ``error``."""
        self.error = error

    def start(self) -> socket.socket | None:
        """A socket connecting (or connected) to the next address that takes a connect; None: none left."""
        while self.targets:
            info, self.name = self.targets.pop(0)
            try:
                sock = new_socket(info, self.settings)
            except OSError as exc:
                self.error = exc
                continue
            code = sock.connect_ex(info[4])
            if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                return sock
            sock.close()
            self.error = OSError(code, errno.errorcode.get(code, "connect failed"))
        return None


async def asyncio_open_socket(
    loop: Any, host: str, port: int, settings: SocketSettings, *, bootstrap: bool
) -> tuple[socket.socket, str]:
    """A connected non-blocking socket to ``host:port`` and the name TLS verifies (asyncio).

    Every address is tried in turn (``all_addresses``); the last failure is raised.
    """
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    targets = [(info, host) for info in addresses(infos, settings)]
    if bootstrap and settings.canonical_bootstrap:
        targets = []
        for info in addresses(infos, settings):
            name = await loop.run_in_executor(None, _canonical, info[4])
            for found in addresses(await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM), settings):
                targets.append((found, name))
    return await asyncio_connect_any(loop, targets, settings, f"{host}:{port}")


async def asyncio_connect_any(
    loop: Any, targets: Sequence[tuple[_AddrInfo, str]], settings: SocketSettings, what: str
) -> tuple[socket.socket, str]:
    """Connect to the first of ``targets`` that accepts; raise the last failure if none does."""
    error: BaseException = OSError(f"{what} resolved to no address")
    for info, name in targets:
        sock = new_socket(info, settings)
        try:
            await loop.sock_connect(sock, info[4])
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock, name
    raise error


async def trio_open_socket(host: str, port: int, settings: SocketSettings, *, bootstrap: bool) -> tuple[Any, str]:
    """A connected ``trio.socket`` to ``host:port`` and the name TLS verifies (trio).

    Every address is tried in turn (``all_addresses``); the last failure is raised.
    """
    import trio

    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    targets = [(info, host) for info in addresses(infos, settings)]
    if bootstrap and settings.canonical_bootstrap:
        targets = []
        for info in addresses(infos, settings):
            name = await trio.to_thread.run_sync(_canonical, info[4])
            found = await trio.socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            targets += [(f, name) for f in addresses(found, settings)]
    return await trio_connect_any(targets, settings, f"{host}:{port}")


async def trio_connect_any(
    targets: Sequence[tuple[_AddrInfo, str]], settings: SocketSettings, what: str
) -> tuple[Any, str]:
    """Connect to the first of ``targets`` that accepts; raise the last failure if none does."""
    import trio

    error: BaseException = OSError(f"{what} resolved to no address")
    for info, name in targets:
        sock = trio.socket.socket(info[0], info[1], info[2])
        try:
            for level, opt, value in settings.options:
                sock.setsockopt(level, opt, value)
            await sock.connect(info[4])
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            with contextlib.suppress(Exception):
                sock.close()
            raise
        return sock, name
    raise error

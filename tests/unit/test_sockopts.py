"""Socket options and address policies on real loopback sockets (transports/_sockopts.py).

``socket_options``, ``send_buffer_bytes`` and ``receive_buffer_bytes`` are read
back with ``getsockopt``; ``client_dns_lookup='use_all_dns_ips'`` connects to
the next address when the first refuses, on asyncio and trio (the machine's
resolver gives one address per name, so the address list is built here from
two real loopback endpoints: one closed, one listening).
"""

from __future__ import annotations

import asyncio
import selectors
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kproto.consumer import ConsumerConfig
from kproto.producer.config import ProducerConfig
from transports._sockopts import (
    SocketSettings,
    addresses,
    asyncio_connect_any,
    asyncio_open_socket,
    new_socket,
    resolve,
    trio_connect_any,
    trio_open_socket,
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv
    srv.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _info(port: int) -> tuple[int, int, int, str, Any]:
    return socket.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM)[0]


def test_default_socket_gets_tcp_nodelay() -> None:
    sock = new_socket(_info(9), SocketSettings.of(ProducerConfig.from_kwargs()))
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getblocking() is False
    finally:
        sock.close()


@pytest.mark.parametrize("config", [ProducerConfig, ConsumerConfig])
def test_socket_options_and_buffer_sizes_are_set(config: Any) -> None:
    settings = SocketSettings.of(
        config.from_kwargs(
            socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
            send_buffer_bytes=65536,
            receive_buffer_bytes=131072,
        )
    )
    sock = new_socket(_info(9), settings)
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        # kafka-python's meaning: the list replaces the defaults (no TCP_NODELAY asked).
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        # Linux doubles the value for bookkeeping (socket(7)); other systems keep it.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 65536
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 131072
    finally:
        sock.close()


def test_refused_option_fails_the_socket_not_the_process() -> None:
    bad = SocketSettings(options=((socket.SOL_SOCKET, 0x7FFF, 1),))
    with pytest.raises(OSError):
        new_socket(_info(9), bad)


def test_selector_class_and_dns_policy_read_from_config() -> None:
    s = SocketSettings.of(ProducerConfig.from_kwargs(selector=selectors.SelectSelector))
    assert s.selector is selectors.SelectSelector and s.all_addresses and not s.canonical_bootstrap
    c = SocketSettings.of(ConsumerConfig.from_kwargs(client_dns_lookup="resolve_canonical_bootstrap_servers_only"))
    assert c.canonical_bootstrap and not c.all_addresses and c.selector is selectors.DefaultSelector


def test_addresses_in_resolver_order_without_repeats() -> None:
    a, b = _info(1), _info(2)
    assert addresses([a, b, a], SocketSettings()) == [a, b]
    assert addresses([a, b, a], SocketSettings(all_addresses=False)) == [a]


def test_canonical_bootstrap_names_come_from_reverse_lookup(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    canonical = SocketSettings(canonical_bootstrap=True, all_addresses=False)
    [(info, name)] = resolve("127.0.0.1", port, canonical, bootstrap=True)
    assert name == socket.getnameinfo(("127.0.0.1", port), socket.NI_NAMEREQD)[0] != "127.0.0.1"
    assert info[4] == ("127.0.0.1", port)
    # Only bootstrap entries; brokers from metadata keep their advertised names.
    assert resolve("127.0.0.1", port, canonical, bootstrap=False)[0][1] == "127.0.0.1"


def test_asyncio_tries_every_address_in_turn(listener: socket.socket) -> None:
    refused, good = _info(_closed_port()), _info(listener.getsockname()[1])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        sock, name = await asyncio_connect_any(loop, [(refused, "h"), (good, "h")], SocketSettings(), "h:1")
        assert sock.getpeername() == good[4] and name == "h"
        sock.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio_connect_any(loop, [(refused, "h")], SocketSettings(), "h:1")
        sock, _ = await asyncio_open_socket(loop, "127.0.0.1", good[4][1], SocketSettings(), bootstrap=True)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.close()

    asyncio.run(run())


def test_trio_tries_every_address_in_turn(listener: socket.socket) -> None:
    refused, good = _info(_closed_port()), _info(listener.getsockname()[1])

    async def run() -> None:
        sock, name = await trio_connect_any([(refused, "h"), (good, "h")], SocketSettings(), "h:1")
        assert sock.getpeername() == good[4] and name == "h"
        sock.close()
        with pytest.raises(ConnectionRefusedError):
            await trio_connect_any([(refused, "h")], SocketSettings(), "h:1")
        settings = SocketSettings.of(ProducerConfig.from_kwargs(send_buffer_bytes=65536))
        sock, _ = await trio_open_socket("127.0.0.1", good[4][1], settings, bootstrap=False)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 65536
        sock.close()

    trio.run(run)


def test_sync_attempt_moves_to_the_next_address_when_one_refuses(listener: socket.socket) -> None:
    """The selector transport's flow: start, wait until writable, read SO_ERROR, next address on failure."""
    from transports._sockopts import Attempt

    refused, good = _info(_closed_port()), _info(listener.getsockname()[1])
    attempt = Attempt([(refused, "h"), (good, "h")], SocketSettings(), "h:1")
    sel = selectors.DefaultSelector()
    errors = []
    sock = attempt.start()
    while sock is not None:
        sel.register(sock, selectors.EVENT_WRITE)
        sel.select(5)
        sel.unregister(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not err:
            break
        errors.append(err)
        sock.close()
        attempt.fail(OSError(err, "connect failed"))
        sock = attempt.start() if attempt.more() else None
    sel.close()
    assert sock is not None and sock.getpeername() == good[4]
    assert errors and not attempt.more()
    sock.close()
    only_first = Attempt(addresses_of([refused, good], all_addresses=False), SocketSettings(), "h:1")
    first = only_first.start()
    assert first is not None and not only_first.more()  # use_all_dns_ips off: one address only
    first.close()


def addresses_of(infos: list[Any], *, all_addresses: bool) -> list[tuple[Any, str]]:
    return [(i, "h") for i in addresses(infos, SocketSettings(all_addresses=all_addresses))]


def test_sync_names_resolve_off_the_loop_thread_numeric_addresses_at_once() -> None:
    import threading

    from transports._sockopts import resolve_later

    rang = threading.Event()
    numeric = resolve_later("127.0.0.1", 9092, SocketSettings(), bootstrap=True, notify=rang.set)
    assert numeric.done() and numeric.result()[0][0][4] == ("127.0.0.1", 9092)
    named = resolve_later("localhost", 9092, SocketSettings(), bootstrap=False, notify=rang.set)
    assert rang.wait(10) and named.done()  # the driver is woken when the answer is in
    [(info, name)] = named.result()
    assert info[4][1] == 9092 and name == "localhost"
    failed = resolve_later("no-such-host.invalid", 9092, SocketSettings(), bootstrap=False, notify=lambda: None)
    assert isinstance(failed.exception(timeout=30), OSError)

"""The drivers of every runtime, over real loopback sockets, when a core asks to connect a node
that still has a connection: the old socket is closed (no leak, no second report for it).

A core normally closes a connection before it opens another to the same node; this is the
driver's own guarantee should it not (transports/_driving.py, ``pump``).
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kproto.driving import Command, Connect
from transports._asyncio_driver import AsyncioDriver
from transports._selector import SelectorDriver
from transports._trio_driver import TrioDriver


class _TwiceConnecting:
    """A core that asks for node 1 again as soon as its first connection is made."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cmds: list[Command] = [Connect(node_id=1, host="127.0.0.1", port=port)]
        self.made: list[int] = []
        self.lost: list[tuple[int, BaseException | None]] = []

    def commands(self) -> list[Command]:
        cmds, self.cmds = self.cmds, []
        return cmds

    def connection_made(self, node_id: int, now: float) -> None:
        self.made.append(node_id)
        if len(self.made) == 1:
            self.cmds.append(Connect(node_id=1, host="127.0.0.1", port=self.port))

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        self.lost.append((node_id, exc))

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        pass

    def handle_timer(self, now: float) -> None:
        pass

    def get_timer(self) -> float | None:
        return None

    def data_to_send(self) -> list[tuple[int, bytes]]:
        return []

    def events(self) -> list[Any]:
        return []


@pytest.fixture
def server() -> Iterator[socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    yield srv
    srv.close()


def _accepted_states(srv: socket.socket) -> list[bool]:
    """Accept the two connections the driver opened; for each, whether the client closed it."""
    srv.settimeout(10)
    socks = [srv.accept()[0] for _ in range(2)]
    try:
        readable, _, _ = select.select(socks, [], [], 10)  # a closed one becomes readable (EOF)
        return [s in readable and s.recv(1) == b"" for s in socks]
    finally:
        for s in socks:
            s.close()


def _check(core: _TwiceConnecting, driver: Any, srv: socket.socket) -> None:
    assert core.made == [1, 1]
    assert core.lost == []  # the replaced connection is closed on purpose: not reported
    assert list(driver.conns) == [1]
    assert sorted(_accepted_states(srv)) == [False, True]  # the first closed, the second open


def test_selector_driver_closes_the_replaced_connection(server: socket.socket) -> None:
    core = _TwiceConnecting(server.getsockname()[1])
    driver = SelectorDriver(core, time.monotonic, what="the test's driver")
    try:
        assert driver.run_until(lambda: len(core.made) >= 2, 10)
        _check(core, driver, server)
    finally:
        driver.close()


def test_asyncio_driver_closes_the_replaced_connection(server: socket.socket) -> None:
    core = _TwiceConnecting(server.getsockname()[1])

    async def main() -> None:
        driver = AsyncioDriver(core, asyncio.get_running_loop(), None, sink=None, on_crash=None, what="test")
        driver.start("driver")
        try:
            assert await driver.run_until(lambda: len(core.made) >= 2, 10)
            await asyncio.sleep(0)  # the old transport's close runs on the loop
            _check(core, driver, server)
        finally:
            driver.stop()
            assert driver.task is not None
            await driver.task

    asyncio.run(main())


def test_trio_driver_closes_the_replaced_connection(server: socket.socket) -> None:
    core = _TwiceConnecting(server.getsockname()[1])

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            driver = TrioDriver(core, nursery, None, clock=(trio.current_time, 0.0), sink=None, on_crash=None,
                                what="test")
            await nursery.start(driver.run)
            assert await driver.run_until(lambda: len(core.made) >= 2, 10)
            await trio.testing.wait_all_tasks_blocked()  # the old connection's task closes its stream
            await trio.to_thread.run_sync(_check, core, driver, server)
            driver.stop()

    trio.run(main)

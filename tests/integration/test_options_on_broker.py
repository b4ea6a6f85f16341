"""kafka-python options on a real broker, on every transport (issue 11 item 1).

Tansu advertises a counting proxy's port, so every client connection passes
through it and the test can see connections open and close. kafka-python's
own default values run a whole produce/consume round trip; ``api_version``
caps what goes on the wire; ``connections_max_idle_ms`` closes idle
connections, which the next send reopens; the socket and DNS options reach
the sockets (the canonical bootstrap name of 127.0.0.1 is the machine's
reverse-lookup name).
"""

from __future__ import annotations

import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run, sleep
from _broker import TansuBroker
from _proxy import FaultProxy, tansu_behind_proxy

from kproto.consumer import TopicPartition
from kproto.protocol.messages import REQUEST_TYPES
from kproto.protocol.release_versions import RELEASES

kafka = pytest.importorskip("kafka")


@pytest.fixture(scope="module")
def proxied() -> Iterator[tuple[TansuBroker, FaultProxy]]:
    with tansu_behind_proxy() as pair:
        yield pair


def _wait_for(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kafka_python_defaults_round_trip(proxied: tuple[TansuBroker, FaultProxy], transport: str) -> None:
    """Every option at kafka-python 3's default (acks='all', idempotence, retries=inf...) on a real broker."""
    broker, proxy = proxied
    topic = f"t-{uuid.uuid4().hex[:10]}"
    bootstrap = f"127.0.0.1:{proxy.port}"
    producer_kw = {**kafka.KafkaProducer.DEFAULT_CONFIG, "bootstrap_servers": bootstrap, "kafka_client": None}
    consumer_kw = {**kafka.KafkaConsumer.DEFAULT_CONFIG, "bootstrap_servers": bootstrap, "kafka_client": None}
    consumer_kw.update(auto_offset_reset="earliest")

    async def scenario() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            async with open_producer(transport, **producer_kw) as p:
                metas = [await p.send_and_wait(topic, b"v%d" % i, partition=0) for i in range(10)]
        assert [m.offset for m in metas] == list(range(10))
        async with open_consumer(transport, **consumer_kw) as c:
            assign = c.c.assign([TopicPartition(topic, 0)])
            if transport != "sync" and assign is not None:
                await assign
            values = await c.poll_values(10)
        assert values == [b"v%d" % i for i in range(10)]

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_api_version_caps_the_versions_sent(proxied: tuple[TansuBroker, FaultProxy], transport: str) -> None:
    broker, proxy = proxied
    caps = RELEASES[(2, 8)]
    names = {cls.__name__.removesuffix("Request"): key for key, cls in REQUEST_TYPES.items()}

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=f"127.0.0.1:{proxy.port}", api_version=(2, 8)) as p:
            await p.send_and_wait(f"t-{uuid.uuid4().hex[:10]}", b"x")
            sent = p.metrics()["api-versions"]
        assert {"Produce", "Metadata", "ApiVersions"} <= set(sent)
        for name, version in sent.items():
            assert version <= caps[names[name]], name

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_idle_connections_closed_then_reopened(proxied: tuple[TansuBroker, FaultProxy], transport: str) -> None:
    broker, proxy = proxied
    assert _wait_for(lambda: proxy.connections == 0)  # earlier tests' clients are gone

    async def scenario() -> None:
        topic = f"t-{uuid.uuid4().hex[:10]}"
        async with open_producer(transport, bootstrap_servers=f"127.0.0.1:{proxy.port}", connections_max_idle_ms=500) as p:
            await p.send_and_wait(topic, b"first")
            assert proxy.connections >= 1
            for _ in range(200):  # the producer's connections go idle and are closed
                if proxy.connections == 0:
                    break
                await sleep(transport, 0.05)
            assert proxy.connections == 0
            meta = await p.send_and_wait(topic, b"second")  # reconnects on demand
            assert meta.offset >= 0 and proxy.connections >= 1

    run(transport, scenario)


def _broker_sockets(transport: str, facade: Any) -> list[Any]:
    """The sockets of a producer's open broker connections (each driver's own bookkeeping)."""
    if transport == "sync":
        return [conn.sock for conn in facade._loop.driver.conns.values()]
    if transport == "asyncio":
        return [c.transport.get_extra_info("socket") for c in facade._driver.conns.values() if c.transport is not None]
    return [c.stream.socket for c in facade._driver.conns.values() if c.stream is not None]


def test_sync_producer_on_another_selector_class(proxied: tuple[TansuBroker, FaultProxy]) -> None:
    import selectors

    from transports.sync import KafkaProducer

    broker, proxy = proxied
    with KafkaProducer(bootstrap_servers=f"127.0.0.1:{proxy.port}", selector=selectors.SelectSelector) as p:
        assert p.send(f"t-{uuid.uuid4().hex[:10]}", b"x").get(timeout=30).offset >= 0
        assert type(p._loop.driver._sel) is selectors.SelectSelector


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_socket_and_dns_options_work_on_a_real_connection(proxied: tuple[TansuBroker, FaultProxy], transport: str) -> None:
    """Every broker socket carries the options (SO_KEEPALIVE, buffer sizes, read back with getsockopt);
    a bootstrap IP replaced by its canonical (reverse-lookup) name still reaches the broker."""
    broker, proxy = proxied
    canonical = socket.getnameinfo(("127.0.0.1", proxy.port), socket.NI_NAMEREQD)[0]
    assert canonical != "127.0.0.1"

    async def scenario() -> None:
        async with open_producer(
            transport,
            bootstrap_servers=f"127.0.0.1:{proxy.port}",
            client_dns_lookup="resolve_canonical_bootstrap_servers_only",
            socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
            send_buffer_bytes=65536,
            receive_buffer_bytes=4096,
        ) as p:
            meta = await p.send_and_wait(f"t-{uuid.uuid4().hex[:10]}", b"x")
            assert meta.offset >= 0
            socks = _broker_sockets(transport, p.p)
            assert socks
            for sock in socks:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 65536
                # Below the OS default: set by us (Linux doubles the value asked, socket(7)).
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) <= 2 * 4096

    run(transport, scenario)

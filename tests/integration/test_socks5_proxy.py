"""``proxy_url`` / ``socks5_proxy``: producing and consuming through a real SOCKS5 server, on every transport.

A stdlib SOCKS5 server (``tests/_socks5.py``) on loopback sits in front of
Tansu. The client dials only the proxy; the core's SOCKS5 handshake
(``kproto/socks5.py``) names the broker: the bootstrap ``localhost`` by
domain name (ATYP 3), the brokers from Metadata by IPv4 address (ATYP 1).
A proxy that wants credentials gets them (RFC 1929); wrong credentials,
a proxy that refuses every CONNECT and one that answers garbage fail the
client's calls with a clear error instead of hanging or crashing it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _broker import TansuBroker
from _socks5 import Socks5Server

from kproto.errors import AuthenticationFailedError, KafkaTimeoutError

N = 30
FAST = {"request_timeout_ms": 2000, "retry_backoff_ms": 50, "reconnect_backoff_ms": 20,
        "reconnect_backoff_max_ms": 200}  # fmt: skip


@pytest.fixture
def proxy() -> Iterator[Socks5Server]:
    with Socks5Server() as p:
        yield p


def localhost(broker: TansuBroker) -> str:
    """The broker's bootstrap by name, so the first CONNECT is by domain name."""
    return broker.bootstrap.replace("127.0.0.1", "localhost")


def produce_and_consume(transport: str, bootstrap: str, topic: str | None = None, **proxy_opts: Any) -> list[bytes]:
    topic = topic or f"socks-{uuid.uuid4().hex[:10]}"
    got: list[bytes] = []

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap, **proxy_opts) as p:
            for i in range(N):
                await p.get(await p.send(topic, b"s%d" % i, partition=i % 2), 30)
        async with open_consumer(
            transport, topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **proxy_opts
        ) as c:
            got.extend(await c.poll_values(N, timeout=60))

    run(transport, scenario)
    return got


@pytest.mark.parametrize("option", ["proxy_url", "socks5_proxy"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_produce_and_consume_through_a_socks5_proxy(
    transport: str, option: str, tansu: TansuBroker, proxy: Socks5Server
) -> None:
    got = produce_and_consume(transport, localhost(tansu), **{option: proxy.url(scheme="socks5h")})
    assert sorted(got) == sorted(b"s%d" % i for i in range(N))
    host, port = tansu.bootstrap.rsplit(":", 1)
    assert (3, "localhost", int(port)) in proxy.targets  # the bootstrap, by domain name
    assert (1, host, int(port)) in proxy.targets  # the broker from Metadata, by IPv4 address
    assert {t[2] for t in proxy.targets} == {int(port)}  # nothing went around the proxy


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_username_and_password(transport: str, tansu: TansuBroker) -> None:
    with Socks5Server(username="alice", password="p@ss:word") as proxy:
        got = produce_and_consume(transport, tansu.bootstrap, proxy_url=proxy.url("alice", "p%40ss%3Aword"))
        assert sorted(got) == sorted(b"s%d" % i for i in range(N))
        assert proxy.targets and proxy.auth_failures == 0


async def send_one(transport: str, bootstrap: str, **configs: Any) -> BaseException | None:
    async with open_producer(transport, bootstrap_servers=bootstrap, max_block_ms=3000, **FAST, **configs) as p:
        try:
            await p.get(await p.send("socks-fail", b"x"), 10)
        except Exception as exc:
            return exc
    return None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_credentials_fail_at_once_with_an_authentication_error(transport: str, tansu: TansuBroker) -> None:
    errors: list[BaseException | None] = []
    with Socks5Server(username="alice", password="right") as proxy:

        async def scenario() -> None:
            errors.append(await send_one(transport, tansu.bootstrap, proxy_url=proxy.url("alice", "wrong")))

        run(transport, scenario)
        assert proxy.auth_failures >= 1
    (error,) = errors
    assert isinstance(error, AuthenticationFailedError), repr(error)
    assert "rejected the user name and password" in str(error)


@pytest.mark.parametrize(("mode", "value"), [("refuse", 5), ("garbage", b"HTTP/1.0 400 Bad Request\r\n\r\n")])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refusing_or_garbage_proxy_times_the_call_out_without_hurting_the_client(
    transport: str, mode: str, value: Any, tansu: TansuBroker, proxy: Socks5Server
) -> None:
    setattr(proxy, mode, value)
    errors: list[BaseException | None] = []

    async def scenario() -> None:
        errors.append(await send_one(transport, tansu.bootstrap, proxy_url=proxy.url()))

    run(transport, scenario)
    (error,) = errors
    assert isinstance(error, KafkaTimeoutError), repr(error)
    if mode == "refuse":
        assert len(proxy.targets) >= 2  # it kept trying, with backoff, through the proxy
    # The proxy heals: a new client gets through the same proxy.
    setattr(proxy, mode, 0 if mode == "refuse" else None)
    got = produce_and_consume(transport, tansu.bootstrap, proxy_url=proxy.url())
    assert sorted(got) == sorted(b"s%d" % i for i in range(N))


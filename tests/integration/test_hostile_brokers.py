"""Hostile and broken brokers against the six drivers (issue 15), over real loopback sockets.

Each test scripts a :class:`~_fake_broker.FakeBroker` (or names a host that
cannot be resolved) and runs every transport's producer or consumer against
it. The rule under test: nothing a broker sends and no name that fails to
resolve escapes a driver loop; the affected connection fails with a
``KafkaError``, the client goes on, and a driver that dies anyway (the core
raising, simulated by a patched core method) fails what is pending and every
later call with an error naming the crash, at once.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
from _adapters import TRANSPORTS, open_consumer, open_producer, run, sleep
from _broker import free_port
from _fake_broker import API_API_VERSIONS, API_METADATA, API_PRODUCE, CLOSE, STALL, FakeBroker

from kproto.consumer.core import ConsumerCore
from kproto.errors import IllegalStateError, KafkaError, KafkaProtocolError, KafkaTimeoutError
from kproto.producer.core import ProducerCore

pytestmark = pytest.mark.timeout(120)

TOPIC = "t"
#: A DNS label over 63 characters: the IDNA codec raises UnicodeError inside getaddrinfo.
LONG_LABEL_HOST = "a" * 64 + ".example"
#: A host whose resolution the tests make raise ValueError (patched getaddrinfo).
VALUE_ERROR_HOST = "raises-valueerror.invalid"
#: Short bounds, so a failure shows within seconds.
FAST = {"max_block_ms": 1500, "request_timeout_ms": 1000, "reconnect_backoff_max_ms": 200}
FAST_CONSUMER = {"request_timeout_ms": 1000, "reconnect_backoff_max_ms": 200}


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    """A scripted broker serving one topic of one partition."""
    with FakeBroker(topics={TOPIC: 1}) as b:
        yield b


@pytest.fixture
def resolver_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """``getaddrinfo`` raises ValueError for :data:`VALUE_ERROR_HOST` (any other exception from resolution)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (VALUE_ERROR_HOST, VALUE_ERROR_HOST.encode()):
            raise ValueError("resolver exploded")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _driver_alive(transport: str, facade: Any) -> bool:
    """The facade's driver loop still runs (and never crashed)."""
    if transport == "sync":
        loop = getattr(facade, "_loop", None)
        if loop is not None:  # producer
            return not loop.stopped and not loop.crashed
        return facade._driver.crashed is None
    driver = facade._driver
    if hasattr(driver, "task") and driver.task is not None:  # asyncio
        return not driver.task.done() and getattr(driver, "crashed", None) is None
    return getattr(driver, "crashed", None) is None and not getattr(driver, "stopping", False)


def _chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__
    return out


def _run_clean(transport: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on the transport's loop; on asyncio, no unhandled-error report may come of it
    ("Task exception was never retrieved", "protocol.data_received() call failed")."""
    reports: list[dict[str, Any]] = []

    async def checked() -> None:
        if transport == "asyncio":
            asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reports.append(ctx))
        await scenario()
        gc.collect()  # a failed, never-awaited task reports when collected

    run(transport, checked)
    assert not reports, [r.get("message") for r in reports]


async def _consumer_call(transport: str, result: Any) -> Any:
    return result if transport == "sync" else await result


# --- defect 1: a host name that cannot be resolved ------------------------------------------------


@pytest.mark.parametrize("bad_host", [LONG_LABEL_HOST, VALUE_ERROR_HOST])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_producer_unresolvable_bootstrap_host_fails_that_attempt_only(
    transport: str, bad_host: str, broker: FakeBroker, resolver_errors: None
) -> None:
    """Before: UnicodeError killed the sync I/O thread, the trio nursery, an asyncio task."""

    async def scenario() -> None:
        # Only the bad host: the wait for metadata ends in a clear, chained error...
        async with open_producer(transport, bootstrap_servers=f"{bad_host}:9092", **FAST) as p:
            with pytest.raises(KafkaTimeoutError) as info:
                await p.send(TOPIC, b"v")
            assert "no metadata" in str(info.value)
            names = {type(e).__name__ for e in _chain(info.value)}
            assert ("UnicodeError" in names) if bad_host == LONG_LABEL_HOST else ("ValueError" in names)
            assert _driver_alive(transport, p.p)
            # ...and the producer still works: later calls raise the same clear error, not a crash.
            with pytest.raises(KafkaTimeoutError):
                await p.partitions_for(TOPIC)
        # The bad host next to a good one: the client goes on with the good one.
        servers = [f"{bad_host}:9092", broker.bootstrap]
        async with open_producer(transport, bootstrap_servers=servers, **FAST) as p:
            md = await p.send_and_wait(TOPIC, b"v")
            assert md.offset == 0
            assert _driver_alive(transport, p.p)

    _run_clean(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_producer_unresolvable_advertised_host_then_recovers(
    transport: str, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Metadata response naming a 64-character label: that broker's records fail, the client goes on."""
    lost = _spy_lost(monkeypatch, ProducerCore)
    bad = [True]
    broker.script[API_METADATA] = lambda req: broker.metadata(
        req, advertise=[(7, LONG_LABEL_HOST, 9092)] if bad[0] else None
    )

    async def scenario() -> None:
        configs = dict(FAST, delivery_timeout_ms=1500, linger_ms=0, metadata_max_age_ms=300)
        async with open_producer(transport, bootstrap_servers=broker.bootstrap, **configs) as p:
            outcome = await p.outcome(await p.send(TOPIC, b"lost"), timeout=30)
            assert isinstance(outcome, KafkaError)
            assert _driver_alive(transport, p.p)
            assert any(n == 7 and isinstance(e, KafkaError) and isinstance(_chain(e)[-1], UnicodeError)
                       for n, e in lost)
            bad[0] = False  # the broker now advertises itself: the same producer delivers
            md = await p.send_and_wait(TOPIC, b"kept")
            assert md.offset >= 0

    _run_clean(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_unresolvable_host_poll_keeps_working(
    transport: str, broker: FakeBroker, resolver_errors: None
) -> None:
    """Before: the sync poll() raised UnicodeError once, then returned nothing for ever."""

    async def scenario() -> None:
        async with open_consumer(transport, bootstrap_servers=f"{LONG_LABEL_HOST}:9092", **FAST_CONSUMER) as c:
            for _ in range(3):
                assert await c.poll(100) == {}
            with pytest.raises(KafkaTimeoutError) as info:
                await _consumer_call(transport, c.c.partitions_for_topic(TOPIC, timeout_ms=1000))
            assert any(isinstance(e, UnicodeError) for e in _chain(info.value))
            assert _driver_alive(transport, c.c)
        servers = [f"{VALUE_ERROR_HOST}:9092", f"{LONG_LABEL_HOST}:9092", broker.bootstrap]
        async with open_consumer(transport, bootstrap_servers=servers, **FAST_CONSUMER) as c:
            parts = await _consumer_call(transport, c.c.partitions_for_topic(TOPIC, timeout_ms=20000))
            assert parts == {0}
            assert await c.poll(50) == {}

    _run_clean(transport, scenario)


@pytest.mark.parametrize("transport", ["asyncio", "trio"])
def test_name_resolution_does_not_block_the_event_loop(
    transport: str, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncio resolves through loop.getaddrinfo, trio through trio.socket.getaddrinfo: a worker thread."""
    real = socket.getaddrinfo
    seen: list[threading.Thread] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        flags = kwargs.get("flags", args[4] if len(args) > 4 else 0)
        # (trio first asks for a numeric address only, which never blocks: not a lookup.)
        if host in ("localhost", b"localhost") and not flags & socket.AI_NUMERICHOST:
            seen.append(threading.current_thread())
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    loop_thread = threading.current_thread()

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=f"localhost:{broker.port}", **FAST) as p:
            assert await p.partitions_for(TOPIC) == {0}

    _run_clean(transport, scenario)
    assert seen, "getaddrinfo was never called for 'localhost'"
    assert all(t is not loop_thread for t in seen)


# --- the general rule: broker input never kills a driver loop -------------------------------------


@pytest.mark.parametrize("role", ["producer", "consumer"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_core_raising_on_bytes_fails_only_that_connection(
    transport: str, role: str, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core raising on a broker's bytes: that connection is dropped, the client reconnects and goes on.

    Before: the sync and trio producers died ("crashed"), asyncio logged "data_received() call failed".
    """
    _raise_once(monkeypatch, ProducerCore if role == "producer" else ConsumerCore)

    async def scenario() -> None:
        if role == "producer":
            async with open_producer(transport, bootstrap_servers=broker.bootstrap, **FAST) as p:
                md = await p.send_and_wait(TOPIC, b"v")
                assert md.offset == 0
                assert _driver_alive(transport, p.p)
        else:
            async with open_consumer(transport, bootstrap_servers=broker.bootstrap, **FAST_CONSUMER) as c:
                parts = await _consumer_call(transport, c.c.partitions_for_topic(TOPIC, timeout_ms=20000))
                assert parts == {0}
                assert _driver_alive(transport, c.c)

    _run_clean(transport, scenario)
    assert broker.accepted >= 2  # the first connection was dropped


@pytest.mark.parametrize("role", ["producer", "consumer"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_driver_crash_fails_pending_and_later_calls_at_once(
    transport: str, role: str, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver that dies anyway (the core raising when told a connection was lost): no silent stall.

    The producer's pending record fails at once (not after delivery_timeout_ms), the consumer's
    waiting call ends with the crash (not its 30 s timeout); every later call names the crash.
    """
    _crash_on_lost(monkeypatch, ProducerCore if role == "producer" else ConsumerCore)
    broker.script[API_PRODUCE if role == "producer" else API_METADATA] = CLOSE
    crash = "crashed.*boom"

    async def scenario() -> None:
        if role == "producer":
            async with open_producer(transport, bootstrap_servers=broker.bootstrap, **FAST) as p:
                assert await p.partitions_for(TOPIC) == {0}
                outcome = await p.outcome(await p.send(TOPIC, b"v"), timeout=30)
                assert isinstance(outcome, KafkaError) and "boom" in str(outcome)
                later = [lambda: p.send(TOPIC, b"later"), lambda: p.flush(5)]
                for call in later:
                    with pytest.raises(IllegalStateError, match=crash) as info:
                        await call()
                    assert isinstance(info.value.__cause__, RuntimeError)
        else:
            async with open_consumer(transport, bootstrap_servers=broker.bootstrap, **FAST_CONSUMER) as c:
                with pytest.raises(IllegalStateError, match=crash):
                    await _consumer_call(transport, c.c.partitions_for_topic(TOPIC, timeout_ms=30000))
                with pytest.raises(IllegalStateError, match=crash) as info:
                    await c.poll(100)
                assert isinstance(info.value.__cause__, RuntimeError)

    _run_clean(transport, scenario)


def _raise_once(monkeypatch: pytest.MonkeyPatch, core_type: type) -> None:
    """``core_type.receive_data`` raises RuntimeError on its first call (a core bug met on input)."""
    real = core_type.receive_data
    calls: list[int] = []

    def receive_data(self: Any, node_id: int, data: bytes, now: float) -> None:
        calls.append(node_id)
        if len(calls) == 1:
            raise RuntimeError("core bug on input")
        real(self, node_id, data, now)

    monkeypatch.setattr(core_type, "receive_data", receive_data)


def _crash_on_lost(monkeypatch: pytest.MonkeyPatch, core_type: type) -> None:
    """``core_type.connection_lost`` always raises: no driver can contain that."""

    def connection_lost(self: Any, node_id: int, exc: BaseException | None, now: float) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(core_type, "connection_lost", connection_lost)


def _spy_lost(monkeypatch: pytest.MonkeyPatch, core_type: type) -> list[tuple[int, BaseException | None]]:
    """Record what the driver reports to ``core_type.connection_lost`` (then the real method runs)."""
    real = core_type.connection_lost
    seen: list[tuple[int, BaseException | None]] = []

    def connection_lost(self: Any, node_id: int, exc: BaseException | None, now: float) -> None:
        seen.append((node_id, exc))
        real(self, node_id, exc, now)

    monkeypatch.setattr(core_type, "connection_lost", connection_lost)
    return seen


# --- defect 7: buffer_memory in bytes, ports, chained causes ---------------------------------------

RECORD = b"r" * 100_000
BUFFER = 1_000_000


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_buffer_memory_bounds_accepted_bytes_across_senders(transport: str, broker: FakeBroker) -> None:
    """4 senders, 100 KB records, a broker that never answers a Produce: accepted <= buffer_memory (+1 record).

    Before: the sync hand-off queue held 32,768 records whatever their size (60x buffer_memory).
    """
    broker.script[API_PRODUCE] = STALL
    accepted: list[int] = []
    timeouts: list[BaseException] = []
    configs = dict(buffer_memory=BUFFER, max_block_ms=1000, linger_ms=0, delivery_timeout_ms=60000,
                   request_timeout_ms=30000)

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=broker.bootstrap, **configs) as p:
            assert await p.partitions_for(TOPIC) == {0}

            async def sender() -> None:
                try:
                    for _ in range(100):
                        await p.send(TOPIC, RECORD)
                        accepted.append(len(RECORD))
                        await sleep(transport, 0)
                except KafkaTimeoutError as exc:
                    timeouts.append(exc)

            if transport == "sync":
                threads = [threading.Thread(target=lambda: asyncio.run(sender())) for _ in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
            elif transport == "asyncio":
                await asyncio.gather(*(sender() for _ in range(4)))
            else:
                async with trio.open_nursery() as n:
                    for _ in range(4):
                        n.start_soon(sender)
            assert len(timeouts) == 4, "every sender ends blocked, then KafkaTimeoutError"
            assert all("buffer_memory" in str(e) for e in timeouts)
            assert sum(accepted) <= BUFFER + len(RECORD)
            assert sum(accepted) >= BUFFER // 2  # the buffer was used, not refused outright
            await p.close(0)

    _run_clean(transport, scenario)


@pytest.mark.parametrize("outcome", ["delivered", "failed"])
def test_sync_buffer_reservations_are_all_given_back(outcome: str, broker: FakeBroker) -> None:
    """4 threads' reservations (lock-free adds under the GIL) come back to 0 once every record completed.

    A leak would block every later send once it reached buffer_memory; a double release would let
    the bound slip.
    """
    if outcome == "failed":
        broker.script[API_PRODUCE] = CLOSE
    from transports.sync import KafkaProducer

    configs = dict(FAST, linger_ms=1, delivery_timeout_ms=1500, retries=0)
    with KafkaProducer(bootstrap_servers=broker.bootstrap, **configs) as p:
        p.partitions_for(TOPIC)
        futures: list[Any] = []

        def sender(key: bytes) -> None:
            futures.extend(p.send(TOPIC, b"x" * (i % 300), key=key) for i in range(3000))

        threads = [threading.Thread(target=sender, args=(bytes([n]),)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        p.flush(30)
        assert len(futures) == 12000 and all(f.is_done for f in futures)
        assert all(f.succeeded() for f in futures) == (outcome == "delivered")
        assert p._loop.held == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_advertised_port_out_of_range_is_a_protocol_error(
    transport: str, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Port 65536 + P names no broker: before, getaddrinfo wrapped it to P and the client connected there."""
    lost = _spy_lost(monkeypatch, ProducerCore)
    with FakeBroker(node_id=7, topics={TOPIC: 1}) as wrapped_to:
        broker.script[API_METADATA] = lambda req: broker.metadata(
            req, advertise=[(7, "127.0.0.1", wrapped_to.port + 65536)]
        )
        configs = dict(FAST, delivery_timeout_ms=1500, linger_ms=0)

        async def scenario() -> None:
            async with open_producer(transport, bootstrap_servers=broker.bootstrap, **configs) as p:
                outcome = await p.outcome(await p.send(TOPIC, b"v"), timeout=30)
                assert isinstance(outcome, KafkaError)
                assert any(n == 7 and isinstance(e, KafkaProtocolError) and "outside 1..65535" in str(e)
                           for n, e in lost)

        _run_clean(transport, scenario)
        assert wrapped_to.accepted == 0


def _tls_configs() -> dict[str, Any]:
    return {"security_protocol": "SSL"}


@pytest.mark.parametrize("cause", ["refused", "tls-on-plaintext", "frame-cap"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_metadata_error_names_and_chains_the_cause(transport: str, cause: str, broker: FakeBroker) -> None:
    """Before: "no metadata for topic 't' within max_block_ms" and nothing else."""
    configs: dict[str, Any] = dict(FAST)
    if cause == "refused":
        servers = f"127.0.0.1:{free_port()}"
        needle = "refused"
    elif cause == "tls-on-plaintext":
        servers = broker.bootstrap
        configs.update(_tls_configs())
        needle = "SSL"
    else:
        servers = broker.bootstrap
        # An ApiVersions answer declaring 2 GiB - 1: over the client's frame-size cap.
        broker.script[API_API_VERSIONS] = lambda req: b"\x7f\xff\xff\xff" + req.correlation_id.to_bytes(4, "big")
        needle = "frame size"

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=servers, **configs) as p:
            with pytest.raises(KafkaTimeoutError, match="no metadata") as info:
                await p.send(TOPIC, b"v")
            assert needle.lower() in str(info.value).lower()
            assert isinstance(info.value.__cause__, KafkaError)

    _run_clean(transport, scenario)


def test_sync_admin_driver_crash_names_the_admin_client(broker: FakeBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocking admin client's driver names itself when it dies (it said "the consumer's driver")."""
    from kproto.admin.core import AdminCore
    from transports.sync import KafkaAdminClient

    _crash_on_lost(monkeypatch, AdminCore)
    broker.script[API_METADATA] = CLOSE
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, **FAST_CONSUMER)
    try:
        with pytest.raises(IllegalStateError, match="the admin client's driver crashed.*boom") as info:
            admin.list_topics()
        assert isinstance(info.value.__cause__, RuntimeError)
        with pytest.raises(IllegalStateError, match="the admin client's driver crashed.*boom"):
            admin.describe_cluster()
    finally:
        admin.close()

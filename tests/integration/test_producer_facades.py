"""KafkaProducer on each transport (sync, asyncio, trio) against a real Tansu broker.

Every test runs the same scenario on the three facades through a thin adapter
(``open_producer``) whose methods are all ``async``; the sync facade's calls
simply block inside the scenario. Records are read back with kafka-python's
``KafkaConsumer`` (assign + seek_to_beginning): no mocks.

A second broker, behind a TCP proxy that can stop forwarding (``Blackhole``),
makes a broker that "never answers" for the buffer-full, flush and close
timeout tests; that broker advertises the proxy's port so every connection
goes through it.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from _adapters import TRANSPORTS, open_producer, read_back, run
from _broker import TansuBroker, free_port

import transports.asyncio as ta
import transports.sync as ts
import transports.trio as tt
from kproto.errors import IllegalStateError, KafkaTimeoutError, MessageSizeTooLargeError
from transports._common import RecordMetadata

# The adapter (one surface over the three facades), run() and read_back() live in tests/_adapters.py.


# --- a broker that stops answering ----------------------------------------------


class Blackhole:
    """TCP proxy to a broker; after ``freeze()`` it reads and drops everything."""

    def __init__(self, port: int, target: int) -> None:
        self.target = target
        self.frozen = False
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen()
        self.listener.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.socks: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self.sel.select(0.05):
                if key.data is None:
                    try:
                        client, _ = self.listener.accept()
                        upstream = socket.create_connection(("127.0.0.1", self.target))
                    except OSError:
                        continue
                    for a, b in ((client, upstream), (upstream, client)):
                        a.setblocking(True)
                        self.sel.register(a, selectors.EVENT_READ, b)
                        self.socks.append(a)
                else:
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = src.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self.sel.unregister(src)
                        continue
                    if not self.frozen:
                        try:
                            key.data.sendall(data)
                        except OSError:
                            pass

    def freeze(self) -> None:
        self.frozen = True

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        for s in self.socks:
            s.close()
        self.listener.close()
        self.sel.close()


@pytest.fixture(scope="module")
def proxied() -> Iterator[tuple[TansuBroker, int]]:
    """A second Tansu that advertises a proxy port; yields (broker, proxy_port)."""
    proxy_port = free_port()
    with TansuBroker(advertised_port=proxy_port) as broker:
        yield broker, proxy_port


@pytest.fixture
def blackhole(proxied: tuple[TansuBroker, int]) -> Iterator[Blackhole]:
    broker, proxy_port = proxied
    bh = Blackhole(proxy_port, broker.port)
    yield bh
    bh.close()


def closed_port() -> int:
    return free_port()


# --- tests -----------------------------------------------------------------------


@pytest.mark.parametrize("acks", [0, 1, "all"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_acks_headers_timestamps_partitions(transport: str, acks: Any, bootstrap: str, topic: str) -> None:
    n = 40
    base_ts = 1_700_000_000_000

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap, acks=acks) as p:
            assert await p.partitions_for(topic) == {0, 1, 2, 3}
            handles = [
                await p.send(
                    topic,
                    b"value-%d" % i,
                    key=b"key-%d" % i,
                    headers=[("i", str(i).encode()), ("empty", b"")],
                    partition=i % 4,
                    timestamp_ms=base_ts + i,
                )
                for i in range(n)
            ]
            await p.flush(30)
            assert all(p.done(h) for h in handles)
            mds = [await p.get(h) for h in handles]
            for i, md in enumerate(mds):
                assert md.topic == topic and md.partition == i % 4
                assert md.topic_partition == (topic, i % 4)
                assert md.timestamp == base_ts + i
                assert md.serialized_key_size == len(b"key-%d" % i)
                assert md.serialized_value_size == len(b"value-%d" % i)
                assert md.serialized_header_size == len("i") + len(str(i)) + len("empty")
                if acks == 0:
                    assert md.offset == -1
            if acks != 0:
                for part in range(4):
                    assert [md.offset for md in mds if md.partition == part] == list(range(n // 4))
            assert p.bootstrap_connected()

    run(transport, scenario)
    records = read_back(bootstrap, topic, n)
    assert len(records) == n
    by_value = {r.value: r for r in records}
    for i in range(n):
        r = by_value[b"value-%d" % i]
        assert r.key == b"key-%d" % i
        assert r.partition == i % 4
        assert r.timestamp == base_ts + i and r.timestamp_type == 0
        assert [(k, bytes(v)) for k, v in r.headers] == [("i", str(i).encode()), ("empty", b"")]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_compression(transport: str, codec: str, bootstrap: str, topic: str) -> None:
    n = 300
    values = [(b"compressible %d " % i) * 20 for i in range(n)]

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20
        ) as p:
            handles = [await p.send(topic, v, key=b"k%d" % (i % 7)) for i, v in enumerate(values)]
            await p.flush(30)
            assert all(p.done(h) for h in handles)  # flush returns after every outcome is known
            for h in handles:
                assert (await p.get(h)).offset >= 0
            m = p.metrics()["producer-metrics"]
            assert m["record-send-total"] == n
            # ~100 KB of repetitive values in 16 KiB batches: every batch on the
            # wire is compressed far below the raw batch size
            assert 0 < m["batch-size-max"] < 4096, m["batch-size-max"]

    run(transport, scenario)
    records = read_back(bootstrap, topic, n)
    assert sorted(r.value for r in records) == sorted(values)
    # same key, same partition (default murmur2 partitioner)
    parts_of_key: dict[bytes, set[int]] = {}
    for r in records:
        parts_of_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(s) == 1 for s in parts_of_key.values())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_linger_batches_records_into_few_requests(transport: str, bootstrap: str, topic: str) -> None:
    n = 200

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=bootstrap, linger_ms=300, batch_size=1 << 20
        ) as p:
            await p.partitions_for(topic)
            before = p.metrics()["producer-metrics"]["request-total"]
            handles = [await p.send(topic, b"x%d" % i, partition=0) for i in range(n)]
            mds = [await p.get(h) for h in handles]  # no flush: linger_ms sends them
            lingered = p.metrics()["producer-metrics"]["request-total"] - before
            assert lingered <= 2, lingered
            # one batch: consecutive offsets
            assert [md.offset for md in mds] == list(range(mds[0].offset, mds[0].offset + n))
        async with open_producer(transport, bootstrap_servers=bootstrap, linger_ms=0) as p:
            await p.partitions_for(topic)
            before = p.metrics()["producer-metrics"]["request-total"]
            for i in range(20):
                await p.send_and_wait(topic, b"y%d" % i, partition=1)
            assert p.metrics()["producer-metrics"]["request-total"] - before == 20

    run(transport, scenario)
    assert len(read_back(bootstrap, topic, n + 20)) == n + 20


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_custom_partitioner_and_serializers(transport: str, bootstrap: str, topic: str) -> None:
    calls: list[tuple[Any, list[int], list[int]]] = []

    def last_partition(key: bytes | None, all_parts: Any, available: Any) -> int:
        calls.append((key, list(all_parts), list(available)))
        return int(all_parts[-1])

    async def scenario() -> None:
        async with open_producer(
            transport,
            bootstrap_servers=bootstrap,
            partitioner=last_partition,
            key_serializer=str.encode,
            value_serializer=lambda v: json.dumps(v).encode(),
        ) as p:
            mds = [await p.send_and_wait(topic, {"n": i}, key=f"user-{i}") for i in range(10)]
            assert {md.partition for md in mds} == {3}
            tomb = await p.send_and_wait(topic, None, key="gone")  # None value: a tombstone
            assert tomb.serialized_value_size == -1

    run(transport, scenario)
    assert calls and calls[0][0] == b"user-0" and sorted(calls[0][1]) == [0, 1, 2, 3]
    records = read_back(bootstrap, topic, 11)
    assert [(r.partition, r.key, r.value) for r in records[:10]] == [
        (3, f"user-{i}".encode(), json.dumps({"n": i}).encode()) for i in range(10)
    ]
    assert records[10].key == b"gone" and records[10].value is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_idempotent_producer(transport: str, bootstrap: str, topic: str) -> None:
    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap, enable_idempotence=True) as p:
            handles = [await p.send(topic, b"%d" % i, partition=2) for i in range(100)]
            await p.flush(30)
            assert [(await p.get(h)).offset for h in handles] == list(range(100))

    run(transport, scenario)
    assert [r.value for r in read_back(bootstrap, topic, 100)] == [b"%d" % i for i in range(100)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_send_errors(transport: str, bootstrap: str, topic: str) -> None:
    def boom(_: object) -> bytes:
        raise RuntimeError("serializer failed")

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap, max_request_size=2000) as p:
            with pytest.raises(TypeError):
                await p.send(topic, "a str and no serializer")
            with pytest.raises(TypeError):
                await p.send(topic, b"v", key=42)
            with pytest.raises(TypeError):
                await p.send(topic, b"v", headers=[("h", "not bytes")])
            with pytest.raises(ValueError):
                await p.send(topic)  # neither key nor value
            for bad in ("", "x" * 250, "bad topic!", ".."):
                with pytest.raises(ValueError):
                    await p.send(bad, b"v")
            too_big = await p.send(topic, b"x" * 5000)
            with pytest.raises(MessageSizeTooLargeError):
                await p.get(too_big)
            md = await p.send_and_wait(topic, bytearray(b"ok"), key=memoryview(b"k"))
            assert md.serialized_key_size == 1
        async with open_producer(transport, bootstrap_servers=bootstrap, value_serializer=boom) as p:
            with pytest.raises(RuntimeError, match="serializer failed"):
                await p.send(topic, {"x": 1})
        closed = None
        async with open_producer(transport, bootstrap_servers=bootstrap) as p:
            closed = p
        await closed.close()  # idempotent
        with pytest.raises(IllegalStateError):
            await closed.send(topic, b"after close")

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_options(transport: str) -> None:
    cls = {"sync": ts, "asyncio": ta, "trio": tt}[transport].KafkaProducer
    with pytest.raises(TypeError, match="linger_ms"):
        cls(linger_msec=5)
    with pytest.raises(TypeError, match="value_serializer"):
        cls(value_serializer="not callable")
    for bad in ({"acks": 2}, {"compression_type": "brotli"}, {"linger_ms": -1}, {"batch_size": "big"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            cls(**bad)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_present_and_moving(transport: str, bootstrap: str, topic: str) -> None:
    keys = {
        "record-send-rate",
        "byte-rate",
        "batch-size-avg",
        "request-latency-avg",
        "request-latency-max",
        "record-error-rate",
        "buffer-available-bytes",
        "requests-in-flight",
    }

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap) as p:
            await p.partitions_for(topic)
            m0 = p.metrics()["producer-metrics"]
            assert keys <= set(m0)
            for i in range(50):
                await p.send(topic, b"m%d" % i)
            await p.flush(30)
            m1 = p.metrics()["producer-metrics"]
            assert m1["record-send-total"] - m0["record-send-total"] == 50
            assert m1["byte-total"] > m0["byte-total"]
            assert m1["batch-size-avg"] > 0 and m1["request-latency-avg"] > 0
            assert m1["record-send-rate"] > 0

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unreachable_bootstrap_fails_within_max_block(transport: str) -> None:
    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=f"127.0.0.1:{closed_port()}", max_block_ms=800
        ) as p:
            t0 = time.monotonic()
            with pytest.raises(KafkaTimeoutError):
                await p.send("nowhere", b"x")
            with pytest.raises(KafkaTimeoutError):
                await p.partitions_for("nowhere")
            assert time.monotonic() - t0 < 10  # a hang guard, not a speed assertion
            assert not p.bootstrap_connected()

    run(transport, scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_silent_broker_full_buffer_flush_and_close_timeouts(
    transport: str, blackhole: Blackhole, proxied: tuple[TansuBroker, int]
) -> None:
    _, proxy_port = proxied
    topic = f"bh-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with open_producer(
            transport,
            bootstrap_servers=f"127.0.0.1:{proxy_port}",
            buffer_memory=4096,
            max_block_ms=700,
            request_timeout_ms=60_000,
            delivery_timeout_ms=120_000,
        ) as p:
            first = await p.send_and_wait(topic, b"before", partition=0)
            assert first.offset == 0
            blackhole.freeze()
            handles = []
            t0 = time.monotonic()
            with pytest.raises(KafkaTimeoutError):
                for _ in range(10_000):  # 4 KiB of buffer fills long before this
                    handles.append(await p.send(topic, b"x" * 100, partition=0))
            assert 5 < len(handles) < 10_000
            with pytest.raises(KafkaTimeoutError):
                await p.flush(timeout=0.5)
            await p.close(timeout=0.5)  # gives up on the pending records, does not raise
            assert time.monotonic() - t0 < 30  # hang guard
            for h in handles:
                with pytest.raises(KafkaTimeoutError):
                    await p.get(h, timeout=5)

    run(transport, scenario)


def test_trio_cancelled_wait_leaves_producer_usable(bootstrap: str, topic: str) -> None:
    async def scenario2() -> None:
        async with tt.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=500) as p:
            handle = await p.send(topic, b"slow", partition=0)
            with trio.move_on_after(0.01) as scope:
                await handle
            assert scope.cancelled_caught and not handle.done()
            assert (await handle).offset == 0
            assert (await p.send_and_wait(topic, b"next", partition=0)).offset == 1

    trio.run(scenario2)
    assert [r.value for r in read_back(bootstrap, topic, 2)] == [b"slow", b"next"]


def test_sync_callbacks_run_on_the_io_thread(bootstrap: str, topic: str) -> None:
    threads: list[str] = []
    got: list[RecordMetadata] = []
    with ts.KafkaProducer(bootstrap_servers=bootstrap) as p:
        fut = p.send(topic, b"cb", partition=1)
        fut.add_callback(lambda md: (threads.append(threading.current_thread().name), got.append(md)))
        fut.add_errback(lambda exc: got.append(exc))
        md = fut.get(timeout=30)
        p.flush(10)
        assert fut.is_done and fut.succeeded() and not fut.failed() and fut.value == md
        assert fut.exception is None
    assert got == [md] and threads and threads[0].startswith("kproto-producer")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_silent_broker_fails_records_within_delivery_timeout(
    transport: str, blackhole: Blackhole, proxied: tuple[TansuBroker, int]
) -> None:
    _, proxy_port = proxied
    topic = f"dt-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with open_producer(
            transport,
            bootstrap_servers=f"127.0.0.1:{proxy_port}",
            request_timeout_ms=500,
            delivery_timeout_ms=1500,
            retries=5,  # retried until delivery_timeout_ms, which then fails them
        ) as p:
            await p.partitions_for(topic)
            blackhole.freeze()
            t0 = time.monotonic()
            handles = [await p.send(topic, b"lost %d" % i, partition=i % 4) for i in range(10)]
            for h in handles:  # no flush, no close: the core's own deadline fails them
                with pytest.raises(KafkaTimeoutError):
                    await p.get(h, timeout=30)
            assert time.monotonic() - t0 < 20  # hang guard

    run(transport, scenario)

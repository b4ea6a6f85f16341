"""One async surface over the three producer facades, and reading back with kafka-python.

Used by the TLS and fault tests: each scenario is an ``async def`` run on the
transport's loop (asyncio for the sync facade, whose calls simply block).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import trio

TRANSPORTS = ["sync", "asyncio", "trio"]


class Producer:
    """One facade behind an all-async surface."""

    def __init__(self, transport: str, p: Any) -> None:
        self.transport = transport
        self.p = p

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        if self.transport == "sync":
            return self.p.send(*args, **kwargs)
        return await self.p.send(*args, **kwargs)

    async def get(self, handle: Any, timeout: float = 30) -> Any:
        if self.transport == "sync":
            return handle.get(timeout)
        if self.transport == "asyncio":
            return await asyncio.wait_for(handle, timeout)
        with trio.fail_after(timeout):
            return await handle

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        return await self.get(await self.send(*args, **kwargs))

    def done(self, handle: Any) -> bool:
        return bool(handle.is_done if self.transport == "sync" else handle.done())

    async def outcome(self, handle: Any, timeout: float = 30) -> Any:
        """The record's metadata, or the exception it failed with."""
        try:
            return await self.get(handle, timeout)
        except (asyncio.TimeoutError, trio.TooSlowError):
            raise
        except Exception as exc:
            return exc

    async def flush(self, timeout: float | None = None) -> None:
        if self.transport == "sync":
            self.p.flush(timeout)
        else:
            await self.p.flush(timeout)

    async def partitions_for(self, topic: str) -> set[int]:
        if self.transport == "sync":
            return self.p.partitions_for(topic)  # type: ignore[no-any-return]
        return await self.p.partitions_for(topic)  # type: ignore[no-any-return]

    def metrics(self) -> dict[str, dict[str, float]]:
        return self.p.metrics()  # type: ignore[no-any-return]

    def bootstrap_connected(self) -> bool:
        return bool(self.p.bootstrap_connected())

    async def close(self, timeout: float | None = None) -> None:
        if self.transport == "sync":
            self.p.close(timeout)
        elif self.transport == "asyncio":
            await self.p.close(timeout)
        else:
            await self.p.aclose(timeout)


@asynccontextmanager
async def open_producer(transport: str, **configs: Any) -> AsyncIterator[Producer]:
    """A started producer of ``transport``; closed (10 s bound) on exit."""
    if transport == "sync":
        import transports.sync as ts

        p = ts.KafkaProducer(**configs)
        try:
            yield Producer(transport, p)
        finally:
            p.close(timeout=10)
    elif transport == "asyncio":
        import transports.asyncio as ta

        async with ta.KafkaProducer(**configs) as ap:
            yield Producer(transport, ap)
    else:
        import transports.trio as tt

        async with tt.KafkaProducer(**configs) as tp:
            yield Producer(transport, tp)


def run(transport: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async scenario on the transport's event loop (asyncio for sync)."""
    if transport == "trio":
        trio.run(scenario)
    else:
        asyncio.run(scenario())  # type: ignore[arg-type]


async def sleep(transport: str, seconds: float) -> None:
    """Sleep on the scenario's loop."""
    if transport == "trio":
        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


def read_back(
    bootstrap: str,
    topic: str,
    count: int,
    timeout: float = 30.0,
    partitions: Iterable[int] | None = None,
    **kafka_kw: Any,
) -> list[Any]:
    """Every record of ``topic`` (at least ``count``) via kafka-python, sorted by (partition, offset).

    ``partitions``: read these (e.g. from the producer's RecordMetadata)
    instead of asking kafka-python's metadata, which can stay stale for a
    topic re-created on a restarted broker.
    """
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **kafka_kw)
    try:
        parts = set(partitions) if partitions is not None else None
        deadline = time.monotonic() + timeout
        while not parts and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
        assert parts, f"no partitions for {topic}"
        consumer.assign([KTopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        out: list[Any] = []
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(records)
        for records in consumer.poll(timeout_ms=200).values():
            out.extend(records)
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


class Consumer:
    """One consumer facade behind an all-async surface."""

    def __init__(self, transport: str, c: Any) -> None:
        self.transport = transport
        self.c = c

    async def poll(self, timeout_ms: int) -> dict[Any, list[Any]]:
        result = self.c.poll(timeout_ms=timeout_ms)
        if self.transport != "sync":
            result = await result
        return result  # type: ignore[no-any-return]

    async def poll_values(self, want: int, timeout: float = 20.0) -> list[bytes]:
        """Values polled until ``want`` arrived or ``timeout`` passed."""
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            for recs in (await self.poll(200)).values():
                out.extend(r.value for r in recs)
        return out


@asynccontextmanager
async def open_consumer(
    transport: str, *topics: str, adapter: type[Consumer] | None = None, **configs: Any
) -> AsyncIterator[Consumer]:
    """A consumer facade of ``transport`` subscribed to ``topics``, wrapped in ``adapter``; closed on exit."""
    wrap = adapter or Consumer
    if transport == "sync":
        import transports._consumer_sync as cs

        c = cs.KafkaConsumer(*topics, **configs)
        try:
            yield wrap(transport, c)
        finally:
            c.close()
    elif transport == "asyncio":
        import transports._consumer_asyncio as ca

        async with ca.KafkaConsumer(*topics, **configs) as ac:
            yield wrap(transport, ac)
    else:
        import transports._consumer_trio as ct

        async with ct.KafkaConsumer(*topics, **configs) as tc:
            yield wrap(transport, tc)

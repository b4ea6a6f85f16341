"""``KafkaConsumer`` for asyncio: one driver task, owned by the consumer.

``async with KafkaConsumer(...)`` (or ``await consumer.start()``) starts the
driver task; ``await consumer.close()`` stops it. Broker connections are
asyncio ``Protocol`` objects whose callbacks feed the core directly, so a
fetch response is decoded into the core's buffer as it arrives, while the
user's code is busy with the previous records (prefetch). The driver task
writes what the core has to send and sleeps until the core's next deadline
or the next poke.

:class:`AsyncConsumerBase` holds the awaitable methods; the trio facade
reuses it with its own driver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, TypeVar

from kproto.consumer import ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp, TopicPartition
from kproto.consumer.core import Pending
from kproto.errors import IllegalStateError
from transports._aiokafka_consumer import ConsumerCompat
from transports._asyncio_driver import AsyncioDriver
from transports._common import timeout_error
from transports._consumer_sync import Offsets, as_tp, as_tps

__all__ = ["AsyncConsumerBase", "KafkaConsumer"]

T = TypeVar("T")

#: kafka-python's ``default_api_timeout_ms``: bound of calls given no timeout.
_DEFAULT_API_TIMEOUT: Final = 60.0


class AsyncConsumerBase(ConsumerCompat):
    """The awaitable consumer methods, over any driver that implements ``_run_until``."""

    _driver: Any

    async def _run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Let the driver work until ``done()`` or ``timeout`` seconds; returns ``done()``."""
        raise NotImplementedError

    def _kick(self) -> None:
        """Tell the driver the core may have something to send."""
        raise NotImplementedError

    def _require_running(self) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        """Write what the core has to send now, without waiting for the driver task."""
        raise NotImplementedError

    async def _checkpoint(self) -> None:
        """Yield to the event loop once."""
        raise NotImplementedError

    def _shield(self) -> AbstractContextManager[object]:
        """Where close() waits for its commit (trio: shielded from cancellation)."""
        return contextlib.nullcontext()

    async def _stopped(self, driver: Any) -> None:
        """After ``driver.stop()``: wait for the driver task."""

    async def close(self, autocommit: bool = True, timeout_ms: float | None = None) -> None:
        """Commit positions (auto-commit on and ``autocommit``), close connections, stop the driver."""
        if self._closed:
            return
        driver = self._driver
        try:
            p = self._core.close(self._clock(), autocommit)
            if driver is not None and driver.running() and driver.crashed is None:
                driver.kick()
                timeout = 30.0 if timeout_ms is None else timeout_ms / 1000
                with self._shield():
                    await driver.run_until(lambda: p.done, timeout)
                    driver.pump()
        finally:
            self._closed = True
            if driver is not None:
                driver.stop()
                await self._stopped(driver)
            self._observer.close()

    async def _wait(self, pending: Pending[T], timeout_ms: float | None, what: str) -> T:
        timeout, done = self._wait_args(pending, timeout_ms)
        self._kick()
        if not await self._run_until(done, timeout):
            raise timeout_error(self._core, f"{what} did not complete within {timeout:.3f}s")
        self._check_open()  # a crash fails the request too: name the crash, not Cancelled
        return pending.result()

    async def poll(
        self, timeout_ms: float = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records by partition, at most ``max_records``; empty after ``timeout_ms`` without any.

        Raises:
            NoOffsetForPartitionError: a reset is needed and ``auto_offset_reset`` allows none.
            RecordDeserializationError: a deserializer failed; the position stays on the record.
        """
        self._check_open()
        self._require_running()
        self._check_poll_args(timeout_ms, max_records)
        core = self._core
        clock = self._clock
        deadline = clock() + timeout_ms / 1000
        client = getattr(core, "client", None)

        def auth_failure_seen() -> bool:
            return getattr(client, "auth_error", None) is not None

        while True:
            core.before_poll(clock())
            for aw in core.take_awaitables():
                await aw  # ``async def`` rebalance listener callbacks
            records = core.poll(max_records, clock())
            left = deadline - clock()
            if records or left <= 0:
                # Write the prefetch this poll made room for, and let the loop take in what
                # arrived meanwhile (a poll answered from the buffer would not yield otherwise).
                self._flush()
                await self._checkpoint()
                return self._observer.consumed(records, core)
            self._raise_auth_failure()
            self._kick()
            await self._run_until(lambda: core.has_buffered() or auth_failure_seen(), left)

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self

    async def __anext__(self) -> ConsumerRecord:
        """The next record; StopAsyncIteration after ``consumer_timeout_ms`` without one."""
        if self._iter_pos < len(self._iter_buffer):  # the per-record path: no call
            self._iter_pos += 1
            return self._iter_buffer[self._iter_pos - 1]
        return await self._anext_polled()

    async def _anext_polled(self) -> ConsumerRecord:
        """:meth:`__anext__` once the buffered records are used up: poll for more."""
        rec = None
        deadline = self._iter_deadline()
        while rec is None:
            try:
                wait = self._iter_wait(deadline)
            except StopIteration:
                raise StopAsyncIteration from None
            rec = self._iter_next(await self.poll(timeout_ms=wait))
            if rec is None and deadline is not None and self._clock() >= deadline:
                raise StopAsyncIteration
        return rec

    async def position(self, partition: TopicPartition, timeout_ms: float | None = None) -> int:
        """The offset of the next record ``poll`` returns (waits for a pending reset)."""
        self._check_open()
        tp = as_tp(partition)
        timeout = _DEFAULT_API_TIMEOUT if timeout_ms is None else timeout_ms / 1000
        self._kick()
        return self._position(tp, await self._run_until(self._position_known(tp), timeout), timeout)

    async def beginning_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """The earliest offset of each partition."""
        return await self._edge_offsets(partitions, -2, timeout_ms, "beginning_offsets")

    async def end_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition."""
        return await self._edge_offsets(partitions, -1, timeout_ms, "end_offsets")

    async def _edge_offsets(
        self, partitions: Iterable[TopicPartition], spec: int, timeout_ms: float | None, what: str
    ) -> dict[TopicPartition, int]:
        """ListOffsets of each partition for ``spec`` (-2: earliest, -1: latest)."""
        tps = as_tps(partitions)
        p = self._core.list_offsets({tp: spec for tp in tps}, self._clock())
        return self._offsets_map(await self._wait(p, timeout_ms, what), tps)

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int], timeout_ms: float | None = None
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition the first offset with a timestamp >= the one given, or None."""
        p = self._core.list_offsets(self._check_timestamps(timestamps), self._clock())
        return await self._wait(p, timeout_ms, "offsets_for_times")

    async def topics(self, timeout_ms: float | None = None) -> set[str]:
        """Every topic of the cluster."""
        p = self._core.fetch_metadata(None, self._clock())
        return set(self._core.topics_from(await self._wait(p, timeout_ms, "topics")))

    async def partitions_for_topic(self, topic: str, timeout_ms: float | None = None) -> set[int] | None:
        """The partition ids of ``topic``, or None if it does not exist."""
        p = self._core.fetch_metadata([topic], self._clock())
        return self._core.topics_from(await self._wait(p, timeout_ms, "partitions_for_topic")).get(topic)

    async def commit(self, offsets: Offsets | None = None, timeout_ms: float | None = None) -> None:
        """Commit ``offsets`` (the consumed positions when None) to the group.

        Raises:
            KafkaConfigurationError: no ``group_id``.
        """
        await self._wait(self._start_commit(offsets), timeout_ms, "commit")

    def commit_async(
        self, offsets: Offsets | None = None, callback: Callable[[Any, Any], Any] | None = None
    ) -> Pending[Any]:
        """Commit in the background; ``callback(offsets, exception_or_None)`` runs when done."""
        p = self._start_commit(offsets)
        if callback is not None:
            cb = callback
            p.add_done_callback(lambda r: cb(r.result() if r.exception() is None else offsets, r.exception()))
        self._kick()
        return p

    async def committed(
        self, partition: TopicPartition, metadata: bool = False, timeout_ms: float | None = None
    ) -> int | OffsetAndMetadata | None:
        """The group's committed offset of ``partition`` (OffsetAndMetadata with ``metadata=True``)."""
        tp = as_tp(partition)
        p = self._core.committed([tp], self._clock())
        om = (await self._wait(p, timeout_ms, "committed")).get(tp)
        if om is None or metadata:
            return om
        return om.offset

    # Non-waiting calls also poke the driver so their requests go out.
    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Seek to the earliest offset (lazily: the next poll or position() finishes it)."""
        super().seek_to_beginning(*partitions)
        self._kick()

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Seek to the end offset (lazily)."""
        super().seek_to_end(*partitions)
        self._kick()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly ``partitions``."""
        super().assign(partitions)
        self._kick()


class KafkaConsumer(AsyncConsumerBase):
    """Consume records on asyncio: ``async with KafkaConsumer(*topics, **configs) as c``.

    Options as :class:`~kproto.consumer.ConsumerConfig`. Create it inside a
    running loop; ``start()`` (or ``async with``) before the first ``poll``.
    """

    _driver: AsyncioDriver

    def __init__(self, *topics: str, **configs: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._setup(topics, configs, self._loop.time, allow_async_provider=True)
        self._driver = AsyncioDriver(
            self._core,
            self._loop,
            self._security,
            **self._driver_settings(),
        )

    async def start(self) -> None:
        """Start the driver task (idempotent)."""
        self._check_open()
        if self._driver.task is None:
            self._driver.start("kproto-consumer")

    def _require_running(self) -> None:
        if self._driver.task is None:
            raise IllegalStateError("call 'await consumer.start()' or use 'async with' before poll()")

    def _kick(self) -> None:
        self._driver.kick()

    def _flush(self) -> None:
        self._driver.pump()
        self._driver.kick()

    async def _checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def _run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        if self._driver.task is None:
            await self.start()
        return await self._driver.run_until(done, timeout)

    async def _stopped(self, driver: AsyncioDriver) -> None:
        if driver.task is not None:
            try:
                await driver.task
            except Exception:  # the task's own failure: nothing left to report it to
                pass
        else:
            driver.shutdown()

    async def __aenter__(self) -> KafkaConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

"""``KafkaProducer`` for asyncio: no thread, one driver task owned by the producer.

The driver task is started by :meth:`KafkaProducer.start` (or ``async with``)
and stopped by :meth:`KafkaProducer.close`. Broker connections are asyncio
``Protocol`` objects: their callbacks feed the core directly and poke the
driver, which then pulls commands, bytes and events from the core and sleeps
until the core's next deadline or the next poke.

``await producer.send(...)`` only waits for buffer space (and, for a topic it
has not seen, for metadata); it returns a :class:`DeliveryHandle`. ``await
handle`` gives the :class:`RecordMetadata`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from kproto import errors as errors
from kproto.errors import (
    Cancelled,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
)
from kproto.types import TopicPartition as TopicPartition
from transports._asyncio_driver import AsyncioDriver
from transports._common import (
    PRODUCER_DRIVER,
    AsyncProducerBase,
    Delivery,
    RecordMetadata,
    crashed_error,
    make_core,
    split_configs,
    wait_for_topic_async,
)
from transports._names import KAFKA_PYTHON_NAMES, kafka_python_name
from transports._txn import AsyncTransactions

if TYPE_CHECKING:  # loaded on first use by __getattr__ below (transports/_names.py)
    from kproto.consumer import ConsumerRebalanceListener as ConsumerRebalanceListener
    from kproto.consumer import ConsumerRecord as ConsumerRecord
    from kproto.consumer import OffsetAndMetadata as OffsetAndMetadata
    from transports._consumer_asyncio import KafkaConsumer as KafkaConsumer

__all__ = ["DeliveryHandle", *KAFKA_PYTHON_NAMES]

_BYTES_PER_READ = 256 * 1024


class DeliveryHandle(Delivery):
    """Awaitable outcome of one record: ``await handle`` → :class:`RecordMetadata`.

    The asyncio future behind it is made only if someone awaits before the
    outcome is known, so unawaited handles cost no future and never warn.
    """

    __slots__ = ()

    #: The future an ``await`` waits on, made by the first one before the outcome.
    _waiter: asyncio.Future[None] | None

    def __init__(
        self, topic: str, timestamp_ms: int, key_size: int, value_size: int, header_size: int
    ) -> None:
        # Delivery.__init__ inlined: one of these is made per record.
        self.topic = topic
        self.timestamp_ms = timestamp_ms
        self.key_size = key_size
        self.value_size = value_size
        self.header_size = header_size
        self._state = 0
        self._error = None
        self._waiter = None

    def _completed(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        if not self._state:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            yield from asyncio.shield(self._waiter).__await__()
        return self._outcome()

    def done(self) -> bool:
        """True once acknowledged or failed."""
        return self._state != 0

    def result(self) -> RecordMetadata:
        """The metadata of a done handle.

        Raises:
            asyncio.InvalidStateError: Not done yet.
            KafkaError: The delivery failed.
        """
        if not self._state:
            raise asyncio.InvalidStateError("delivery not done yet")
        return self._outcome()

    def exception(self) -> BaseException | None:
        """The error of a failed handle, else None."""
        return self._error


class KafkaProducer(AsyncTransactions, AsyncProducerBase[DeliveryHandle]):
    """A Kafka producer for asyncio, with the spec's options and method names.

    Use ``async with KafkaProducer(...) as producer:`` or ``await start()`` /
    ``await close()``. Must be used from one event loop.

    Args:
        **configs: The options of the spec (``bootstrap_servers``, ``acks``,
            ``linger_ms``, ...), plus ``key_serializer`` and ``value_serializer``.

    Raises:
        TypeError: An unknown option (the message names the closest valid one).
        ValueError: An option value that is not allowed.
    """

    _handle_type = DeliveryHandle

    #: Builds the core; a seam for tests that drive a stand-in core.
    _make_core = staticmethod(make_core)

    def __init__(self, **configs: Any) -> None:
        self._options, self.config = split_configs(configs, allow_async_provider=True)
        self._max_block = self.config.max_block_ms / 1000.0
        self._driver: AsyncioDriver | None = None
        self._known_topics: set[str] = set()
        self._plain = self._options.key_serializer is None and self._options.value_serializer is None
        self._closed = False
        self._unyielded = 0

    async def start(self) -> None:
        """Create the core and start the driver task (``send`` does it if needed)."""
        if self._driver is not None:
            return
        if self._closed:
            raise IllegalStateError("producer is closed")
        loop = asyncio.get_running_loop()
        core = self._make_core(self.config, loop.time(), **self._options.core_kwargs())
        self._driver = AsyncioDriver(
            core,
            loop,
            self._options.security,
            **PRODUCER_DRIVER,
        )
        self._driver.start("kproto-producer")
        await asyncio.sleep(0)

    async def _running(self) -> AsyncioDriver:
        if self._closed:
            raise IllegalStateError("producer is closed")
        if self._driver is None:
            await self.start()
        assert self._driver is not None
        if self._driver.crashed is not None:
            raise crashed_error("the producer's driver", self._driver.crashed)
        return self._driver

    async def _ensure_running(self) -> AsyncioDriver:
        return await self._running()

    async def _checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def send_and_wait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        """``await (await send(...))``: queue one record and wait for its acknowledgement.

        Returns:
            The record's :class:`RecordMetadata`.

        Raises:
            KafkaError: As :meth:`send`, or the delivery's failure.
        """
        handle = await self.send(topic, value, key, headers, partition, timestamp_ms)
        return await handle

    async def _wait_for_topic(self, driver: AsyncioDriver, topic: str) -> set[int]:
        return await wait_for_topic_async(self, driver, topic, driver.loop.time)

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of ``topic``, fetching metadata if needed.

        Returns:
            The set of partition ids.

        Raises:
            KafkaTimeoutError: No metadata within ``max_block_ms``.
        """
        return await self._wait_for_topic(await self._running(), topic)

    async def flush(self, timeout: float | None = None) -> None:
        """Make every buffered record sendable now and wait until all are done.

        Args:
            timeout: Seconds to wait; None waits without bound.

        Raises:
            KafkaTimeoutError: Records still pending after ``timeout``.
        """
        driver = self._driver
        if driver is not None and driver.crashed is not None:
            raise crashed_error("the producer's driver", driver.crashed)
        if driver is None or driver.task is None or driver.task.done():
            return
        loop = driver.loop
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            driver.core.flush(loop.time())
            driver.kick()
            if driver.core.pending_count() == 0:
                # Deliveries the core reported since the driver last ran must be
                # resolved before flush returns.
                driver.pump()
                return
            if not await driver.progress(deadline):
                raise KafkaTimeoutError(f"flush did not complete within {timeout}s")
            if driver.crashed is not None:
                raise crashed_error("the producer's driver", driver.crashed)

    async def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the driver and close every connection. Idempotent.

        Records still pending after ``timeout`` fail with ``KafkaTimeoutError``.

        Args:
            timeout: Seconds for the flush; None waits without bound.
        """
        if self._closed:
            if self._driver is not None and self._driver.task is not None:
                await asyncio.shield(self._driver.task)
            return
        driver = self._driver
        if driver is None or driver.crashed is not None:
            self._closed = True  # after a crash the records already failed: nothing to flush
            if driver is not None and driver.task is not None:
                await asyncio.shield(driver.task)
            return
        try:
            await self.flush(timeout)
            flushed = True
        except KafkaTimeoutError:
            flushed = False
        finally:
            self._closed = True
        await self._finish(
            driver, None if flushed else KafkaTimeoutError(f"closed with records pending after {timeout}s")
        )

    async def _finish(self, driver: AsyncioDriver, error: KafkaError | None) -> None:
        now = driver.loop.time()
        if error is None:
            driver.core.close(now)
        else:
            driver.core.abort(now, error)
        driver.pump()
        driver.stop()
        if driver.task is not None:
            await asyncio.shield(driver.task)

    aclose = close

    async def __aenter__(self) -> KafkaProducer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc_type is None:
            await self.close()
        elif self._driver is not None and not self._closed:
            self._closed = True
            await self._finish(self._driver, Cancelled(f"producer context exited with {exc_type.__name__}"))

    def metrics(self) -> dict[str, dict[str, float]]:
        """Producer metrics, kafka-python shaped: ``{'producer-metrics': {name: value}}``.

        Returns:
            A fresh dict (empty metrics before ``start``).
        """
        if self._driver is None:
            return {"producer-metrics": {}}
        result: dict[str, dict[str, float]] = self._driver.core.metrics(self._driver.loop.time())
        return result

    def bootstrap_connected(self) -> bool:
        """True while a connection to a bootstrap/broker is up.

        Returns:
            Whether the core reports a live bootstrap connection.
        """
        return self._driver is not None and bool(self._driver.core.bootstrap_connected())


def __getattr__(name: str) -> Any:
    """``from transports.asyncio import KafkaConsumer``: loaded on first use.

    Lazy, so the producer does not import the consumer (and a consumer import
    error cannot break the producer).
    """
    if name == "KafkaConsumer":
        from transports._consumer_asyncio import KafkaConsumer

        return KafkaConsumer
    return kafka_python_name(__name__, name)

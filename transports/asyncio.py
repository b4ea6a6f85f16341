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
from kproto.errors import Cancelled, IllegalStateError, KafkaError, KafkaTimeoutError
from kproto.types import TopicPartition as TopicPartition
from transports._aiokafka_compat import AsyncioHandleCompat, ProducerCompat
from transports._asyncio_driver import AsyncioDriver
from transports._common import AsyncProducerBase, Delivery, crashed_error, lazy_exports
from transports._common import RecordMetadata as RecordMetadata
from transports._names import KAFKA_PYTHON_NAMES, LAZY_NAMES
from transports._txn import AsyncTransactions

if TYPE_CHECKING:  # loaded on first use by __getattr__ below (LAZY_NAMES)
    from kproto.consumer import ConsumerRebalanceListener as ConsumerRebalanceListener
    from kproto.consumer import ConsumerRecord as ConsumerRecord
    from kproto.consumer import OffsetAndMetadata as OffsetAndMetadata
    from transports._consumer_asyncio import KafkaConsumer as KafkaConsumer

__all__ = ["DeliveryHandle", *KAFKA_PYTHON_NAMES]

class DeliveryHandle(AsyncioHandleCompat, Delivery):
    """Awaitable outcome of one record: ``await handle`` → :class:`RecordMetadata`.

    The asyncio future behind it is made only if someone awaits before the
    outcome is known, so unawaited handles cost no future and never warn.
    """

    __slots__ = ()

    #: The future an ``await`` waits on, made by the first one before the outcome.
    _waiter: asyncio.Future[None] | None

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


class KafkaProducer(ProducerCompat[DeliveryHandle], AsyncTransactions, AsyncProducerBase[DeliveryHandle]):
    """A Kafka producer for asyncio, with the spec's options and method names.

    Use ``async with KafkaProducer(...) as producer:`` or ``await start()`` /
    ``await close()``. Must be used from one event loop.

    Options as :meth:`AsyncProducerBase.__init__ <transports._common.AsyncProducerBase>`.
    """

    _handle_type = DeliveryHandle

    _driver: AsyncioDriver | None

    async def start(self) -> None:
        """Create the core and start the driver task (``send`` does it if needed)."""
        if self._driver is not None:
            return
        if self._closed:
            raise IllegalStateError("producer is closed")
        loop = asyncio.get_running_loop()
        core = self._new_core(loop.time())
        self._driver = AsyncioDriver(
            core,
            loop,
            self._options.security,
            **self._observed_driver(core, loop.time),
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
        if self._observer is not None:
            self._observer.close()  # interceptors' close, a last metrics report
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


#: ``from transports.asyncio import KafkaConsumer`` loads the consumer on first use (and aiokafka's names).
__getattr__ = lazy_exports(
    __name__,
    {
        "KafkaConsumer": "transports._consumer_asyncio",
        "AIOKafkaProducer": "transports._aiokafka_asyncio",
        "AIOKafkaConsumer": "transports._aiokafka_asyncio",
        **LAZY_NAMES,
    },
)

# KafkaAdminClient and the admin types (NewTopic, ConfigResource, ACL...), loaded on first use (issue 13).
from typing import TYPE_CHECKING  # noqa: E402

from transports._admin_exports import with_admin  # noqa: E402

if TYPE_CHECKING:
    from transports._admin_asyncio import *  # noqa: F403
__getattr__ = with_admin(__getattr__, "transports._admin_asyncio")

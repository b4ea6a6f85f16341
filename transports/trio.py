"""``KafkaProducer`` for trio: background work lives in a nursery the producer owns.

::

    async with KafkaProducer(bootstrap_servers="127.0.0.1:9092") as producer:
        handle = await producer.send("topic", b"value")
        metadata = await handle

``async with`` opens a nursery holding the driver task and one task per
broker connection; leaving the block flushes and closes the producer (or, if
the block raised or was cancelled, fails what is pending with ``Cancelled``)
and the nursery ends with it: nothing outlives the block. To run the
producer in a nursery you already have, use ``await producer.start(nursery)``
and ``await producer.aclose()``.

Cancellation: a cancelled ``send`` has queued nothing; a cancelled ``flush``
or ``await handle`` leaves the producer usable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import trio  # type: ignore[import-untyped,unused-ignore]  # trio 0.22 has no py.typed

from kproto import errors as errors
from kproto.errors import Cancelled, IllegalStateError, KafkaError, KafkaTimeoutError
from kproto.types import TopicPartition as TopicPartition
from transports._aiokafka_compat import TrioHandleCompat, TrioProducerCompat
from transports._common import AsyncProducerBase, Delivery, crashed_error, lazy_exports
from transports._common import RecordMetadata as RecordMetadata
from transports._names import KAFKA_PYTHON_NAMES, LAZY_NAMES
from transports._trio_driver import TrioDriver
from transports._txn import AsyncTransactions

if TYPE_CHECKING:  # loaded on first use by __getattr__ below (LAZY_NAMES)
    from kproto.consumer import ConsumerRebalanceListener as ConsumerRebalanceListener
    from kproto.consumer import ConsumerRecord as ConsumerRecord
    from kproto.consumer import OffsetAndMetadata as OffsetAndMetadata
    from transports._consumer_trio import KafkaConsumer as KafkaConsumer

__all__ = ["DeliveryHandle", *KAFKA_PYTHON_NAMES]


def core_clock() -> tuple[Callable[[], float], float]:
    """The clock a core runs on, and what to add to its times to get trio's.

    Under trio's default clock (``offset + time.perf_counter()``, told apart by
    its public face only) that is ``time.perf_counter`` itself (a C call, no
    Python frame per send) and the offset; under any other clock
    (``MockClock``, autojump) the run's clock, offset 0.
    """
    clock = trio.lowlevel.current_clock()
    if type(clock).__name__ == "SystemClock" and type(clock).__module__.startswith("trio."):
        offset = getattr(clock, "offset", None)
        if not isinstance(offset, float):
            offset = clock.current_time() - time.perf_counter()
        return time.perf_counter, offset
    return clock.current_time, 0.0


class DeliveryHandle(TrioHandleCompat, Delivery):
    """Awaitable outcome of one record: ``await handle`` → :class:`RecordMetadata`.

    A ``trio.Event`` is made only if someone awaits before the outcome is known.
    """

    __slots__ = ()

    #: The event an ``await`` waits on, made by the first one before the outcome.
    _waiter: trio.Event | None

    async def wait(self) -> RecordMetadata:
        """Wait for the outcome.

        Returns:
            The record's :class:`RecordMetadata`.

        Raises:
            KafkaError: The delivery failed.
        """
        if not self._state:
            if self._waiter is None:
                self._waiter = trio.Event()
            await self._waiter.wait()
        else:
            await trio.lowlevel.checkpoint()
        return self._outcome()

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        return self.wait().__await__()

    def done(self) -> bool:
        """True once acknowledged or failed."""
        return self._state != 0

    def exception(self) -> BaseException | None:
        """The error of a failed handle, else None."""
        return self._error


class KafkaProducer(TrioProducerCompat[DeliveryHandle], AsyncTransactions, AsyncProducerBase[DeliveryHandle]):
    """A Kafka producer for trio, with the spec's options and method names.

    Options as :meth:`AsyncProducerBase.__init__ <transports._common.AsyncProducerBase>`.
    """

    _handle_type = DeliveryHandle

    _driver: TrioDriver | None

    def __init__(self, **configs: Any) -> None:
        super().__init__(**configs)
        self._nursery_manager: Any = None
        self._own_scope: trio.CancelScope | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the driver in ``nursery``; pair with :meth:`aclose`.

        Args:
            nursery: Where the driver and connection tasks run.

        Raises:
            IllegalStateError: Already started or closed.
        """
        if self._driver is not None or self._closed:
            raise IllegalStateError("producer already started or closed")
        clock = core_clock()
        core = self._new_core(clock[0]())
        self._driver = TrioDriver(
            core,
            nursery,
            self._options.security,
            clock=clock,
            **self._observed_driver(core, clock[0]),
        )
        nursery.start_soon(self._driver.run, name="kproto-producer")
        await trio.lowlevel.checkpoint()

    def _running(self) -> TrioDriver:
        if self._closed:
            raise IllegalStateError("producer is closed")
        if self._driver is None:
            raise IllegalStateError(
                "producer not started: use `async with KafkaProducer(...)` or start(nursery)"
            )
        if self._driver.crashed is not None:
            raise crashed_error("the producer's driver", self._driver.crashed)
        return self._driver

    async def _ensure_running(self) -> TrioDriver:
        return self._running()

    async def _checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self, timeout: float | None = None) -> None:
        """Flush, then stop the driver and close every connection. Idempotent.

        Records still pending after ``timeout`` fail with ``KafkaTimeoutError``.
        If cancelled while flushing, pending records fail with ``Cancelled``
        and the producer is closed.

        Args:
            timeout: Seconds for the flush; None waits without bound.
        """
        driver = self._driver
        if self._closed or driver is None or driver.crashed is not None:
            self._closed = True
            if driver is not None:
                with trio.CancelScope(shield=True):
                    await driver.stopped.wait()
            else:
                await trio.lowlevel.checkpoint()
            return
        error: KafkaError | None = None
        try:
            await self.flush(timeout)
        except KafkaTimeoutError:
            error = KafkaTimeoutError(f"closed with records pending after {timeout}s")
        except trio.Cancelled:
            self._finish(driver, Cancelled("producer close was cancelled"))
            raise
        finally:
            self._closed = True
        if self._observer is not None:
            self._observer.close()  # interceptors' close, a last metrics report
        self._finish(driver, error)
        with trio.CancelScope(shield=True):
            await driver.stopped.wait()

    close = aclose

    def _finish(self, driver: TrioDriver, error: KafkaError | None) -> None:
        self._closed = True
        if driver.stopping:
            return
        now = driver.now()
        if error is None:
            driver.core.close(now)
        else:
            driver.core.abort(now, error)
        driver.pump()
        driver.stopping = True
        driver.kick()

    async def __aenter__(self) -> KafkaProducer:
        self._nursery_manager = trio.open_nursery()
        nursery = await self._nursery_manager.__aenter__()
        try:
            await self.start(nursery)
        except BaseException:
            nursery.cancel_scope.cancel()
            await self._nursery_manager.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        driver = self._driver
        try:
            if driver is not None:
                if exc_type is None:
                    await self.aclose()
                else:
                    self._finish(driver, Cancelled(f"producer context exited with {exc_type.__name__}"))
        finally:
            if driver is not None:
                driver.nursery.cancel_scope.cancel()
            # The body's exception is not handed to the nursery, so it comes out
            # as itself (not wrapped in an exception group on newer trio).
            await self._nursery_manager.__aexit__(None, None, None)
        return False


#: ``from transports.trio import KafkaConsumer`` loads the consumer on first use.
__getattr__ = lazy_exports(__name__, {"KafkaConsumer": "transports._consumer_trio", **LAZY_NAMES})

# KafkaAdminClient and the admin types (NewTopic, ConfigResource, ACL...), loaded on first use (issue 13).
from typing import TYPE_CHECKING  # noqa: E402

from transports._admin_exports import with_admin  # noqa: E402

if TYPE_CHECKING:
    from transports._admin_trio import *  # noqa: F403
__getattr__ = with_admin(__getattr__, "transports._admin_trio")

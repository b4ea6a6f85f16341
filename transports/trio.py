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

import logging
import ssl
import time
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any

import trio  # type: ignore[import-untyped,unused-ignore]  # trio 0.22 has no py.typed

from kproto.driving import Close, Connect
from kproto.errors import (
    Cancelled,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
)
from transports._common import (
    AsyncProducerBase,
    Delivery,
    RecordMetadata,
    crashed_error,
    dispatch_events,
    make_core,
    split_configs,
    wait_for_topic_async,
)
from transports._sockets import bad_address, connect_failure, feed, resolve_failure
from transports._tls import AsyncTokenCache, lost_error
from transports._txn import AsyncTransactions

__all__ = ["DeliveryHandle", "KafkaProducer", "RecordMetadata"]

log = logging.getLogger(__name__)

_BYTES_PER_READ = 256 * 1024

_SystemClock: type | None
try:  # trio's default clock: ``offset + time.perf_counter()``, offset fixed (a frozen attrs class)
    from trio._core._run import SystemClock as _SystemClock
except ImportError:  # pragma: no cover - a trio without it: always read the run's clock
    _SystemClock = None


def _core_clock() -> tuple[Callable[[], float], float]:
    """The clock the core runs on, and what to add to its times to get trio's.

    Under trio's default clock that is ``time.perf_counter`` (a C call, no
    Python frame per send) and the clock's offset; under any other clock
    (``MockClock``, autojump) it is the run's clock itself, offset 0.
    """
    clock = trio.lowlevel.current_clock()
    if _SystemClock is not None and type(clock) is _SystemClock:
        return time.perf_counter, float(getattr(clock, "offset"))  # noqa: B009 - Clock declares no offset
    return clock.current_time, 0.0


class DeliveryHandle(Delivery):
    """Awaitable outcome of one record: ``await handle`` → :class:`RecordMetadata`.

    A ``trio.Event`` is made only if someone awaits before the outcome is known.
    """

    __slots__ = ()

    #: The event an ``await`` waits on, made by the first one before the outcome.
    _waiter: trio.Event | None

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
        if self._waiter is not None:
            self._waiter.set()

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


class _Conn:
    __slots__ = ("closed_by_us", "got_data", "has_data", "host", "node_id", "out", "port", "scope", "stream")

    def __init__(self, node_id: int, host: str = "", port: int = 0) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.stream: trio.abc.Stream | None = None
        self.scope = trio.CancelScope()
        #: Bytes arrived (a TLS error before that is an authentication failure).
        self.got_data = False
        #: Bytes the writer has yet to take, in order (joined only when more than one).
        self.out: list[bytes] = []
        self.has_data = trio.Event()
        self.closed_by_us = False


class _Driver:
    """Drives a producer core from tasks in one nursery."""

    def __init__(
        self, core: Any, nursery: trio.Nursery, clock: tuple[Callable[[], float], float] | None = None
    ) -> None:
        self.core = core
        self.nursery = nursery
        #: ProducerCore.send_value (the send hot path), None for a core without it.
        self.send_value: Callable[[str, bytes | None, bytes, int, object, float], bool] | None = getattr(
            core, "send_value", None
        )
        self.conns: dict[int, _Conn] = {}
        self._wake = trio.Event()
        #: No kick since the driver last woke: the next kick sets the event
        #: (send() reads it to skip the call when the driver is awake already).
        self.asleep = True
        #: The core's clock: every ``now`` fed to the core comes from it (see
        #: _core_clock). A core time plus ``offset`` is a trio time.
        self.now: Callable[[], float]
        self.offset: float
        self.now, self.offset = clock if clock is not None else _core_clock()
        self._progress = trio.Event()
        self.stopping = False
        self.stopped = trio.Event()
        self.crashed: BaseException | None = None
        #: Wrap connections in TLS with this context (``security_protocol`` SSL/SASL_SSL).
        self.ssl_context: ssl.SSLContext | None = None
        #: An async OAUTHBEARER provider, refreshed before each connection.
        self.token_cache: AsyncTokenCache | None = None

    def kick(self) -> None:
        """Wake the driver task (a flag check when it is already awake)."""
        if self.asleep:
            self.asleep = False
            self._wake.set()

    async def progress(self, deadline: float) -> bool:
        """Wait for the driver's next iteration; False if ``deadline`` (core clock, ``now``) passed."""
        ev = self._progress
        with trio.move_on_at(deadline + self.offset):
            await ev.wait()
            return True
        return False

    async def run(self) -> None:
        core = self.core
        clock = self.now
        try:
            while not self.stopping:
                now = clock()
                timer = core.get_timer()
                if timer is not None and timer <= now:
                    core.handle_timer(now)
                self.pump(now)
                if self.stopping:
                    break
                timer = core.get_timer()
                if not self._wake.is_set():
                    with trio.move_on_at(timer + self.offset if timer is not None else float("inf")):
                        await self._wake.wait()
                else:
                    await trio.lowlevel.checkpoint()
                self._wake = trio.Event()
                self.asleep = True
        except Exception as exc:
            self.crash(exc)
        finally:
            self.shutdown()

    def crash(self, exc: BaseException) -> None:
        """A bug in the core or here: fail what is pending, stop, make later calls raise."""
        if self.crashed is not None:
            return
        log.error("kproto producer driver crashed", exc_info=exc)
        self.crashed = exc
        try:
            self.core.abort(self.now(), KafkaError(f"producer driver crashed: {exc!r}"))
            dispatch_events(self.core.events())
        except Exception:
            log.exception("abort after the crash failed")
        self.stopping = True
        self.kick()

    def pump(self, now: float) -> None:
        """Commands, bytes and events until the core has nothing more to say."""
        core = self.core
        for _ in range(8):
            cmds = core.commands()
            for cmd in cmds:
                if type(cmd) is Connect:
                    new = _Conn(cmd.node_id, cmd.host, cmd.port)
                    self.conns[cmd.node_id] = new
                    self.nursery.start_soon(self._connection, new, cmd.host, cmd.port)
                elif type(cmd) is Close:
                    self._close(cmd.node_id)
            out = core.data_to_send()
            for node_id, data in out:
                conn = self.conns.get(node_id)
                if conn is not None:
                    conn.out.append(data)
                    conn.has_data.set()
            evs = core.events()
            if evs:
                dispatch_events(evs)
            if not cmds and not out and not evs:
                break
        self._progress.set()
        self._progress = trio.Event()

    def _lost(self, conn: _Conn, exc: BaseException | None, *, raw: bool = False) -> None:
        """Report ``conn`` lost (``exc`` mapped by ``lost_error`` unless ``raw``); a core raise is a crash."""
        if conn.closed_by_us:
            return
        if not raw:
            # trio wraps the ssl error (BrokenResourceError from SSLError); TLS 1.3
            # reports a refused client certificate on the first read.
            exc = lost_error(exc, conn.host, conn.port, tls=self.ssl_context is not None, got_data=conn.got_data)
        conn.closed_by_us = True
        if self.conns.get(conn.node_id) is conn:
            del self.conns[conn.node_id]
        conn.scope.cancel()
        try:
            self.core.connection_lost(conn.node_id, exc, self.now())
        except Exception as crash:
            self.crash(crash)
            return
        self.kick()

    async def _connection(self, conn: _Conn, host: str, port: int) -> None:
        with conn.scope:
            bad = bad_address(host, port)
            if bad is not None:
                self._lost(conn, bad, raw=True)
                return
            try:
                if self.token_cache is not None:
                    await (
                        self.token_cache.refresh()
                    )  # async OAUTHBEARER provider: a fresh token per connection
                # trio.socket.getaddrinfo runs in a worker thread: DNS never blocks the run.
                tcp = await trio.open_tcp_stream(host, port)
                if self.ssl_context is None:
                    conn.stream = tcp
                else:
                    conn.stream = tls = trio.SSLStream(tcp, self.ssl_context, server_hostname=host)
                    await tls.do_handshake()
            except (OSError, trio.BrokenResourceError) as exc:
                if conn.stream is not None:
                    await trio.aclose_forcefully(conn.stream)
                self._lost(conn, connect_failure(exc))
                return
            except Exception as exc:  # UnicodeError from the IDNA codec, ValueError...
                if conn.stream is not None:
                    await trio.aclose_forcefully(conn.stream)
                self._lost(conn, resolve_failure(exc, host, port), raw=True)
                return
            if conn.closed_by_us:
                await trio.aclose_forcefully(conn.stream)
                return
            try:
                self.core.connection_made(conn.node_id, self.now())
            except Exception as exc:
                self.crash(exc)
                await trio.aclose_forcefully(conn.stream)
                return
            self.kick()
            try:
                async with trio.open_nursery() as n:
                    n.start_soon(self._writer, conn)
                    await self._reader(conn)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(conn.stream)

    async def _reader(self, conn: _Conn) -> None:
        assert conn.stream is not None
        while True:
            try:
                data = await conn.stream.receive_some(_BYTES_PER_READ)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self._lost(conn, exc)
                return
            if not data:
                self._lost(conn, None)
                return
            conn.got_data = True
            failed = feed(self.core, conn.node_id, data, self.now())
            if failed is not None:  # that connection goes; the core fails or retries its requests
                self._lost(conn, failed, raw=True)
                return
            self.kick()

    async def _writer(self, conn: _Conn) -> None:
        assert conn.stream is not None
        while True:
            await conn.has_data.wait()
            conn.has_data = trio.Event()
            if conn.out:
                chunks, conn.out = conn.out, []
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                try:
                    await conn.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self._lost(conn, exc)
                    return

    def _close(self, node_id: int) -> None:
        conn = self.conns.pop(node_id, None)
        if conn is not None:
            conn.closed_by_us = True
            conn.scope.cancel()

    def shutdown(self) -> None:
        for node_id in list(self.conns):
            self._close(node_id)
        self._progress.set()
        self.stopped.set()


class KafkaProducer(AsyncTransactions, AsyncProducerBase[DeliveryHandle]):
    """A Kafka producer for trio, with the spec's options and method names.

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
        self._driver: _Driver | None = None
        self._known_topics: set[str] = set()
        self._plain = self._options.key_serializer is None and self._options.value_serializer is None
        self._closed = False
        self._unyielded = 0
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
        clock = _core_clock()
        core = self._make_core(self.config, clock[0](), **self._options.core_kwargs())
        self._driver = _Driver(core, nursery, clock)
        security = self._options.security
        if security is not None:
            self._driver.ssl_context = security.ssl_context
            self._driver.token_cache = security.token_cache
        nursery.start_soon(self._driver.run, name="kproto-producer")
        await trio.lowlevel.checkpoint()

    def _running(self) -> _Driver:
        if self._closed:
            raise IllegalStateError("producer is closed")
        if self._driver is None:
            raise IllegalStateError(
                "producer not started: use `async with KafkaProducer(...)` or start(nursery)"
            )
        if self._driver.crashed is not None:
            raise crashed_error("the producer's driver", self._driver.crashed)
        return self._driver

    async def _ensure_running(self) -> _Driver:
        return self._running()

    async def _checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_and_wait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        """Queue one record and wait for its acknowledgement.

        Returns:
            The record's :class:`RecordMetadata`.

        Raises:
            KafkaError: As :meth:`send`, or the delivery's failure.
        """
        handle = await self.send(topic, value, key, headers, partition, timestamp_ms)
        return await handle.wait()

    async def _wait_for_topic(self, driver: _Driver, topic: str) -> set[int]:
        return await wait_for_topic_async(self, driver, topic, driver.now)

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of ``topic``, fetching metadata if needed.

        Returns:
            The set of partition ids.

        Raises:
            KafkaTimeoutError: No metadata within ``max_block_ms``.
        """
        return await self._wait_for_topic(self._running(), topic)

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
        if driver is None or driver.stopped.is_set():
            await trio.lowlevel.checkpoint()
            return
        deadline = float("inf") if timeout is None else driver.now() + timeout
        while True:
            driver.core.flush(driver.now())
            driver.kick()
            if driver.core.pending_count() == 0:
                # Deliveries the core reported since the driver last ran must be
                # resolved before flush returns.
                driver.pump(driver.now())
                await trio.lowlevel.checkpoint()
                return
            if not await driver.progress(deadline):
                raise KafkaTimeoutError(f"flush did not complete within {timeout}s")
            if driver.crashed is not None:
                raise crashed_error("the producer's driver", driver.crashed)

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
        self._finish(driver, error)
        with trio.CancelScope(shield=True):
            await driver.stopped.wait()

    close = aclose

    def _finish(self, driver: _Driver, error: KafkaError | None) -> None:
        self._closed = True
        if driver.stopping:
            return
        now = driver.now()
        if error is None:
            driver.core.close(now)
        else:
            driver.core.abort(now, error)
        driver.pump(now)
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

    def metrics(self) -> dict[str, dict[str, float]]:
        """Producer metrics, kafka-python shaped: ``{'producer-metrics': {name: value}}``.

        Returns:
            A fresh dict (empty before ``start``).
        """
        if self._driver is None:
            return {"producer-metrics": {}}
        result: dict[str, dict[str, float]] = self._driver.core.metrics(self._driver.now())
        return result

    def bootstrap_connected(self) -> bool:
        """True while a connection to a bootstrap/broker is up.

        Returns:
            Whether the core reports a live bootstrap connection.
        """
        return self._driver is not None and bool(self._driver.core.bootstrap_connected())


def __getattr__(name: str) -> Any:
    """``from transports.trio import KafkaConsumer``: loaded on first use.

    Lazy, so the producer does not import the consumer (and a consumer import
    error cannot break the producer).
    """
    if name == "KafkaConsumer":
        from transports._consumer_trio import KafkaConsumer

        return KafkaConsumer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

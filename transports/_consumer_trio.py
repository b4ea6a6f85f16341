"""``KafkaConsumer`` for trio: background work lives in a nursery owned by ``async with``.

``async with KafkaConsumer(...) as consumer:`` opens a nursery holding the
driver task and, per broker connection, a reader and a writer task. Leaving
the block (or ``await consumer.close()``) commits if asked, then cancels the
nursery: nothing outlives the block. The awaitable methods are those of
:class:`~transports._consumer_asyncio.AsyncConsumerBase`.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

import trio  # type: ignore[import-untyped,unused-ignore]  # trio 0.22 has no py.typed

from kproto.consumer.core import ConsumerCore
from kproto.driving import Close, Connect
from kproto.errors import IllegalStateError
from transports._common import crashed_error
from transports._consumer_asyncio import AsyncConsumerBase
from transports._consumer_sync import crash_consumer
from transports._sockets import bad_address, connect_failure, feed, resolve_failure
from transports._tls import AsyncTokenCache, lost_error

__all__ = ["KafkaConsumer"]

#: Bytes asked of one ``receive_some``; fetch responses are megabytes.
_RECV_SIZE: Final = 1 << 20
#: What a broken connection raises.
_IO_ERRORS: Final = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class _Conn:
    __slots__ = ("node_id", "scope", "send", "stream", "closed_by_us", "got_data", "write_error", "_recv")

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        #: Bytes arrived (a TLS error before that is an authentication failure).
        self.got_data = False
        #: Why the writer task stopped (the reader then stops too).
        self.write_error: BaseException | None = None
        self.scope = trio.CancelScope()
        send, self_recv = trio.open_memory_channel[bytes](math.inf)
        self.send = send
        self.stream: trio.abc.Stream | None = None
        self.closed_by_us = False
        self._recv = self_recv

    @property
    def outgoing(self) -> trio.MemoryReceiveChannel[bytes]:
        return self._recv


class _Driver:
    """Drives a core inside a trio nursery."""

    def __init__(
        self,
        core: ConsumerCore,
        nursery: trio.Nursery,
        ssl_context: ssl.SSLContext | None = None,
        token_cache: AsyncTokenCache | None = None,
    ) -> None:
        self.core = core
        self.nursery = nursery
        #: Wrap connections in TLS with this context (``security_protocol`` SSL/SASL_SSL).
        self.ssl_context = ssl_context
        #: An async OAUTHBEARER provider, refreshed before each connection.
        self.token_cache = token_cache
        self.conns: dict[int, _Conn] = {}
        self._wake = trio.Event()
        self._progress = trio.Event()
        self.running = False
        self._stop = False
        #: What killed the driver (a bug); every later call names it.
        self.crashed: BaseException | None = None

    def kick(self) -> None:
        self._wake.set()

    def crash(self, exc: BaseException) -> None:
        """The core raised (a bug): stop, fail what the client has pending, make calls raise.

        Nothing escapes into the nursery (the user's ``async with`` is not torn down).
        """
        if self.crashed is None:
            self.crashed = exc
            crash_consumer(self.core, exc, trio.current_time())
        self.stop()

    async def run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        while not done():
            if self.crashed is not None:
                raise crashed_error("the consumer's driver", self.crashed)
            if not self.running:
                raise IllegalStateError("the consumer's driver is not running; use 'async with'")
            ev = self._progress
            with trio.move_on_at(deadline):
                await ev.wait()
            if trio.current_time() >= deadline:
                return done()
        return True

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        core = self.core
        self.running = True
        task_status.started()
        try:
            while not self._stop:
                now = trio.current_time()
                timer = core.get_timer()
                if timer is not None and timer <= now:
                    core.handle_timer(now)
                self.flush()
                ev, self._progress = self._progress, trio.Event()
                ev.set()
                if self._stop:
                    break
                timer = core.get_timer()
                self._wake = trio.Event()
                with trio.move_on_at(math.inf if timer is None else timer):
                    await self._wake.wait()
        except Exception as exc:
            self.crash(exc)
        finally:
            self.running = False
            self._progress.set()

    def flush(self) -> None:
        core = self.core
        for _ in range(8):
            cmds = core.commands()
            for cmd in cmds:
                if type(cmd) is Connect:
                    conn = _Conn(cmd.node_id)
                    self.conns[cmd.node_id] = conn
                    self.nursery.start_soon(self._connection, cmd, conn)
                elif type(cmd) is Close:
                    c = self.conns.pop(cmd.node_id, None)
                    if c is not None:
                        c.closed_by_us = True
                        c.scope.cancel()
            out = core.data_to_send()
            for node_id, data in out:
                c = self.conns.get(node_id)
                if c is not None:
                    c.send.send_nowait(data)
            if not cmds and not out:
                break

    async def _connection(self, cmd: Connect, conn: _Conn) -> None:
        core = self.core
        error: BaseException | None = None
        ctx = self.ssl_context
        raw = False  # error is final (not to be mapped by lost_error)
        with conn.scope:
            stream: trio.abc.Stream | None = None
            bad = bad_address(cmd.host, cmd.port)
            try:
                if bad is not None:
                    raise bad
                if self.token_cache is not None:
                    await self.token_cache.refresh()  # a fresh OAUTHBEARER token per connection
                # trio.socket.getaddrinfo runs in a worker thread: DNS never blocks the run.
                stream = await trio.open_tcp_stream(cmd.host, cmd.port)
                if ctx is not None:
                    stream = trio.SSLStream(stream, ctx, server_hostname=cmd.host)
                    await stream.do_handshake()
            except (OSError, trio.BrokenResourceError) as exc:  # ssl.SSLError is an OSError
                if stream is not None:
                    await trio.aclose_forcefully(stream)
                error = connect_failure(exc)
            except Exception as exc:  # UnicodeError from the IDNA codec, a bad advertised port...
                if stream is not None:
                    await trio.aclose_forcefully(stream)
                error, raw = (exc if exc is bad else resolve_failure(exc, cmd.host, cmd.port)), True
            else:
                conn.stream = stream
                try:
                    core.connection_made(cmd.node_id, trio.current_time())
                except Exception as exc:
                    self.crash(exc)
                    await trio.aclose_forcefully(stream)
                    return
                self.kick()
                try:
                    async with stream, trio.open_nursery() as inner:
                        # Neither task lets an I/O error escape into the nursery (which would
                        # wrap it in an ExceptionGroup): each records it and stops the other.
                        inner.start_soon(self._writer, conn, stream, inner.cancel_scope)
                        try:
                            while True:
                                data = await stream.receive_some(_RECV_SIZE)
                                if not data:
                                    break
                                conn.got_data = True
                                if type(data) is not bytes:  # typed bytes | bytearray; SSLStream gives bytes
                                    data = bytes(data)
                                failed = feed(core, cmd.node_id, data, trio.current_time())
                                if failed is not None:  # that connection goes, the driver stays
                                    error, raw = failed, True
                                    break
                                self.kick()
                        except _IO_ERRORS as exc:
                            error = exc
                        inner.cancel_scope.cancel()
                except _IO_ERRORS as exc:  # closing the stream
                    error = error or exc
                error = error or conn.write_error
        if conn.closed_by_us or self._stop:
            return
        if self.conns.get(cmd.node_id) is conn:
            del self.conns[cmd.node_id]
        if not raw:
            error = lost_error(error, cmd.host, cmd.port, tls=ctx is not None, got_data=conn.got_data)
        try:
            core.connection_lost(cmd.node_id, error, trio.current_time())
        except Exception as exc:
            self.crash(exc)
            return
        self.kick()

    async def _writer(self, conn: _Conn, stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
        try:
            async for data in conn.outgoing:
                await stream.send_all(data)
        except _IO_ERRORS as exc:
            conn.write_error = exc
            scope.cancel()

    def stop(self) -> None:
        self._stop = True
        for c in self.conns.values():
            c.closed_by_us = True
            c.scope.cancel()
        self.conns.clear()
        self.kick()


class KafkaConsumer(AsyncConsumerBase):
    """Consume records on trio: ``async with KafkaConsumer(*topics, **configs) as consumer``.

    Options as :class:`~kproto.consumer.ConsumerConfig`. The consumer works
    only inside its ``async with`` block, whose nursery holds its tasks.
    """

    def __init__(self, *topics: str, **configs: Any) -> None:
        self._setup(topics, configs, trio.current_time, allow_async_provider=True)
        self._driver: _Driver | None = None
        self._nursery_cm: Any = None

    def _require_running(self) -> None:
        if self._driver is None or not self._driver.running and self._nursery_cm is None:
            raise IllegalStateError("use 'async with KafkaConsumer(...)' before poll()")

    def _kick(self) -> None:
        if self._driver is not None:
            self._driver.kick()

    def _flush(self) -> None:
        if self._driver is not None:
            self._driver.flush()
            self._driver.kick()

    async def _checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def _run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        if self._driver is None:
            raise IllegalStateError("use 'async with KafkaConsumer(...)' first")
        return await self._driver.run_until(done, timeout)

    async def __aenter__(self) -> KafkaConsumer:
        self._check_open()
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        self._driver = _Driver(self._core, nursery, self._ssl_context, self._security.token_cache)
        await nursery.start(self._driver.run)
        return self

    async def close(self, autocommit: bool = True, timeout_ms: float | None = None) -> None:
        """Commit positions (auto-commit on and ``autocommit``), close connections, stop the tasks."""
        if self._closed:
            return
        driver = self._driver
        try:
            p = self._core.close(self._clock(), autocommit)
            if driver is not None and driver.running and driver.crashed is None:
                driver.kick()
                timeout = 30.0 if timeout_ms is None else timeout_ms / 1000
                with trio.CancelScope(shield=True):
                    await driver.run_until(lambda: p.done, timeout)
                    driver.flush()
        finally:
            self._closed = True
            if driver is not None:
                driver.stop()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            with trio.CancelScope(shield=True):
                await self.close()
        finally:
            cm, self._nursery_cm = self._nursery_cm, None
            if self._driver is not None:
                self._driver.nursery.cancel_scope.cancel()
            result: bool | None = await cm.__aexit__(exc_type, exc, tb)
        return result

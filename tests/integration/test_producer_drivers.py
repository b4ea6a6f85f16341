"""The three transports' driver loops and facades over real loopback sockets.

A small stand-in core (``EchoCore``) replaces the producer core here: it
writes one line per record to a local TCP server that echoes lines back, and
reports each echoed line as a delivery. This checks what the transports own
— sockets, partial writes, wake-ups, timers, backpressure, flush/close
timeouts, futures and callbacks — independently of the Kafka protocol. The
same facades against the real core and a real broker are in
``test_producer_facades.py``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio

import transports.asyncio as ta
import transports.sync as ts
import transports.trio as tt
from kproto.driving import Command, Connect
from kproto.errors import IllegalStateError, KafkaConnectionError, KafkaError, KafkaTimeoutError
from kproto.producer.events import DeliveryFailed, RecordsDelivered


def Delivered(topic: str, partition: int, base_offset: int, log_append_time_ms: int, tokens: list[Any]) -> RecordsDelivered:
    """The producer core's delivery report (the facades dispatch on the event's class)."""
    return RecordsDelivered(
        topic=topic, partition=partition, base_offset=base_offset, log_append_time_ms=log_append_time_ms, tokens=tokens
    )


def Failed(topic: str, partition: int, error: KafkaError, tokens: list[Any]) -> DeliveryFailed:
    """The producer core's failure report."""
    return DeliveryFailed(topic=topic, partition=partition, error=error, tokens=tokens)


class EchoCore:
    """Stand-in producer core: a record is delivered when its line comes back."""

    def __init__(self, port: int, capacity: int = 100_000, timer_every: float | None = None) -> None:
        self._cmds: list[Command] = [Connect(node_id=-1, host="127.0.0.1", port=port)]
        self._out = bytearray()
        self._pending: dict[int, Any] = {}
        self._events: list[Any] = []
        self._buf = b""
        self._next = 0
        self.capacity = capacity
        self.connected = False
        self.closed = False
        self.lost: list[BaseException | None] = []
        self.timer_every = timer_every
        self.timer: float | None = None
        self.timer_calls = 0
        self.max_chunk = 0
        self.turns = 0

    # Driven
    def connection_made(self, node_id: int, now: float) -> None:
        self.connected = True
        if self.timer_every:
            self.timer = now + self.timer_every

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        self.connected = False
        self.lost.append(exc)
        self.abort(now, KafkaConnectionError(f"lost: {exc!r}"))

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            rid = int(line)
            tok = self._pending.pop(rid)
            self._events.append(Delivered("t", 0, rid, -1, [tok]))

    def handle_timer(self, now: float) -> None:
        self.timer_calls += 1
        self.timer = now + self.timer_every if self.timer_every else None

    def commands(self) -> list[Command]:
        self.turns += 1  # the driver pulls commands once per pump round
        cmds, self._cmds = self._cmds, []
        return cmds

    def data_to_send(self) -> list[tuple[int, bytes]]:
        if not self.connected or not self._out:
            return []
        data = bytes(self._out)
        self._out.clear()
        self.max_chunk = max(self.max_chunk, len(data))
        return [(-1, data)]

    def get_timer(self) -> float | None:
        return self.timer

    # producer surface
    def send(
        self,
        *,
        topic: str,
        key: Any,
        value: Any,
        headers: Any,
        partition: Any,
        timestamp_ms: int,
        token: Any,
        now: float,
    ) -> bool:
        if self.closed:
            raise IllegalStateError("closed")
        if len(self._pending) >= self.capacity:
            return False
        rid = self._next
        self._next += 1
        self._pending[rid] = token
        self._out += b"%d\n" % rid
        return True

    def flush(self, now: float) -> None:
        pass

    def pending_count(self) -> int:
        return len(self._pending)

    def events(self) -> list[Any]:
        evs, self._events = self._events, []
        return evs

    def partitions_for(self, topic: str) -> set[int] | None:
        return {0} if self.connected else None

    def request_metadata(self, topic: str, now: float) -> None:
        pass

    def bootstrap_connected(self) -> bool:
        return self.connected

    def metrics(self, now: float) -> dict[str, dict[str, float]]:
        return {"producer-metrics": {"record-send-total": float(self._next)}}

    def close(self, now: float) -> None:
        self.closed = True

    def abort(self, now: float, error: KafkaError) -> None:
        self.closed = True
        toks = list(self._pending.values())
        self._pending.clear()
        if toks:
            self._events.append(Failed("t", 0, error, toks))


class LineServer:
    """Loopback TCP server: echoes lines back (or, if ``mute``, reads and never answers)."""

    def __init__(self, mute: bool = False) -> None:
        self.mute = mute
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        while not self._stop:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if not self.mute:
                conn.sendall(data)

    def close(self) -> None:
        self._stop = True
        for t in self._threads:
            t.join(2)
        for c in self._conns:
            c.close()
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[LineServer]:
    s = LineServer()
    yield s
    s.close()


@pytest.fixture
def mute() -> Iterator[LineServer]:
    s = LineServer(mute=True)
    yield s
    s.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make(mod: Any, port: int, core_kwargs: dict[str, Any] | None = None, **configs: Any) -> Any:
    cores: list[EchoCore] = []

    class P(mod.KafkaProducer):  # type: ignore[misc,name-defined]
        @staticmethod
        def _make_core(config: Any, now: float) -> EchoCore:
            core = EchoCore(port, **(core_kwargs or {}))
            cores.append(core)
            return core

    p = P(**configs)
    p.cores = cores
    return p


# --- sync --------------------------------------------------------------------


def test_sync_many_records_offsets_and_callbacks(echo: LineServer) -> None:
    p = make(ts, echo.port, max_block_ms=5000)
    seen: list[int] = []
    errs: list[BaseException] = []
    futs = []
    for i in range(20_000):
        f = p.send("t", b"v%d" % i, key=b"k")
        if i % 1000 == 0:
            f.add_callback(lambda md: seen.append(md.offset)).add_errback(errs.append)
        futs.append(f)
    p.flush(timeout=10)
    assert all(f.is_done and f.succeeded() for f in futs)
    assert [f.get().offset for f in futs] == list(range(20_000))
    md = futs[5].get(timeout=1)
    assert md.topic == "t" and md.partition == 0 and md.serialized_key_size == 1
    assert md.serialized_value_size == 2 and md.serialized_header_size == -1
    assert sorted(seen) == list(range(0, 20_000, 1000)) and errs == []
    # a callback added after completion runs at once, on the caller's thread
    late: list[int] = []
    futs[0].add_callback(lambda md: late.append(md.offset))
    assert late == [0]
    assert p.metrics()["producer-metrics"]["record-send-total"] == 20_000.0
    assert p.bootstrap_connected() is True
    assert p.partitions_for("t") == {0}
    p.close()
    p.close()  # idempotent
    assert p.cores[0].closed
    with pytest.raises(IllegalStateError):
        p.send("t", b"x")


def test_sync_send_from_many_threads(echo: LineServer) -> None:
    with make(ts, echo.port) as p:
        futs: list[Any] = []
        lock = threading.Lock()

        def work() -> None:
            mine = [p.send("t", b"x") for _ in range(3000)]
            with lock:
                futs.extend(mine)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        p.flush(10)
        assert sorted(f.get().offset for f in futs) == list(range(12_000))


def test_sync_full_buffer_blocks_then_times_out(mute: LineServer) -> None:
    p = make(ts, mute.port, core_kwargs={"capacity": 10}, max_block_ms=300)
    futs = [p.send("t", b"x") for _ in range(10)]
    t0 = time.monotonic()
    with pytest.raises(KafkaTimeoutError):
        for _ in range(_enough := ts._INBOX_LIMIT + 5):
            p.send("t", b"x")
    assert time.monotonic() - t0 < 5  # hang guard only
    with pytest.raises(KafkaTimeoutError):
        p.flush(timeout=0.2)
    with pytest.raises(KafkaTimeoutError):
        futs[0].get(timeout=0.05)
    p.close(timeout=0.2)
    assert all(f.failed() and isinstance(f.exception, KafkaTimeoutError) for f in futs)


def test_sync_unreachable_bootstrap_fails_within_max_block() -> None:
    p = make(ts, closed_port(), max_block_ms=400)
    t0 = time.monotonic()
    with pytest.raises(KafkaTimeoutError):
        p.send("t", b"x")
    assert time.monotonic() - t0 < 5
    assert p.cores[0].lost and isinstance(p.cores[0].lost[0], OSError)
    p.close()


def test_sync_timer_is_honoured(echo: LineServer) -> None:
    with make(ts, echo.port, core_kwargs={"timer_every": 0.01}) as p:
        p.partitions_for("t")
        time.sleep(0.3)
        assert p.cores[0].timer_calls >= 5


def test_sync_peer_close_reports_connection_lost(echo: LineServer) -> None:
    with make(ts, echo.port) as p:
        p.send("t", b"x").get(5)
        for c in echo._conns:
            c.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        while not p.cores[0].lost and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.cores[0].lost == [None]


def test_sync_serializers_and_type_errors(echo: LineServer) -> None:
    with make(ts, echo.port, value_serializer=lambda v: v.encode(), key_serializer=str.encode) as p:
        md = p.send("t", "héllo", key="k", headers=[("h", b"1")]).get(5)
        assert md.serialized_value_size == len("héllo".encode()) and md.serialized_header_size == 2
    with make(ts, echo.port) as p:
        with pytest.raises(TypeError):
            p.send("t", "not bytes")
        with pytest.raises(TypeError):
            p.send("t", b"v", key=1)
        with pytest.raises(ValueError):
            p.send("t")
        with pytest.raises(TypeError):
            p.send("t", b"v", headers=[("h", "str")])
        assert p.send("t", bytearray(b"ok"), key=memoryview(b"k")).get(5).serialized_key_size == 1

    def boom(_: object) -> bytes:
        raise RuntimeError("serializer says no")

    with make(ts, echo.port, value_serializer=boom) as p:
        with pytest.raises(RuntimeError, match="serializer says no"):
            p.send("t", 1)


# --- asyncio -----------------------------------------------------------------


def test_asyncio_many_records(echo: LineServer) -> None:
    async def main() -> None:
        async with make(ta, echo.port) as p:
            handles = [await p.send("t", b"v") for _ in range(20_000)]
            md = await handles[-1]
            assert md.offset == 19_999
            await p.flush(10)
            assert [h.result().offset for h in handles] == list(range(20_000))
            assert (await p.send_and_wait("t", b"x")).offset == 20_000
            assert p.metrics()["producer-metrics"]["record-send-total"] == 20_001.0
            assert p.bootstrap_connected()
            assert await p.partitions_for("t") == {0}
        assert p.cores[0].closed
        with pytest.raises(IllegalStateError):
            await p.send("t", b"x")
        await p.close()

    asyncio.run(main())


def test_asyncio_full_buffer_and_timeouts(mute: LineServer) -> None:
    async def main() -> None:
        p = make(ta, mute.port, core_kwargs={"capacity": 5}, max_block_ms=300)
        await p.start()
        handles = [await p.send("t", b"x") for _ in range(5)]
        with pytest.raises(KafkaTimeoutError):
            await p.send("t", b"x")
        with pytest.raises(KafkaTimeoutError):
            await p.flush(timeout=0.2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(handles[0], 0.05)  # cancelling a wait leaves the handle usable
        await p.close(timeout=0.1)
        for h in handles:
            with pytest.raises(KafkaTimeoutError):
                await h

    asyncio.run(main())


#: Driver pump rounds a wait may take when nothing answers. Waking the driver on every
#: turn, as the waits once did, spun thousands of rounds in the 0.5 s of these waits.
QUIET_TURNS = 50


async def wait_unanswered(p: Any) -> None:
    """Fill a 5-record buffer nobody answers, then time out a send and a flush: few driver turns."""
    for _ in range(5):
        await p.send("t", b"x")
    core = p.cores[0]
    before = core.turns
    with pytest.raises(KafkaTimeoutError):
        await p.send("t", b"x")
    with pytest.raises(KafkaTimeoutError):
        await p.flush(timeout=0.2)
    assert core.turns - before < QUIET_TURNS, core.turns - before


def test_asyncio_waits_do_not_spin_the_driver(mute: LineServer) -> None:
    """A send blocked on a full buffer and a flush waiting for answers leave the driver asleep."""

    async def main() -> None:
        p = make(ta, mute.port, core_kwargs={"capacity": 5}, max_block_ms=300)
        await p.start()
        await wait_unanswered(p)
        await p.close(timeout=0.1)

    asyncio.run(main())


def test_asyncio_unreachable_bootstrap() -> None:
    async def main() -> None:
        async with make(ta, closed_port(), max_block_ms=300) as p:
            with pytest.raises(KafkaTimeoutError):
                await p.send("t", b"x")

    asyncio.run(asyncio.wait_for(main(), 10))


# --- trio --------------------------------------------------------------------


def test_trio_many_records(echo: LineServer) -> None:
    async def main() -> None:
        async with make(tt, echo.port) as p:
            handles = [await p.send("t", b"v") for _ in range(20_000)]
            assert (await handles[-1]).offset == 19_999
            await p.flush(10)
            assert [(await h).offset for h in handles[:10]] == list(range(10))
            assert (await p.send_and_wait("t", b"x")).offset == 20_000
            assert await p.partitions_for("t") == {0}
            assert p.metrics()["producer-metrics"]["record-send-total"] == 20_001.0
        assert p.cores[0].closed
        with pytest.raises(IllegalStateError):
            await p.send("t", b"x")

    trio.run(main)


def test_trio_full_buffer_cancellation_and_timeouts(mute: LineServer) -> None:
    async def main() -> None:
        async with make(tt, mute.port, core_kwargs={"capacity": 5}, max_block_ms=300) as p:
            handles = [await p.send("t", b"x") for _ in range(5)]
            with pytest.raises(KafkaTimeoutError):
                await p.send("t", b"x")
            with trio.move_on_after(0.05) as scope:
                await handles[0]
            assert scope.cancelled_caught and not handles[0].done()
            with pytest.raises(KafkaTimeoutError):
                await p.flush(timeout=0.1)
            await p.aclose(timeout=0.1)
            for h in handles:
                with pytest.raises(KafkaTimeoutError):
                    await h

    trio.run(main)


def test_trio_waits_do_not_spin_the_driver(mute: LineServer) -> None:
    """As the asyncio test: blocked sends and flushes leave the driver asleep."""

    async def main() -> None:
        async with make(tt, mute.port, core_kwargs={"capacity": 5}, max_block_ms=300) as p:
            await wait_unanswered(p)
            await p.aclose(timeout=0.1)

    trio.run(main)


def test_trio_body_error_fails_pending_and_closes(mute: LineServer) -> None:
    async def main() -> None:
        handles = []
        with pytest.raises(RuntimeError):
            async with make(tt, mute.port) as p:
                handles.append(await p.send("t", b"x"))
                raise RuntimeError("body")
        assert handles[0].done() and isinstance(handles[0].exception(), KafkaError)

    trio.run(main)


# --- misuse and crashes ----------------------------------------------------------


def test_sync_blocking_call_from_a_callback_raises(echo: LineServer) -> None:
    seen: list[BaseException] = []

    def cb(md: Any) -> None:
        try:
            p.flush()
        except IllegalStateError as exc:
            seen.append(exc)

    with make(ts, echo.port) as p:
        p.send("t", b"x").add_callback(cb).get(5)
        p.flush(5)
    assert len(seen) == 1 and "callback" in str(seen[0])


class CrashingCore(EchoCore):
    """Raises on bytes (the driver then drops that connection) and on the loss report: a crash."""

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        raise RuntimeError("core bug")

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        raise RuntimeError("core bug")


def make_crashing(mod: Any, port: int) -> Any:
    class P(mod.KafkaProducer):  # type: ignore[misc,name-defined]
        @staticmethod
        def _make_core(config: Any, now: float) -> EchoCore:
            return CrashingCore(port)

    return P()


def test_sync_crash_fails_pending_and_closes(echo: LineServer) -> None:
    p = make_crashing(ts, echo.port)
    fut = p.send("t", b"x")
    with pytest.raises(KafkaError, match="crashed"):
        fut.get(5)
    with pytest.raises(IllegalStateError):
        p.send("t", b"y")
    p.close()


def test_asyncio_crash_fails_pending_and_closes(echo: LineServer) -> None:
    async def main() -> None:
        p = make_crashing(ta, echo.port)
        await p.start()
        handle = await p.send("t", b"x")
        with pytest.raises(KafkaError, match="crashed"):
            await asyncio.wait_for(handle, 5)
        with pytest.raises(IllegalStateError):
            await p.send("t", b"y")
        await p.close()

    asyncio.run(main())


def test_trio_crash_fails_pending_and_closes(echo: LineServer) -> None:
    async def main() -> None:
        async with make_crashing(tt, echo.port) as p:
            handle = await p.send("t", b"x")
            with trio.fail_after(5):
                with pytest.raises(KafkaError, match="crashed"):
                    await handle
            with pytest.raises(IllegalStateError):
                await p.send("t", b"y")

    trio.run(main)


def test_trio_outer_cancel_closes_cleanly(mute: LineServer) -> None:
    async def main() -> None:
        handles = []
        with trio.move_on_after(0.3) as scope:
            async with make(tt, mute.port) as p:
                handles.append(await p.send("t", b"x"))
                await handles[0]  # the mute server never answers
        assert scope.cancelled_caught
        assert handles[0].done() and isinstance(handles[0].exception(), KafkaError)
        with pytest.raises(IllegalStateError):
            await p.send("t", b"y")

    trio.run(main)


def test_asyncio_task_cancel_leaves_producer_usable(echo: LineServer) -> None:
    async def main() -> None:
        async with make(ta, echo.port) as p:
            task = asyncio.ensure_future(p.send_and_wait("t", b"x"))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await p.send_and_wait("t", b"y")).offset >= 0

    asyncio.run(main())


def test_trio_start_in_a_callers_nursery(echo: LineServer) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            p = make(tt, echo.port)
            await p.start(nursery)
            assert (await p.send_and_wait("t", b"x")).offset == 0
            await p.aclose()
            await p.aclose()  # idempotent
            with pytest.raises(IllegalStateError):
                await p.send("t", b"y")
        # the nursery ended on its own: nothing of the producer was left running

    trio.run(main)

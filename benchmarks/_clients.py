"""One benchmark run of one client, in its own process (driven by ``run.py``).

Usage: ``python benchmarks/_clients.py '<json spec>'``. The spec names the
client, the kind of run (``produce``, ``consume``, ``latency``, ``memory``)
and the workload; the process prints one line ``RESULT <json>`` on stdout.

CPU seconds come from ``resource.getrusage(RUSAGE_SELF)`` (every thread of
this process, librdkafka's included) over the timed section only; peak RSS
from ``ru_maxrss``.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PARTITIONS = 4
VALUE_POOL = 256  # distinct values, cycled; so compression sees varied, semi-compressible data
KEY_POOL = 8192


def make_values(size: int) -> list[bytes]:
    """``VALUE_POOL`` values of ``size`` bytes over a 16-letter alphabet (compressible about 2:1)."""
    rng = random.Random(42)
    alphabet = b"abcdefghijklmnop"
    return [bytes(rng.choice(alphabet) for _ in range(size)) for _ in range(VALUE_POOL)]


def make_keys(keyed: bool) -> list[bytes | None]:
    if not keyed:
        return [None] * KEY_POOL
    return [b"key-%08d" % i for i in range(KEY_POOL)]


def cpu_now() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def maxrss_kb() -> int:
    """Peak RSS of this process so far, KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_kb() -> int:
    """Current RSS of this process, KiB (the idle baseline before a timed section)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return maxrss_kb()


TIMERS: list[Timer] = []


class Timer:
    def __enter__(self) -> Timer:
        TIMERS.append(self)
        self.cpu0 = cpu_now()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        user, sys_ = cpu_now()
        self.user = user - self.cpu0[0]
        self.sys = sys_ - self.cpu0[1]
        self.cpu = self.user + self.sys


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


# --- producer settings, mapped per client -----------------------------------------


def kproto_producer_conf(spec: dict[str, Any]) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap_servers": spec["bootstrap"], "acks": 1}
    conf["linger_ms"] = spec["linger_ms"]
    conf["batch_size"] = spec["batch_size"]
    if spec.get("compression"):
        conf["compression_type"] = spec["compression"]
    return conf


def kafka_python_producer_conf(spec: dict[str, Any]) -> dict[str, Any]:
    # kafka-python spells the options as kproto does.
    return kproto_producer_conf(spec)


def aiokafka_producer_conf(spec: dict[str, Any]) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap_servers": spec["bootstrap"],
        "acks": 1,
        "linger_ms": spec["linger_ms"],
        "max_batch_size": spec["batch_size"],
    }
    if spec.get("compression"):
        conf["compression_type"] = spec["compression"]
    return conf


def confluent_producer_conf(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "bootstrap.servers": spec["bootstrap"],
        "acks": 1,
        "linger.ms": spec["linger_ms"],
        "batch.size": spec["batch_size"],
        "compression.type": spec.get("compression") or "none",
        "enable.idempotence": False,
    }


# --- produce (throughput and memory) ---------------------------------------------


def produce_sync_like(
    make: Callable[[], Any], spec: dict[str, Any], metadata: Callable[[Any], Any]
) -> dict[str, Any]:
    """kproto sync and kafka-python: same API shape."""
    n, topic = spec["count"], spec["topic"]
    values, keys = make_values(spec["value_size"]), make_keys(spec["keyed"])
    p = make()
    metadata(p)
    idle = rss_kb()
    send = p.send
    with Timer() as t:
        fut = None
        for i in range(n):
            fut = send(topic, values[i & 255], keys[i & 8191])
        p.flush()
    peak = maxrss_kb()
    if fut is not None:
        fut.get(timeout=30)
    p.close()
    return {"wall": t.wall, "cpu": t.cpu, "idle_rss_kb": idle, "peak_rss_kb": peak}


def produce_kproto_sync(spec: dict[str, Any]) -> dict[str, Any]:
    from transports.sync import KafkaProducer

    conf = kproto_producer_conf(spec)
    return produce_sync_like(lambda: KafkaProducer(**conf), spec, lambda p: p.partitions_for(spec["topic"]))


def produce_kafka_python(spec: dict[str, Any]) -> dict[str, Any]:
    from kafka import KafkaProducer

    conf = kafka_python_producer_conf(spec)
    return produce_sync_like(lambda: KafkaProducer(**conf), spec, lambda p: p.partitions_for(spec["topic"]))


def produce_confluent(spec: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Producer

    n, topic = spec["count"], spec["topic"]
    values, keys = make_values(spec["value_size"]), make_keys(spec["keyed"])
    p = Producer(confluent_producer_conf(spec))
    p.list_topics(topic, timeout=20)
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)

    p.produce(topic, values[0], on_delivery=on_delivery)  # the connection to each leader is made lazily
    p.flush(20)
    idle = rss_kb()
    produce, poll = p.produce, p.poll
    with Timer() as t:
        for i in range(n):
            try:
                produce(topic, values[i & 255], keys[i & 8191])
            except BufferError:  # librdkafka's queue is full: serve callbacks until there is room
                while True:
                    poll(0.005)
                    try:
                        produce(topic, values[i & 255], keys[i & 8191])
                        break
                    except BufferError:
                        pass
            if not i & 1023:
                poll(0)
        p.flush()
    peak = maxrss_kb()
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, first {errors[0]}")
    return {"wall": t.wall, "cpu": t.cpu, "idle_rss_kb": idle, "peak_rss_kb": peak, "warmup_records": 1}


def produce_aiokafka(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def main() -> dict[str, Any]:
        n, topic = spec["count"], spec["topic"]
        values, keys = make_values(spec["value_size"]), make_keys(spec["keyed"])
        p = AIOKafkaProducer(**aiokafka_producer_conf(spec))
        await p.start()
        try:
            await p.partitions_for(topic)
            idle = rss_kb()
            send = p.send
            with Timer() as t:
                fut = None
                for i in range(n):
                    fut = await send(topic, values[i & 255], keys[i & 8191])
                await p.flush()
            peak = maxrss_kb()
            if fut is not None:
                await fut
        finally:
            await p.stop()
        return {"wall": t.wall, "cpu": t.cpu, "idle_rss_kb": idle, "peak_rss_kb": peak}

    return asyncio.run(main())


async def _produce_kproto_async(producer_cls: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """kproto's asyncio and trio producers: the same code under either event loop."""
    n, topic = spec["count"], spec["topic"]
    values, keys = make_values(spec["value_size"]), make_keys(spec["keyed"])
    async with producer_cls(**kproto_producer_conf(spec)) as p:
        await p.partitions_for(topic)
        idle = rss_kb()
        send = p.send
        with Timer() as t:
            h = None
            for i in range(n):
                h = await send(topic, values[i & 255], keys[i & 8191])
            await p.flush()
        peak = maxrss_kb()
        if h is not None:
            await h
    return {"wall": t.wall, "cpu": t.cpu, "idle_rss_kb": idle, "peak_rss_kb": peak}


def produce_kproto_asyncio(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from transports.asyncio import KafkaProducer

    return asyncio.run(_produce_kproto_async(KafkaProducer, spec))


def produce_kproto_trio(spec: dict[str, Any]) -> dict[str, Any]:
    import trio

    from transports.trio import KafkaProducer

    return trio.run(_produce_kproto_async, KafkaProducer, spec)


# --- consume ------------------------------------------------------------------


def _touch(batches: Any) -> tuple[int, int]:
    n = nbytes = 0
    for recs in batches.values():
        for r in recs:
            k = r.key
            v = r.value
            n += 1
            nbytes += len(v) + (0 if k is None else len(k))
    return n, nbytes


def _consumer_conf(spec: dict[str, Any]) -> dict[str, Any]:
    """kproto and kafka-python spell these options alike."""
    return {
        "bootstrap_servers": spec["bootstrap"],
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }


def consume_kproto_sync(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        from transports.sync import KafkaConsumer  # type: ignore[attr-defined]
    except ImportError:
        from transports._consumer_sync import KafkaConsumer
    from kproto.consumer import TopicPartition

    return _consume_sync_like(lambda: KafkaConsumer(**_consumer_conf(spec)), TopicPartition, spec)


def consume_kafka_python(spec: dict[str, Any]) -> dict[str, Any]:
    from kafka import KafkaConsumer, TopicPartition

    return _consume_sync_like(lambda: KafkaConsumer(**_consumer_conf(spec)), TopicPartition, spec)


def _consume_sync_like(make: Callable[[], Any], tp_cls: Any, spec: dict[str, Any]) -> dict[str, Any]:
    target, topic = spec["count"], spec["topic"]
    c = make()
    tps = [tp_cls(topic, p) for p in range(PARTITIONS)]
    idle = rss_kb()
    n = nbytes = 0
    deadline = time.monotonic() + spec["timeout"]
    with Timer() as t:
        c.assign(tps)
        while n < target:
            got = c.poll(timeout_ms=1000)
            a, b = _touch(got)
            n += a
            nbytes += b
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumed {n} of {target}")
    peak = maxrss_kb()
    c.close()
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "records": n,
        "bytes": nbytes,
        "idle_rss_kb": idle,
        "peak_rss_kb": peak,
    }


def consume_confluent(spec: dict[str, Any]) -> dict[str, Any]:
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    target, topic = spec["count"], spec["topic"]
    c = Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": "bench-" + uuid.uuid4().hex,  # required by librdkafka; no commits are made
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
    idle = rss_kb()
    n = nbytes = 0
    deadline = time.monotonic() + spec["timeout"]
    consume = c.consume
    with Timer() as t:
        c.assign(tps)
        while n < target:
            for m in consume(num_messages=500, timeout=1.0):
                if m.error():
                    raise RuntimeError(str(m.error()))
                k = m.key()
                v = m.value()
                n += 1
                nbytes += len(v) + (0 if k is None else len(k))
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumed {n} of {target}")
    peak = maxrss_kb()
    c.close()
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "records": n,
        "bytes": nbytes,
        "idle_rss_kb": idle,
        "peak_rss_kb": peak,
    }


def consume_aiokafka(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def main() -> dict[str, Any]:
        c = AIOKafkaConsumer(
            bootstrap_servers=spec["bootstrap"],
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await c.start()
        try:
            return await _consume_async_like(c, TopicPartition, spec)
        finally:
            await c.stop()

    return asyncio.run(main())


async def _consume_async_like(c: Any, tp_cls: Any, spec: dict[str, Any]) -> dict[str, Any]:
    target, topic = spec["count"], spec["topic"]
    tps = [tp_cls(topic, p) for p in range(PARTITIONS)]
    idle = rss_kb()
    n = nbytes = 0
    deadline = time.monotonic() + spec["timeout"]
    with Timer() as t:
        c.assign(tps)
        while n < target:
            got = await c.getmany(timeout_ms=1000)
            a, b = _touch(got)
            n += a
            nbytes += b
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumed {n} of {target}")
    peak = maxrss_kb()
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "records": n,
        "bytes": nbytes,
        "idle_rss_kb": idle,
        "peak_rss_kb": peak,
    }


def consume_kproto_asyncio(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from kproto.consumer import TopicPartition
    from transports._consumer_asyncio import KafkaConsumer

    async def main() -> dict[str, Any]:
        async with KafkaConsumer(**_consumer_conf(spec)) as c:
            return await _consume_async_like(c, TopicPartition, spec)

    return asyncio.run(main())


def consume_kproto_trio(spec: dict[str, Any]) -> dict[str, Any]:
    import trio

    from kproto.consumer import TopicPartition
    from transports._consumer_trio import KafkaConsumer

    async def main() -> dict[str, Any]:
        async with KafkaConsumer(**_consumer_conf(spec)) as c:
            return await _consume_async_like(c, TopicPartition, spec)

    return trio.run(main)


# --- latency: fixed offered rate, linger 0, send-to-acknowledgement ------------------


def _latency_result(lat: list[float], sent: int, t: Timer) -> dict[str, Any]:
    if len(lat) != sent:
        raise RuntimeError(f"{len(lat)} of {sent} records acknowledged")
    lat.sort()
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "max_ms": lat[-1] * 1000,
    }


def latency_sync_like(p: Any, spec: dict[str, Any]) -> dict[str, Any]:
    topic, rate, n = spec["topic"], spec["rate"], spec["count"]
    value = make_values(spec["value_size"])[0]
    lat: list[float] = []
    pc = time.perf_counter
    p.partitions_for(topic)
    p.send(topic, value).get(timeout=20)  # connect to the leaders before the clock starts
    for part in range(1, PARTITIONS):
        p.send(topic, value, partition=part).get(timeout=20)
    with Timer() as t:
        start = pc()
        for i in range(n):
            delay = start + i / rate - pc()
            if delay > 0:
                time.sleep(delay)
            t0 = pc()
            p.send(topic, value).add_callback(lambda _md, t0=t0: lat.append(pc() - t0))
        p.flush()
    p.close()
    return _latency_result(lat, n, t)


def latency_kproto_sync(spec: dict[str, Any]) -> dict[str, Any]:
    from transports.sync import KafkaProducer

    return latency_sync_like(KafkaProducer(bootstrap_servers=spec["bootstrap"], acks=1, linger_ms=0), spec)


def latency_kafka_python(spec: dict[str, Any]) -> dict[str, Any]:
    from kafka import KafkaProducer

    return latency_sync_like(KafkaProducer(bootstrap_servers=spec["bootstrap"], acks=1, linger_ms=0), spec)


def latency_confluent(spec: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Producer

    topic, rate, n = spec["topic"], spec["rate"], spec["count"]
    value = make_values(spec["value_size"])[0]
    lat: list[float] = []
    errors: list[Any] = []
    pc = time.perf_counter
    p = Producer(
        {"bootstrap.servers": spec["bootstrap"], "acks": 1, "linger.ms": 0, "enable.idempotence": False}
    )
    p.list_topics(topic, timeout=20)
    for part in range(PARTITIONS):
        p.produce(topic, value, partition=part)
    p.flush(20)

    def make_cb(t0: float) -> Callable[[Any, Any], None]:
        def cb(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                lat.append(pc() - t0)

        return cb

    with Timer() as t:
        start = pc()
        for i in range(n):
            # Serve delivery callbacks while waiting for the next send slot.
            while True:
                delay = start + i / rate - pc()
                if delay <= 0:
                    break
                p.poll(delay)
            t0 = pc()
            p.produce(topic, value, on_delivery=make_cb(t0))
            p.poll(0)
        p.flush()
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, first {errors[0]}")
    return _latency_result(lat, n, t)


def latency_aiokafka(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def main() -> dict[str, Any]:
        topic, rate, n = spec["topic"], spec["rate"], spec["count"]
        value = make_values(spec["value_size"])[0]
        lat: list[float] = []
        pc = time.perf_counter
        p = AIOKafkaProducer(bootstrap_servers=spec["bootstrap"], acks=1, linger_ms=0)
        await p.start()
        try:
            for part in range(PARTITIONS):
                await p.send_and_wait(topic, value, partition=part)
            with Timer() as t:
                start = pc()
                for i in range(n):
                    delay = start + i / rate - pc()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    t0 = pc()
                    fut = await p.send(topic, value)
                    fut.add_done_callback(lambda _f, t0=t0: lat.append(pc() - t0))
                await p.flush()
                await asyncio.sleep(0)  # let the done-callbacks of the last futures run
        finally:
            await p.stop()
        return _latency_result(lat, n, t)

    return asyncio.run(main())


def latency_kproto_asyncio(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from transports.asyncio import KafkaProducer

    async def main() -> dict[str, Any]:
        topic, rate, n = spec["topic"], spec["rate"], spec["count"]
        value = make_values(spec["value_size"])[0]
        lat: list[float] = []
        pc = time.perf_counter

        async def waiter(h: Any, t0: float) -> None:
            await h
            lat.append(pc() - t0)

        async with KafkaProducer(bootstrap_servers=spec["bootstrap"], acks=1, linger_ms=0) as p:
            for part in range(PARTITIONS):
                await p.send_and_wait(topic, value, partition=part)
            tasks = []
            with Timer() as t:
                start = pc()
                for i in range(n):
                    delay = start + i / rate - pc()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    t0 = pc()
                    h = await p.send(topic, value)
                    tasks.append(asyncio.ensure_future(waiter(h, t0)))
                await p.flush()
                await asyncio.gather(*tasks)
        return _latency_result(lat, n, t)

    return asyncio.run(main())


def latency_kproto_trio(spec: dict[str, Any]) -> dict[str, Any]:
    import trio

    from transports.trio import KafkaProducer

    async def main() -> dict[str, Any]:
        topic, rate, n = spec["topic"], spec["rate"], spec["count"]
        value = make_values(spec["value_size"])[0]
        lat: list[float] = []
        pc = time.perf_counter

        async def waiter(h: Any, t0: float) -> None:
            await h.wait()
            lat.append(pc() - t0)

        async with KafkaProducer(bootstrap_servers=spec["bootstrap"], acks=1, linger_ms=0) as p:
            for part in range(PARTITIONS):
                await p.send_and_wait(topic, value, partition=part)
            with Timer() as t:
                async with trio.open_nursery() as nursery:
                    start = pc()
                    for i in range(n):
                        delay = start + i / rate - pc()
                        if delay > 0:
                            await trio.sleep(delay)
                        t0 = pc()
                        h = await p.send(topic, value)
                        nursery.start_soon(waiter, h, t0)
                    await p.flush()
        return _latency_result(lat, n, t)

    return trio.run(main)


RUNNERS: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("kproto-sync", "produce"): produce_kproto_sync,
    ("kproto-asyncio", "produce"): produce_kproto_asyncio,
    ("kproto-trio", "produce"): produce_kproto_trio,
    ("confluent-kafka", "produce"): produce_confluent,
    ("aiokafka", "produce"): produce_aiokafka,
    ("kafka-python", "produce"): produce_kafka_python,
    ("kproto-sync", "consume"): consume_kproto_sync,
    ("kproto-asyncio", "consume"): consume_kproto_asyncio,
    ("kproto-trio", "consume"): consume_kproto_trio,
    ("confluent-kafka", "consume"): consume_confluent,
    ("aiokafka", "consume"): consume_aiokafka,
    ("kafka-python", "consume"): consume_kafka_python,
    ("kproto-sync", "latency"): latency_kproto_sync,
    ("kproto-asyncio", "latency"): latency_kproto_asyncio,
    ("kproto-trio", "latency"): latency_kproto_trio,
    ("confluent-kafka", "latency"): latency_confluent,
    ("aiokafka", "latency"): latency_aiokafka,
    ("kafka-python", "latency"): latency_kafka_python,
}
# The memory workload is a produce run with other counts and settings.
for _client in (
    "kproto-sync",
    "kproto-asyncio",
    "kproto-trio",
    "confluent-kafka",
    "aiokafka",
    "kafka-python",
):
    RUNNERS[(_client, "memory")] = RUNNERS[(_client, "produce")]


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        result = RUNNERS[(spec["client"], spec["kind"])](spec)
        result["ok"] = True
        if TIMERS:
            result["cpu_user"], result["cpu_sys"] = TIMERS[-1].user, TIMERS[-1].sys
    except BaseException as exc:  # report any failure to the parent as data
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result.setdefault("records", spec.get("count"))
    print("RESULT " + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

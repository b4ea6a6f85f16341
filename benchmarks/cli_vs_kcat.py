"""The ``kproto`` command next to a kcat equivalent on librdkafka's Python client, same broker, same run.

Three jobs, each a fresh process timed from start to exit (start-up included,
as a user sees it), interleaved kproto / librdkafka, median of ``--rounds``:

1. produce N lines of a file (100-byte values) to a new 4-partition topic;
2. consume them back from the beginning to the end of every partition,
   printing ``%p:%o %v`` per record (kcat ``-C -e -f '%p:%o %s\\n'``);
3. the lag of a group that committed half of them, per partition.

The librdkafka side is what kcat does, written with ``confluent_kafka``
(kcat itself is not installed here): a Producer fed line by line, a Consumer
assigned every partition with ``enable.partition.eof``, and committed offsets
plus watermarks for the lag. Python runs as installed, with its bytecode cached
(in a temporary ``PYTHONPYCACHEPREFIX``, warmed before the first round, even
where the environment sets ``PYTHONDONTWRITEBYTECODE``). ::

    python benchmarks/cli_vs_kcat.py                      # starts Tansu
    python benchmarks/cli_vs_kcat.py --bootstrap host:9092 --records 100000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KPROTO = [sys.executable, "-m", "kproto"]
PEER = [sys.executable, str(Path(__file__).resolve()), "--peer"]
#: The processes' environment: bytecode cached outside the tree, as an installed package has it.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "kproto-cli-bench-pycache")


# --- the librdkafka side (run in its own process by --peer JOB) ---------------------------


def peer_produce(bootstrap: str, topic: str, path: str) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1})
    n = 0
    with open(path, "rb") as f:
        for line in f:
            while True:
                try:
                    p.produce(topic, line.rstrip(b"\n"))
                    break
                except BufferError:  # queue full: serve delivery reports, as kcat does
                    p.poll(0.01)
            n += 1
            if not n % 10000:
                p.poll(0)
    p.flush()
    print(f"produced {n} records", file=sys.stderr)


def peer_consume(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kcat-equivalent",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = sys.stdout.buffer
    done: set[int] = set()
    while len(done) < partitions:
        for m in c.consume(10000, 1.0):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done.add(m.partition())
                    continue
                raise SystemExit(str(m.error()))
            out.write(b"%d:%d %s\n" % (m.partition(), m.offset(), m.value() or b""))
    c.close()


def peer_lag(bootstrap: str, topic: str, partitions: int, group: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    total = 0
    print("TOPIC  PARTITION  COMMITTED  END  LAG")
    for tp in committed:
        _low, high = c.get_watermark_offsets(tp, timeout=10)
        lag = None if tp.offset < 0 else max(0, high - tp.offset)
        total += lag or 0
        print(tp.topic, tp.partition, tp.offset, high, lag)
    print(f"total lag {total}")
    c.close()


# --- the driver --------------------------------------------------------------------------


def timed(cmd: list[str], lines: int | None = None) -> float:
    """Wall seconds of ``cmd``; with ``lines``, its stdout must have exactly that many lines."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, env=ENV, check=False)
    secs = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    printed = done.stdout.count(b"\n")
    if lines is not None and printed != lines:
        raise SystemExit(f"{' '.join(cmd)} printed {printed} lines, not {lines}")
    return secs


def run(bootstrap: str, records: int, rounds: int) -> None:
    lines = tempfile.NamedTemporaryFile(prefix="cli-bench-", suffix=".txt", delete=False)
    with lines:
        for i in range(records):
            lines.write(b"%08d " % i + b"x" * 91 + b"\n")  # 100-byte values
    times: dict[str, list[float]] = {}
    warm = "kproto_cli.admin, kproto_cli.consume, kproto_cli.produce, transports._admin_sync, confluent_kafka"
    timed([sys.executable, "-c", f"import transports.sync, transports._consumer_sync, {warm}"])

    def note(job: str, who: str, secs: float) -> None:
        times.setdefault(f"{job}|{who}", []).append(secs)

    for _ in range(rounds):
        for who in ("kproto", "librdkafka"):
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            group = f"bench-{uuid.uuid4().hex[:8]}"
            subprocess.run(
                [*KPROTO, "create-topic", "-b", bootstrap, topic, "-p", "4"],
                check=True,
                stdout=subprocess.DEVNULL,
                cwd=ROOT,
                env=ENV,
            )
            if who == "kproto":
                note(
                    "produce",
                    who,
                    timed([*KPROTO, "produce", "-b", bootstrap, topic, "-q", "-l", lines.name]),
                )
                note(
                    "consume",
                    who,
                    timed([*KPROTO, "consume", "-b", bootstrap, topic, "-e", "-f", "%p:%o %v\\n"], records),
                )
            else:
                note("produce", who, timed([*PEER, "produce", bootstrap, topic, lines.name]))
                note("consume", who, timed([*PEER, "consume", bootstrap, topic, "4"], records))
            # a group that committed half (by kproto: the same commit for both lag readers)
            subprocess.run(
                [*KPROTO, "consume", "-b", bootstrap, topic, "-G", group, "-n", str(records // 2)],
                check=True,
                stdout=subprocess.DEVNULL,
                cwd=ROOT,
                env=ENV,
            )
            if who == "kproto":
                note("lag", who, timed([*KPROTO, "lag", "-b", bootstrap, group]))
            else:
                note("lag", who, timed([*PEER, "lag", bootstrap, topic, "4", group]))
    Path(lines.name).unlink()
    print(
        f"broker {bootstrap}; {records:,} lines of 100 bytes, 4 partitions; wall seconds per process, "
        f"median of {rounds}"
    )
    print(f"{'job':<10}{'kproto':>10}{'librdkafka':>12}{'ratio':>8}")
    for job in ("produce", "consume", "lag"):
        k = statistics.median(times[f"{job}|kproto"])
        c = statistics.median(times[f"{job}|librdkafka"])
        print(f"{job:<10}{k:>10.2f}{c:>12.2f}{k / c:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bootstrap", help="use this broker instead of starting Tansu")
    ap.add_argument("--peer", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        job, *rest = args.peer
        if job == "produce":
            peer_produce(rest[0], rest[1], rest[2])
        elif job == "consume":
            peer_consume(rest[0], rest[1], int(rest[2]))
        else:
            peer_lag(rest[0], rest[1], int(rest[2]), rest[3])
        return
    if args.bootstrap:
        run(args.bootstrap, args.records, args.rounds)
        return
    sys.path.insert(0, str(ROOT))
    from kproto_cli.demo import tansu_broker

    with tansu_broker() as bootstrap:
        run(bootstrap, args.records, args.rounds)


if __name__ == "__main__":
    main()

"""Record codec throughput: kproto vs kafka-python (pure Python) vs aiokafka (C).

Workload (TESTING.md's standard one): batches of 1,000 records, 100-byte
values, null keys, no headers, no compression.

- build: records/s appending 1,000 records one call at a time and sealing
  the batch to bytes.
- read: records/s parsing a batch (kproto: ``read_batches`` + ``Record``
  NamedTuples; the second kproto row reads plain tuples with
  ``record_tuples()``, the consumer's path), checking its CRC (kproto's default
  ``check_crcs=True``; the peers' ``validate_crc()``, as their consumers do
  with check_crcs) and iterating every record touching offset, timestamp,
  key and value.

Implementations run interleaved (A B C A B C ...) for several repetitions;
the table shows the median, the CPU seconds per million records (from
``resource.getrusage``) and kproto's ratio to each peer.

Run: python benchmarks/codec.py [--reps 7] [--batches 200]
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aiokafka.record._crecords.default_records import DefaultRecordBatch as AioBatch  # noqa: E402
from aiokafka.record._crecords.default_records import DefaultRecordBatchBuilder as AioBuilder  # noqa: E402
from kafka.record.default_records import DefaultRecordBatch as KpBatch  # noqa: E402
from kafka.record.default_records import DefaultRecordBatchBuilder as KpBuilder  # noqa: E402

from kproto.protocol.records import RecordBatchBuilder, read_batches  # noqa: E402

RECORDS = 1000
VALUE = b"v" * 100
TS = 1_700_000_000_000


def kproto_build() -> bytes:
    builder = RecordBatchBuilder(size_limit=1 << 20)
    append = builder.append
    for i in range(RECORDS):
        append(TS + i, None, VALUE)
    return builder.seal()


def kproto_read(data: bytes) -> int:
    n = 0
    for batch in read_batches(data):
        for r in batch:
            r.offset, r.timestamp, r.key, r.value  # noqa: B018
            n += 1
    return n


def kproto_read_tuples(data: bytes) -> int:
    n = 0
    for batch in read_batches(data):
        for offset, timestamp, _, key, value, _ in batch.record_tuples():  # noqa: B007
            n += 1
    return n


def _peer_build(cls: type) -> Callable[[], bytes]:
    def build() -> bytes:
        builder = cls(
            magic=2,
            compression_type=0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 20,
        )
        append = builder.append
        for i in range(RECORDS):
            append(i, TS + i, None, VALUE, [])
        return bytes(builder.build())

    return build


def _peer_read(cls: type) -> Callable[[bytes], int]:
    def read(data: bytes) -> int:
        batch = cls(data)
        if not batch.validate_crc():
            raise AssertionError("bad crc")
        n = 0
        for r in batch:
            r.offset, r.timestamp, r.key, r.value  # noqa: B018
            n += 1
        return n

    return read


IMPLS: dict[str, tuple[Callable[[], bytes], Callable[[bytes], int]]] = {
    "kproto (pure Python)": (kproto_build, kproto_read),
    "kproto, record_tuples()": (kproto_build, kproto_read_tuples),
    "kafka-python 3.0 (pure Python)": (_peer_build(KpBuilder), _peer_read(KpBatch)),
    "aiokafka 0.14 (C extension)": (_peer_build(AioBuilder), _peer_read(AioBatch)),
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _measure(fn: Callable[[], object], batches: int) -> tuple[float, float]:
    """Return (records/s, CPU s per million records) for ``batches`` calls."""
    c0, t0 = _cpu(), time.perf_counter()
    for _ in range(batches):
        fn()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    total = batches * RECORDS
    return total / wall, cpu / total * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()

    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    data = {name: build() for name, (build, _) in IMPLS.items()}
    for name, (_, read) in IMPLS.items():  # every reader gets every writer's bytes
        for src in data.values():
            assert read(src) == RECORDS, (name, "cannot read a peer's batch")
    for _ in range(args.reps):
        for name, (build, read) in IMPLS.items():
            samples.setdefault((name, "build"), []).append(_measure(build, args.batches))
            blob = data[name]
            samples.setdefault((name, "read"), []).append(
                _measure(functools.partial(read, blob), args.batches)
            )

    def med(name: str, op: str) -> tuple[float, float]:
        s = samples[(name, op)]
        return statistics.median(x[0] for x in s), statistics.median(x[1] for x in s)

    ours = "kproto (pure Python)"
    print(
        f"python {sys.version.split()[0]}, {RECORDS} records x {len(VALUE)} B values per batch, "
        f"{args.batches} batches x {args.reps} reps, median\n"
    )
    print(
        "| implementation | build rec/s | build CPU s/M | read rec/s | read CPU s/M | kproto/peer build | kproto/peer read |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    kb, kr = med(ours, "build")[0], med(ours, "read")[0]
    for name in IMPLS:
        (b, bc), (r, rc) = med(name, "build"), med(name, "read")
        ratio_b = "-" if name.startswith("kproto") else f"{kb / b:.2f}x"
        ratio_r = "-" if name.startswith("kproto") else f"{kr / r:.2f}x"
        print(f"| {name} | {b:,.0f} | {bc:.3f} | {r:,.0f} | {rc:.3f} | {ratio_b} | {ratio_r} |")


if __name__ == "__main__":
    main()

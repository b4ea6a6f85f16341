"""Instructions per record of a client run under callgrind: a figure the machine's load cannot move.

CPU seconds per record (``run.py``) move 15-20% between runs of the same code on a
shared 2-core machine; the instructions a run executes do not. This runs
``benchmarks/_clients.py`` of one or more code trees under ``valgrind
--tool=callgrind`` twice, for N1 and N2 records, and prints
``(Ir(N2) - Ir(N1)) / (N2 - N1)``: the instructions per record of the timed
work, with imports and set-up cancelled out. One Tansu broker; produce runs get
a fresh topic each. Under valgrind the threads run one at a time, so a
producer's batching differs from a real run; the same tree repeats to about
+-2-3%.

Usage (a tree is a checkout or a ``git archive`` snapshot; needs valgrind)::

    python benchmarks/instructions.py /tmp/run3,/tmp/now kproto-sync,kproto-asyncio p100
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as R  # noqa: E402

#: (N1, N2) records per workload kind; the rest use DEFAULT. A full collection of the garbage
#: collector that falls inside the window for one tree and not the other is a one-time cost
#: read as a per-record one: at 10,000 -> 50,000 p1k records it read as +6% (Run 8 in
#: RESULTS.md); over 50,000 -> 250,000 one collection more or less weighs about 2%.
COUNTS = {"consume": (50_000, 250_000), "p10k": (2_000, 10_000), "p1k": (50_000, 250_000)}
DEFAULT = (20_000, 100_000)


def instructions(tree: str, spec: dict[str, object]) -> int | None:
    """Ir of one client process of ``tree`` under callgrind, None if the run failed."""
    env = dict(os.environ, PYTHONPATH=tree)
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           os.path.join(tree, "benchmarks", "_clients.py"), json.dumps(spec)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    m = re.search(r"Collected : (\d+)", p.stderr)
    ok = any(line.startswith("RESULT ") and json.loads(line[7:]).get("ok") for line in p.stdout.splitlines())
    return int(m.group(1)) if m and ok else None


def main() -> int:
    trees, clients, kind = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3]
    small, big = COUNTS.get(kind, DEFAULT)
    w = next(x for x in R.WORKLOADS if x.name == kind)
    with R.TansuBroker() as broker:
        topic = "instructions"
        if w.kind == "consume":
            R.create_topic(broker.bootstrap, topic)
            pre = R.Workload("pre", "produce", "", big, w.value_size)
            R.run_child(R.spec_for(pre, "confluent-kafka", broker.bootstrap, topic, 300), 300)
        n = 0
        for tree in trees:
            for client in clients:
                irs = []
                for count in (small, big):
                    if w.kind != "consume":
                        n += 1
                        topic = f"instructions-{n}"
                        R.create_topic(broker.bootstrap, topic)
                    irs.append(instructions(tree, {**R.spec_for(w, client, broker.bootstrap, topic, 600), "count": count}))
                if irs[0] is None or irs[1] is None:
                    print(f"{kind} {client} {tree}: a run failed")
                    continue
                per = (irs[1] - irs[0]) / (big - small)
                print(f"{kind} {client} {tree}: {per:,.0f} instructions/record (Ir {irs[0]:,} / {irs[1]:,})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

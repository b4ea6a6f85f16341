"""Run every atheris harness in this folder for a bounded time.

Usage: ``python fuzz/run.py [--seconds N] [NAME ...]``. Each ``fuzz_*.py``
runs in its own process against a scratch copy of its seed corpus
(``fuzz/corpus/<name>/``), so seeds in the repository stay as committed. A
harness that finds a crash exits non-zero and leaves the input as
``fuzz/crashes/crash-*``; this script then exits non-zero too.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30, help="time per harness (default 30)")
    parser.add_argument("names", nargs="*", help="harnesses to run (default: all)")
    args = parser.parse_args()
    harnesses = sorted(HERE.glob("fuzz_*.py"))
    if args.names:
        harnesses = [h for h in harnesses if h.stem.removeprefix("fuzz_") in args.names or h.stem in args.names]
    if not harnesses:
        print("no harness found", file=sys.stderr)
        return 2
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    failed = []
    for harness in harnesses:
        name = harness.stem.removeprefix("fuzz_")
        with tempfile.TemporaryDirectory(prefix=f"corpus-{name}-") as scratch:
            seeds = HERE / "corpus" / name
            if seeds.is_dir():
                shutil.copytree(seeds, scratch, dirs_exist_ok=True)
            cmd = [
                sys.executable,
                str(harness),
                f"-max_total_time={args.seconds}",
                "-timeout=10",
                "-rss_limit_mb=2048",
                f"-artifact_prefix={crashes}/",
                "-print_final_stats=1",
                scratch,
            ]
            print(f"== {harness.name}: {args.seconds}s", flush=True)
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            stats = [line for line in proc.stdout.splitlines() if line.startswith("stat::") or "Done" in line]
            print("\n".join(stats[-6:]), flush=True)
            if proc.returncode != 0:
                print(proc.stdout[-4000:], flush=True)
                failed.append(harness.name)
    print(f"fuzz: {len(harnesses) - len(failed)} passed, {len(failed)} failed {failed or ''}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

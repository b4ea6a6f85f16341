"""Fuzz a whole Producer core against a scripted cluster whose answers are mutated.

Run: python fuzz/fuzz_producer_core.py -max_total_time=30 fuzz/corpus/producer_core

See ``fuzz/_cores.py`` for the scenario and the invariants checked.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from _cores import run_producer, seeds


def test_one_input(data: bytes) -> None:
    """One scenario; the first bytes choose the options, the rest mutate answers."""
    run_producer(data)


def seed_inputs() -> dict[str, bytes]:
    """The committed starting corpus."""
    return seeds("producer")


if __name__ == "__main__":
    main(test_one_input, seed_inputs)

"""Fuzz a whole ProducerCore against a scripted cluster whose answers are mutated.

Run: python fuzz/fuzz_producer_core.py -max_total_time=30 fuzz/corpus/producer_core
(the scenario and its invariants: fuzz/_cores.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from _cores import run_producer as test_one_input
    from _cores import seeds

if __name__ == "__main__":
    main(test_one_input, lambda: seeds("producer"))

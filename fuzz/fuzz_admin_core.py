"""Fuzz the admin core against a simulated cluster whose answers are mutated.

Run: python fuzz/fuzz_admin_core.py -max_total_time=30 fuzz/corpus/admin_core
(the scenario and its invariants: fuzz/_admin.py).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from _admin import run_admin as test_one_input
    from _admin import seeds

if __name__ == "__main__":
    main(test_one_input, seeds)

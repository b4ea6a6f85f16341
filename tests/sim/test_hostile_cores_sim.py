"""The whole-core fuzz scenarios (fuzz/_cores.py, fuzz/_admin.py) replayed over their committed corpora.

Each input is a seeded sim run with scripted response mutations; the
invariants are asserted inside the scenario (see fuzz/_cores.py, fuzz/_admin.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz"))

import _admin  # noqa: E402
import _cores  # noqa: E402


@pytest.mark.parametrize("kind", ["producer", "consumer"])
def test_corpus_runs_clean(kind: str) -> None:
    seeds = sorted((ROOT / "fuzz" / "corpus" / f"{kind}_core").iterdir())
    assert len(seeds) >= 10
    run = getattr(_cores, f"run_{kind}")
    for seed in seeds:
        run(seed.read_bytes())


def test_admin_corpus_runs_clean() -> None:
    seeds = sorted((ROOT / "fuzz" / "corpus" / "admin_core").iterdir())
    assert len(seeds) >= 10
    for seed in seeds:
        _admin.run_admin(seed.read_bytes())

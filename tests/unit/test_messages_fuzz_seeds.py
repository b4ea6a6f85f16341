"""The message fuzz harnesses run clean over their committed seed corpora."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _harness(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_harness_{name}", ROOT / "fuzz" / f"fuzz_{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["responses", "frames"])
def test_seed_corpus_runs_clean(name: str) -> None:
    harness = _harness(name)
    seeds = sorted((ROOT / "fuzz" / "corpus" / name).iterdir())
    assert len(seeds) > 100
    for seed in seeds:
        harness.test_one_input(seed.read_bytes())


@pytest.mark.parametrize("name", ["responses", "frames"])
def test_committed_seeds_match_the_generator(name: str) -> None:
    """Seeds are encoded examples; they change only when the encoders do.

    (Running a harness directly on ``fuzz/corpus/<name>`` adds the units it
    finds there, so extra files are allowed.)
    """
    harness = _harness(name)
    expected = harness.seed_inputs()
    on_disk = {p.name: p.read_bytes() for p in (ROOT / "fuzz" / "corpus" / name).iterdir()}
    assert {k: on_disk.get(k) for k in expected} == expected


def test_harness_edge_inputs() -> None:
    responses = _harness("responses")
    frames = _harness("frames")
    for data in (b"", b"\x00", b"\xff\xff", b"\x03\x09" + b"\xff" * 40, bytes(range(256))):
        responses.test_one_input(data)
        frames.test_one_input(data)
    # A frame whose declared size is over the harness's limit is rejected
    # the same way whole and chunked.
    frames.test_one_input(b"\x00\x00\x02" + (1 << 20).to_bytes(4, "big") + b"x" * 8)

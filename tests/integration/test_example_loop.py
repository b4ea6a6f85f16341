"""examples/selectors_loop.py produces a record to the real broker; kafka-python reads it back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from kafka import KafkaConsumer, TopicPartition

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "selectors_loop.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("selectors_loop_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_example_produces_a_readable_record(bootstrap: str, topic: str) -> None:
    example = _load_example()
    partition, offset = example.produce_one(bootstrap, topic, b"hello from selectors")
    assert (partition, offset) == (0, 0)

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records = []
        for _ in range(20):
            batch = consumer.poll(timeout_ms=500)
            records.extend(batch.get(tp, []))
            if records:
                break
    finally:
        consumer.close()
    assert [r.value for r in records] == [b"hello from selectors"]
    assert records[0].offset == 0


def test_example_reports_no_brokers_available() -> None:
    from _broker import free_port

    from kproto.errors import NoBrokersAvailable

    example = _load_example()
    with pytest.raises(NoBrokersAvailable):
        example.produce_one(f"127.0.0.1:{free_port()}", "t", b"x", bootstrap_timeout=0.5)


def test_example_runs_as_a_script(bootstrap: str, topic: str) -> None:
    import os
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLE.parents[1]), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), bootstrap, topic, "scripted"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLE.parents[1],
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"produced to {topic}[0] at offset 0"

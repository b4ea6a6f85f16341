"""A kafka-python 3 program runs on kproto with only its import line changed (issue 11 item 2).

``examples/kafka_python_program.py`` is written for kafka-python (producer
with callbacks and serializers, consumer iteration in a group, commits, end
offsets). It runs once as written, on kafka-python itself, and once with
``from kafka import`` replaced by ``from transports.sync import``; both runs
must pass the program's own checks and print the same summary, on Tansu and
on Apache Kafka.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = (ROOT / "examples" / "kafka_python_program.py").read_text()
IMPORT = "from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition, errors\n"


def _run(source: str, bootstrap: str, topic: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", source, bootstrap, topic, f"g-{uuid.uuid4().hex[:10]}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


@pytest.mark.parametrize("client", ["kafka-python", "kproto"])
def test_kafka_python_program_runs_with_only_its_imports_changed(bootstrap: str, topic: str, client: str) -> None:
    """On Tansu and on Apache Kafka (the ``broker`` parametrization)."""
    assert PROGRAM.count(IMPORT) == 1
    source = PROGRAM if client == "kafka-python" else PROGRAM.replace(IMPORT, IMPORT.replace("kafka", "transports.sync", 1))
    assert source.count("\nfrom kafka") == (1 if client == "kafka-python" else 0)
    summary = _run(source, bootstrap, topic)
    assert summary == {"records": 21, "partitions": summary["partitions"], "end_offsets": 21}
    assert summary["partitions"] >= 1

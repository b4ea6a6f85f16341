"""kafka-python's names from each transport module, one TopicPartition (issue 11 item 2)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import kproto.consumer
from transports._common import RecordMetadata
from transports._names import KAFKA_PYTHON_NAMES

kafka_errors = pytest.importorskip("kafka.errors")
ROOT = Path(__file__).resolve().parents[2]
TRANSPORTS = ("transports.sync", "transports.asyncio", "transports.trio")


@pytest.mark.parametrize("module", TRANSPORTS)
def test_each_transport_exports_kafka_pythons_names(module: str) -> None:
    mod = importlib.import_module(module)
    namespace: dict[str, object] = {}
    exec(f"from {module} import {', '.join(KAFKA_PYTHON_NAMES)}", namespace)  # the import line a user writes
    assert set(KAFKA_PYTHON_NAMES) <= set(mod.__all__)
    assert namespace["TopicPartition"] is kproto.consumer.TopicPartition
    assert namespace["OffsetAndMetadata"] is kproto.consumer.OffsetAndMetadata
    assert namespace["ConsumerRebalanceListener"] is kproto.consumer.ConsumerRebalanceListener
    assert namespace["ConsumerRecord"] is kproto.consumer.ConsumerRecord
    assert namespace["RecordMetadata"] is RecordMetadata
    assert namespace["KafkaConsumer"].__module__.startswith("transports._consumer_")
    assert namespace["KafkaProducer"].__module__ == module


@pytest.mark.parametrize("module", TRANSPORTS)
def test_errors_has_every_kafka_python_exception_name(module: str) -> None:
    errors = importlib.import_module(module).errors
    theirs = {n: c for n, c in vars(kafka_errors).items() if inspect.isclass(c) and issubclass(c, BaseException)}
    missing = sorted(n for n in theirs if not (inspect.isclass(getattr(errors, n, None)) and issubclass(getattr(errors, n), BaseException)))
    assert not missing, f"kafka.errors names missing from {module}.errors: {missing}"
    # Broker errors keep kafka-python's codes under the same names.
    for name, cls in theirs.items():
        code = getattr(cls, "errno", None)
        if isinstance(code, int) and code > 0:
            assert getattr(errors, name).errno == code, name
    assert errors.for_code(3) is errors.UnknownTopicOrPartitionError


def test_one_user_facing_topic_partition_class() -> None:
    """Only kproto/types.py defines TopicPartition (the generated wire structs of
    kproto/protocol/messages are a different thing: schema structs, not values for users)."""
    defined = []
    for path in [*(ROOT / "kproto").rglob("*.py"), *(ROOT / "transports").rglob("*.py")]:
        if "messages" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        defined += [str(path.relative_to(ROOT)) for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "TopicPartition"]
    assert defined == ["kproto/types.py"]
    tp = RecordMetadata("t", 1, kproto.consumer.TopicPartition("t", 1), 0, 0, None, -1, -1, -1).topic_partition
    assert {tp: 1}[kproto.consumer.TopicPartition("t", 1)] == 1

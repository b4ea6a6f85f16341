"""kafka-python's names that every transport module exports beside its facades (issue 11 item 2).

``from transports.sync import KafkaConsumer, TopicPartition, OffsetAndMetadata``
works as ``from kafka import ...`` does, and the same names come from
``transports.asyncio`` and ``transports.trio``. The consumer's value types are
looked up on first use (the transport modules' ``__getattr__``), so importing a
producer does not import the consumer package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KAFKA_PYTHON_NAMES", "LAZY_NAMES", "kafka_python_name"]

#: The names each transport module exports, facades included.
KAFKA_PYTHON_NAMES = (
    "KafkaProducer",
    "KafkaConsumer",
    "TopicPartition",
    "OffsetAndMetadata",
    "ConsumerRebalanceListener",
    "RecordMetadata",
    "ConsumerRecord",
    "errors",
)
#: ``name -> module`` of the names loaded on first use (the consumer's value types).
LAZY_NAMES: dict[str, str] = {
    "OffsetAndMetadata": "kproto.consumer",
    "ConsumerRebalanceListener": "kproto.consumer",
    "ConsumerRecord": "kproto.consumer",
}
_CONSUMER_NAMES = frozenset(LAZY_NAMES)


def kafka_python_name(module: str, name: str) -> Any:
    """The value of ``name`` for a transport module's ``__getattr__``.

    Raises:
        AttributeError: ``name`` is not one of the shared names.
    """
    if name in _CONSUMER_NAMES:
        import kproto.consumer

        return getattr(kproto.consumer, name)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")

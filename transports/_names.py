"""kafka-python's names that every transport module exports beside its facades (issue 11 item 2).

``from transports.sync import KafkaConsumer, TopicPartition, OffsetAndMetadata``
works as ``from kafka import ...`` does, and the same names come from
``transports.asyncio`` and ``transports.trio``. The consumer's value types are
looked up on first use (:data:`LAZY_NAMES`, handed to each transport module's
``lazy_exports`` ``__getattr__``), so importing a producer does not import the
consumer package.
"""

from __future__ import annotations

__all__ = ["KAFKA_PYTHON_NAMES", "LAZY_NAMES"]

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

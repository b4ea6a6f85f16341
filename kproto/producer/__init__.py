"""The sans-I/O producer core.

:class:`ProducerCore` turns ``send()`` calls into Produce requests through a
:class:`kproto.client.Client` and reports :class:`RecordsDelivered` and
:class:`DeliveryFailed` events; the facades in ``transports/`` drive it.
"""

from __future__ import annotations

from kproto.producer.config import ProducerConfig
from kproto.producer.core import ProducerCore, validate_topic
from kproto.producer.events import BatchOutcome, DeliveryFailed, ProducerEvent, RecordsDelivered
from kproto.producer.partitioner import DefaultPartitioner, StickyPartitioner, murmur2
from kproto.producer.transactions import TransactionOp

__all__ = [
    "BatchOutcome",
    "DefaultPartitioner",
    "DeliveryFailed",
    "ProducerConfig",
    "ProducerCore",
    "ProducerEvent",
    "RecordsDelivered",
    "StickyPartitioner",
    "TransactionOp",
    "murmur2",
    "validate_topic",
]

"""The sans-I/O producer core.

:class:`ProducerCore` turns ``send()`` calls into Produce requests through a
:class:`kproto.client.Client` and reports :class:`RecordsDelivered` and
:class:`DeliveryFailed` events; the facades in ``transports/`` drive it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kproto._lazy import lazy_names
from kproto.producer.events import BatchOutcome, DeliveryFailed, ProducerEvent, RecordsDelivered

if TYPE_CHECKING:
    from kproto.producer.config import ProducerConfig
    from kproto.producer.core import ProducerCore, validate_topic
    from kproto.producer.partitioner import DefaultPartitioner, StickyPartitioner, murmur2
    from kproto.producer.transactions import TransactionOp

#: Names loaded on first use (PEP 562): the facades import the events at
#: import time and the core only when a producer is built.
_LAZY = {
    "DefaultPartitioner": "kproto.producer.partitioner",
    "ProducerConfig": "kproto.producer.config",
    "ProducerCore": "kproto.producer.core",
    "StickyPartitioner": "kproto.producer.partitioner",
    "TransactionOp": "kproto.producer.transactions",
    "murmur2": "kproto.producer.partitioner",
    "validate_topic": "kproto.producer.core",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)

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

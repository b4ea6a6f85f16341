"""The sans-I/O consumer core: positions, fetching, offsets, commits and group membership.

See :mod:`kproto.consumer.core` for the driving surface and a map of the
parts: :mod:`~kproto.consumer.positions`, :mod:`~kproto.consumer.offsets`,
:mod:`~kproto.consumer.fetch_sessions`, the record decoder
:mod:`~kproto.consumer.fetcher`, group membership
:mod:`~kproto.consumer.group` and :mod:`~kproto.consumer.assignors`.
"""

from __future__ import annotations

from kproto.consumer.assignors import (
    CooperativeStickyAssignor,
    RangePartitionAssignor,
    RoundRobinPartitionAssignor,
)
from kproto.consumer.config import ConsumerConfig
from kproto.consumer.group import ConsumerRebalanceListener
from kproto.consumer.types import *  # noqa: F403  # its __all__: records, offsets, events
from kproto.consumer.types import __all__ as _types_all

__all__ = [
    *_types_all,
    "ConsumerConfig",
    "ConsumerRebalanceListener",
    "CooperativeStickyAssignor",
    "RangePartitionAssignor",
    "RoundRobinPartitionAssignor",
]

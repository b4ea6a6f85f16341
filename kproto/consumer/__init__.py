"""The sans-I/O consumer core: positions, fetching, offsets, commits and group membership.

See :mod:`kproto.consumer.core` for the driving surface and a map of the
parts: :mod:`~kproto.consumer.positions`, :mod:`~kproto.consumer.offsets`,
:mod:`~kproto.consumer.fetch_sessions`, the record decoder
:mod:`~kproto.consumer.fetcher`, group membership
:mod:`~kproto.consumer.group` and :mod:`~kproto.consumer.assignors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kproto._lazy import lazy_names
from kproto.consumer.types import *  # noqa: F403  # its __all__: records, offsets, events
from kproto.consumer.types import __all__ as _types_all

if TYPE_CHECKING:
    from kproto.consumer.assignors import (
        CooperativeStickyAssignor,
        RangePartitionAssignor,
        RoundRobinPartitionAssignor,
    )
    from kproto.consumer.config import ConsumerConfig
    from kproto.consumer.group import ConsumerRebalanceListener

#: Names loaded on first use (PEP 562), so that importing :mod:`kproto.consumer.types`
#: (the producer's observer and hooks do) does not load the group machinery, its
#: request messages and the assignors into a process that only produces.
_LAZY = {
    "ConsumerConfig": "kproto.consumer.config",
    "ConsumerRebalanceListener": "kproto.consumer.group",
    "CooperativeStickyAssignor": "kproto.consumer.assignors",
    "RangePartitionAssignor": "kproto.consumer.assignors",
    "RoundRobinPartitionAssignor": "kproto.consumer.assignors",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)

__all__ = [
    *_types_all,
    "ConsumerConfig",
    "ConsumerRebalanceListener",
    "CooperativeStickyAssignor",
    "RangePartitionAssignor",
    "RoundRobinPartitionAssignor",
]

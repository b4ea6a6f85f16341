"""The admin core: topics, configs, groups, offsets and records, sans I/O.

:class:`AdminCore` is driven like every kproto core (:mod:`kproto.driving`);
its methods return an :class:`AdminOp` whose per-resource results fill in as
the driver feeds it bytes. The value types carry kafka-python 3's names.
"""

from __future__ import annotations

from kproto.admin import types as _types
from kproto.admin.core import AdminConfig, AdminCore, AdminOp
from kproto.admin.types import *  # noqa: F403 - the value types (types.__all__)

__all__ = ["AdminConfig", "AdminCore", "AdminOp"]
__all__ += _types.__all__

"""``KafkaAdminClient`` and the admin types on each transport module, loaded on first use.

The admin client brings the admin core and its request classes, about half a
second of imports on a loaded machine: a producer or consumer import should not
pay for it. :func:`with_admin` wraps a transport module's ``__getattr__`` so
that ``from transports.sync import KafkaAdminClient, NewTopic`` imports the
admin facade then; type checkers see the names through the module's
``if TYPE_CHECKING`` star import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["with_admin"]


def with_admin(getattr_: Callable[[str], Any], module: str) -> Callable[[str], Any]:
    """A module ``__getattr__``: ``getattr_``'s names, then ``KafkaAdminClient`` and the
    admin types (``kproto.admin.types.__all__``) from the facade module ``module``."""

    def __getattr__(name: str) -> Any:
        try:
            return getattr_(name)
        except AttributeError:
            if name.startswith("_"):
                raise
            from kproto.admin import types

            if name != "KafkaAdminClient" and name not in types.__all__:
                raise
            return getattr(importlib.import_module(module), name)

    return __getattr__

"""A request's eventual result (:class:`Pending`), as the consumer's blocking-looking calls return it.

A sans-I/O core cannot block: ``committed()``, ``commit()``, ``list_offsets()``
return a :class:`Pending` at once and complete it from a later driving
input; the facade drives the core until it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from kproto.errors import IllegalStateError

__all__ = ["Pending", "once"]

T = TypeVar("T")


class Pending(Generic[T]):
    """The result of a request the core is working on; done once it has one."""

    __slots__ = ("done", "_value", "_error", "_callbacks")

    def __init__(self) -> None:
        #: True once :meth:`result` returns or raises without waiting.
        self.done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Pending[T]], None]] = []

    def result(self) -> T:
        """The value, or raise the error. Only valid once ``done``."""
        if not self.done:
            raise IllegalStateError("result() before the request finished")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """The error, or None on success (or when not done)."""
        return self._error

    def add_done_callback(self, fn: Callable[[Pending[T]], None]) -> None:
        """Call ``fn(self)`` when done (at once if already done)."""
        if self.done:
            fn(self)
        else:
            self._callbacks.append(fn)

    def set_result(self, value: T) -> None:
        """Complete successfully (first completion wins)."""
        if not self.done:
            self.done = True
            self._value = value
            self._fire()

    def set_error(self, error: BaseException) -> None:
        """Complete with an error (first completion wins)."""
        if not self.done:
            self.done = True
            self._error = error
            self._fire()

    def _fire(self) -> None:
        cbs, self._callbacks = self._callbacks, []
        for fn in cbs:
            fn(self)


def once(fn: Callable[[float], None]) -> Callable[[float], None]:
    """``fn`` wrapped to run only on its first call (it is scheduled two ways)."""
    fired = [False]

    def run(now: float) -> None:
        if not fired[0]:
            fired[0] = True
            fn(now)

    return run

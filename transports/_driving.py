"""The contract every transport driver runs a core by, and the pump they share.

A driver loop does the same four things on every runtime (docs/embedding.md):
commands become connects and closes, bytes are written, the one timer
deadline becomes a sleep, events go to a sink. :func:`pump` is the first,
second and fourth, written once; each runtime's :class:`IO` backend opens,
closes and writes connections its own way (selectors, asyncio protocols,
trio streams), and its loop sleeps until the timer or a wake-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kproto import driving
from kproto.driving import Connect
from kproto.errors import IllegalStateError
from kproto.events import Event
from transports._common import crashed_error

if TYPE_CHECKING:
    from transports._tls import Security

__all__ = ["IO", "Driven", "EventLoopDriver", "Sink", "pump"]

#: Takes a batch of core events (delivery reports...); None: the core's events are not read.
Sink = Callable[[Sequence[Event]], object]


class Driven(driving.Driven, Protocol):
    """A core a transport drives: :class:`kproto.driving.Driven` plus its events."""

    def events(self) -> Sequence[Event]:
        """Events since the last call (drains them)."""


class IO(Protocol):
    """A runtime's connections: what :func:`pump` hands the core's commands and bytes to."""

    def connect(self, cmd: Connect) -> None:
        """Start opening ``cmd.node_id``; report the outcome to the core later."""

    def disconnect(self, node_id: int) -> None:
        """Close ``node_id`` without reporting it lost."""

    def write(self, out: list[tuple[int, bytes]]) -> None:
        """Queue or write these bytes, per node, in order (a node not open drops them)."""


def pump(core: Driven, io: IO, sink: Sink | None) -> None:
    """Commands, bytes and events until the core has nothing more to say.

    Bounded (eight rounds): a sink that keeps feeding the core (the producer's
    queued records) cannot hold the loop away from its sockets.
    """
    for _ in range(8):
        cmds = core.commands()
        for cmd in cmds:
            if type(cmd) is Connect:
                io.connect(cmd)
            else:
                io.disconnect(cmd.node_id)
        out = core.data_to_send()
        if out:
            io.write(out)
        evs = None if sink is None else core.events()
        if evs:
            sink(evs)  # type: ignore[misc]  # evs is None when sink is
        if not cmds and not out and not evs:
            return


class EventLoopDriver:
    """What the asyncio and trio drivers share: settings, the crash rule and :meth:`run_until`.

    Args:
        core: The core (a ``Driven`` one; ``Any`` for the producer's extra calls).
        security: TLS context and async OAUTHBEARER token cache, if any.
        now: The core's clock.
        sink: Takes the core's events (None: they are not read).
        on_crash: Told ``(core, exc, now)`` when the core raises (a bug).
        what: Names the driver in errors ("the producer's driver").
    """

    def __init__(
        self,
        core: Any,
        security: Security | None,
        *,
        now: Callable[[], float],
        sink: Sink | None,
        on_crash: Callable[[Any, BaseException, float], None],
        what: str,
    ) -> None:
        self.core = core
        #: Wrap connections in TLS with this context (``security_protocol`` SSL/SASL_SSL).
        self.ssl_context = security.ssl_context if security is not None else None
        #: An async OAUTHBEARER provider, refreshed before each connection.
        self.token_cache = security.token_cache if security is not None else None
        self.now = now
        self.sink = sink
        self._on_crash = on_crash
        self.what = what
        #: ProducerCore.send_value (the send hot path), None for a core without it.
        self.send_value: Callable[[str, bytes | None, bytes, int, object, float], bool] | None = getattr(
            core, "send_value", None
        )
        #: What killed the driver (a bug); every later call names it.
        self.crashed: BaseException | None = None

    def running(self) -> bool:
        raise NotImplementedError

    async def progress(self, deadline: float | None) -> bool:
        """Wait for the driver's next iteration; False if ``deadline`` (core clock) passed."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def crash(self, exc: BaseException) -> None:
        """The core raised (a bug): fail what is pending, stop, make later calls raise."""
        if self.crashed is None:
            self.crashed = exc
            self._on_crash(self.core, exc, self.now())
        self.stop()

    async def run_until(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Let the driver work until ``done()`` or ``timeout`` seconds; returns ``done()``."""
        deadline = None if timeout is None else self.now() + timeout
        while not done():
            if self.crashed is not None:
                raise crashed_error(self.what, self.crashed)
            if not self.running():
                raise IllegalStateError(f"{self.what} is not running; use 'async with' or start()")
            if not await self.progress(deadline):
                return done()
        return True

"""The contract every transport driver runs a core by, and the pump they share.

A driver loop does the same four things on every runtime (docs/embedding.md):
commands become connects and closes, bytes are written, the one timer
deadline becomes a sleep, events go to a sink. :func:`pump` is the first,
second and fourth, written once; each runtime's :class:`IO` backend opens,
closes and writes connections its own way (selectors, asyncio protocols,
trio streams), and its loop sleeps until the timer or a wake-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kproto import driving
from kproto.driving import Connect

__all__ = ["IO", "Driven", "Sink", "pump"]

#: Takes a batch of core events (delivery reports...); None: the core's events are not read.
Sink = Callable[[list[object]], object]


class Driven(driving.Driven, Protocol):
    """A core a transport drives: :class:`kproto.driving.Driven` plus its events."""

    def events(self) -> list[object]:
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
        evs = core.events() if sink is not None else None
        if evs:
            sink(evs)  # type: ignore[misc]  # not None when evs is
        if not cmds and not out and not evs:
            return

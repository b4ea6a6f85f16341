"""The driving surface every kproto core offers to the loop that drives it.

A core (the cluster client, the producer, the consumer) never touches a
socket or a clock. The driver — a transport in ``transports/`` or your own
loop — does five things, in any order, as often as it likes:

1. opens and closes connections when :meth:`Driven.commands` says so, and
   reports the outcome with :meth:`Driven.connection_made` or
   :meth:`Driven.connection_lost`;
2. feeds every byte read from node ``n`` to :meth:`Driven.receive_data`;
3. writes what :meth:`Driven.data_to_send` returns for each node;
4. calls :meth:`Driven.handle_timer` at or after :meth:`Driven.get_timer`;
5. hands the events from :meth:`Driven.events` to the user.

Every input takes ``now``: seconds on a monotonic clock of the driver's
choice (``time.monotonic()``, a simulated clock...). Deadlines come back on
the same clock.
"""

from __future__ import annotations

from typing import Protocol

import attrs

__all__ = ["ClientDriven", "Close", "Command", "Connect", "Driven"]


@attrs.frozen(kw_only=True, slots=True)
class Connect:
    """Open a TCP connection to a broker; report the result for ``node_id``."""

    #: The core's name for this connection (broker id; bootstrap entries are negative).
    node_id: int
    #: Host name or IP literal (no brackets).
    host: str
    #: TCP port.
    port: int


@attrs.frozen(kw_only=True, slots=True)
class Close:
    """Close the connection to ``node_id``; do not report ``connection_lost`` for it."""

    #: The connection to close.
    node_id: int


Command = Connect | Close


class Driven(Protocol):
    """What a driver may call on a core. See the module docstring."""

    def connection_made(self, node_id: int, now: float) -> None:
        """The connection asked for by ``Connect(node_id)`` is open."""

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        """The connection failed to open, or was closed by the peer or an error."""

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        """Bytes arrived from ``node_id`` (any amount, any split)."""

    def handle_timer(self, now: float) -> None:
        """Called at or after the deadline :meth:`get_timer` gave."""

    def commands(self) -> list[Command]:
        """Connections to open or close, oldest first; drains the list."""

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """Bytes to write, per node, in order; drains the buffers."""

    def get_timer(self) -> float | None:
        """The earliest deadline the core needs a :meth:`handle_timer` call at."""


class ClientDriven:
    """The inputs of a core built on a cluster client (producer, consumer, admin engine).

    Each input is noted (:meth:`_input`; False drops it, as once the core is
    closed), handed to the client, then acted on (:meth:`_after_input`).
    """

    __slots__ = ()

    _client: Driven

    def _input(self, now: float) -> bool:
        """Note an input at ``now`` before the client sees it; False drops the input."""
        raise NotImplementedError

    def _after_input(self, now: float) -> None:
        """Act on what the client's input changed."""
        raise NotImplementedError

    def connection_made(self, node_id: int, now: float) -> None:
        """See :class:`Driven`."""
        if self._input(now):
            self._client.connection_made(node_id, now)
            self._after_input(now)

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        """See :class:`Driven`."""
        if self._input(now):
            self._client.connection_lost(node_id, exc, now)
            self._after_input(now)

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        """See :class:`Driven`."""
        if self._input(now):
            self._client.receive_data(node_id, data, now)
            self._after_input(now)

    def handle_timer(self, now: float) -> None:
        """See :class:`Driven`."""
        if self._input(now):
            self._client.handle_timer(now)
            self._after_input(now)

    def commands(self) -> list[Command]:
        """See :class:`Driven`."""
        return self._client.commands()

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """See :class:`Driven`."""
        return self._client.data_to_send()

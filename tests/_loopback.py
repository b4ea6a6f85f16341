"""The skeleton of the test suite's one-thread loopback servers (``FakeBroker``, ``FaultProxy``).

A listening socket on 127.0.0.1, a selector, a wake-up socketpair and a
daemon thread. Subclasses get ``_accept`` calls for the listener, ``_ready``
for their own registered sockets, ``_tick`` after each select, and
``_teardown`` when the thread ends.
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Any

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """A selector loop on a thread serving ``127.0.0.1:port`` (0: any free port)."""

    #: Seconds a select may sleep when ``_timeout`` says nothing sooner.
    poll_interval = 0.5

    def __init__(self, name: str, port: int = 0, backlog: int = 64) -> None:
        #: Connections accepted so far (a reconnect shows here).
        self.accepted = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(backlog)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-{self.port}", daemon=True)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:port``."""
        return f"127.0.0.1:{self.port}"

    def _start_thread(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the thread; it closes every socket."""
        self._stop = True
        self._wake()
        self._thread.join(5)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    # --- hooks ---------------------------------------------------------------------

    def _accept(self) -> None:
        raise NotImplementedError

    def _ready(self, data: Any, mask: int) -> None:
        """One of the subclass's own sockets (registered with ``data``) is ready."""
        raise NotImplementedError

    def _timeout(self) -> float:
        return self.poll_interval

    def _tick(self) -> None:
        """After each select (and the first thing of each round)."""

    def _teardown(self) -> None:
        """Close the subclass's sockets (the thread is ending)."""

    # --- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop:
                self._tick()
                for key, mask in self._sel.select(self._timeout()):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        try:
                            self._wake_r.recv(4096)
                        except OSError:
                            pass
                    else:
                        self._ready(key.data, mask)
        finally:
            self._teardown()
            self._sel.close()
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

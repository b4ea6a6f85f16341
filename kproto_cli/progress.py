"""A live status line on stderr, shown only when stderr is a terminal.

Piped or redirected, the commands print no progress at all (scripts read
stdout and the exit status); on a terminal one line is rewritten in place at
most four times a second and cleared at the end.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "rate_text"]

#: Seconds between two redraws: often enough to look live, rarely enough to cost nothing.
_INTERVAL = 0.25


def rate_text(records: int, nbytes: int, seconds: float) -> str:
    """``12,345 records, 1.2 MB in 0.50 s (24,690 records/s, 2.5 MB/s)``."""
    secs = max(seconds, 1e-9)
    return (
        f"{records:,} records, {nbytes / 1e6:.1f} MB in {seconds:.2f} s "
        f"({records / secs:,.0f} records/s, {nbytes / secs / 1e6:.1f} MB/s)"
    )


class Progress:
    """The status line; :meth:`due` says when a redraw is worth computing."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._next = self.started + _INTERVAL
        self._shown = False

    def due(self) -> bool:
        """True (at most every 0.25 s) when the line should be redrawn; always False when disabled."""
        if not self.enabled:
            return False
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + _INTERVAL
        return True

    def show(self, records: int, nbytes: int, extra: str = "") -> None:
        """Redraw: records, MB/s, records/s and ``extra`` (the consumer's lag)."""
        secs = max(time.monotonic() - self.started, 1e-9)
        line = f"{records:,} records  {nbytes / secs / 1e6:.1f} MB/s  {records / secs:,.0f} records/s"
        if extra:
            line += "  " + extra
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line (before a summary or an error is printed)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

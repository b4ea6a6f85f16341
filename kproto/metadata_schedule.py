"""When the client fetches cluster metadata next.

A fetch is due ``metadata_max_age_ms`` after the last success, or at once
when one was requested (a new topic, a leadership error, a lost
connection), but never sooner than ``retry_backoff_ms`` after the last
attempt, and never while one is in flight (the Java client's
``Metadata.timeToNextUpdate``). The start of the current run of failed
attempts feeds the KIP-899 re-bootstrap trigger.
"""

from __future__ import annotations

__all__ = ["MetadataSchedule"]

_INF = float("inf")


class MetadataSchedule:
    """Metadata fetch timing; the client sets ``requested`` and reports each attempt."""

    __slots__ = ("attempt_start", "in_flight", "last_attempt", "last_success", "max_age_s", "requested", "retry_backoff_s")

    def __init__(self, retry_backoff_s: float, max_age_s: float) -> None:
        self.retry_backoff_s = retry_backoff_s
        self.max_age_s = max_age_s
        #: A fetch is wanted as soon as the backoff allows (the first one bootstraps the client).
        self.requested = True
        self.in_flight = False
        #: -inf: never.
        self.last_attempt = -_INF
        self.last_success = -_INF
        #: When the current run of attempts began (None: the last one succeeded).
        self.attempt_start: float | None = None

    def due(self) -> float:
        """When the next fetch may go out (inf while one is in flight)."""
        if self.in_flight:
            return _INF
        backoff = self.last_attempt + self.retry_backoff_s
        if self.requested:
            return backoff
        return max(self.last_success + self.max_age_s, backoff)

    def start(self, now: float) -> None:
        """A fetch goes out now."""
        if self.attempt_start is None:
            self.attempt_start = now
        self.in_flight = True
        self.requested = False

    def answered(self, now: float) -> None:
        """The fetch in flight ended (answer or error)."""
        self.in_flight = False
        self.last_attempt = now

    def succeeded(self, now: float) -> None:
        """The answer was taken: the next fetch is due after ``max_age``."""
        self.last_success = now
        self.attempt_start = None

"""When the client may try a broker again, and how long a connection attempt may take.

Reconnect backoff (KIP-144): ``reconnect_backoff_ms`` doubled per consecutive
failure up to ``reconnect_backoff_max_ms``, with +/-20 % jitter from the
client's injected ``random.Random`` (as the Java client's
``ExponentialBackoff``). Setup timeout (KIP-601):
``socket_connection_setup_timeout_ms`` doubled per consecutive failure up to
``socket_connection_setup_timeout_max_ms``; unlike Java without jitter, since
the backoff before each attempt already spreads attempts and an exact value
keeps ``get_timer()`` predictable.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection

import attrs

__all__ = ["ReconnectPolicy", "rebootstrap_reason"]


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """The client's reconnect and connection-setup timing, from its configuration."""

    #: ``reconnect_backoff_ms``.
    backoff_ms: int
    #: ``reconnect_backoff_max_ms``.
    backoff_max_ms: int
    #: The first attempt's setup timeout in ms.
    setup_timeout_ms: int
    #: ``socket_connection_setup_timeout_max_ms``.
    setup_timeout_max_ms: int
    #: Jitter source (the client's).
    rng: random.Random

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures."""
        base = self.backoff_ms
        value = min(base * 2 ** min(failures - 1, 32), self.backoff_max_ms) if base else 0
        return value * self.rng.uniform(0.8, 1.2) / 1000

    def longest_backoff(self) -> float:
        """The longest backoff in seconds (after an authentication failure)."""
        cap = max(self.backoff_max_ms, self.backoff_ms)
        return cap * self.rng.uniform(0.8, 1.2) / 1000

    def setup_timeout(self, failures: int) -> int:
        """The next attempt's setup timeout in ms after ``failures`` consecutive failures."""
        base = self.setup_timeout_ms
        cap = max(base, self.setup_timeout_max_ms)
        return min(base << min(failures, 32), cap)


def rebootstrap_reason(
    strategy: str,
    trigger_ms: int,
    required: bool,
    brokers: Collection[int],
    available: Callable[[int], bool],
    attempt_start: float | None,
    now: float,
) -> str | None:
    """Why the metadata fetch due now should start from ``bootstrap_servers``, or None.

    Only with ``metadata_recovery_strategy='rebootstrap'`` and only while the
    metadata names ``brokers`` (on the bootstrap list already, there is nothing to
    go back to; this also keeps an unreachable bootstrap list from looping).
    """
    if strategy.lower() != "rebootstrap" or not brokers:
        return None
    if required:
        return "a broker answered Metadata with REBOOTSTRAP_REQUIRED (KIP-1102)"
    # KIP-899: a broker is unavailable when it has no connection (ready or
    # being set up) and may not open one yet (reconnect backoff).
    if not any(available(broker_id) for broker_id in brokers):
        return "no broker from the metadata can be reached"
    if attempt_start is not None and now - attempt_start >= trigger_ms / 1000:
        return f"no metadata for {trigger_ms} ms"
    return None

"""Which broker coordinates each group and transactional id, and when to look it up.

The :class:`~kproto.client.Client` owns one :class:`Coordinators`: it asks
for a key's coordinator, sends the FindCoordinator requests this table says
are due, and hands each answer to :meth:`Coordinators.read_answer`, which
turns it into the broker to connect to or the error to retry on or report.
A failed lookup is retried no sooner than ``retry_backoff_ms`` after the
last answer (the Java client's ``FindCoordinator`` backoff); a coordinator
whose connection drops with an error is forgotten and looked up again.
"""

from __future__ import annotations

import attrs

from kproto.errors import CoordinatorNotAvailableError, KafkaError, error_from_code
from kproto.protocol.messages import FindCoordinatorResponse
from kproto.protocol.messages.find_coordinator import Coordinator

__all__ = ["CoordinatorAddress", "CoordinatorKey", "Coordinators"]

#: ``(key_type, key)``: the FindCoordinator KeyType (0 group, 1 transaction) and the id.
CoordinatorKey = tuple[int, str]

#: How an unusable FindCoordinator answer is treated (retriable, look again).
_NO_COORDINATOR = CoordinatorNotAvailableError.errno


@attrs.frozen(slots=True)
class CoordinatorAddress:
    """A usable FindCoordinator answer: the coordinator's broker id and address."""

    broker_id: int
    host: str
    port: int


class Coordinators:
    """Known coordinators by key, and the lookups due or in flight."""

    def __init__(self, retry_backoff_s: float) -> None:
        self._retry_backoff_s = retry_backoff_s
        self._known: dict[CoordinatorKey, int] = {}
        #: Lookups wanted: when the next FindCoordinator may go out (None: one is in flight).
        self._lookups: dict[CoordinatorKey, float | None] = {}
        self._not_before: dict[CoordinatorKey, float] = {}

    def known(self, k: CoordinatorKey) -> int | None:
        """The coordinator's node id, if known."""
        return self._known.get(k)

    def want(self, k: CoordinatorKey, now: float) -> bool:
        """Ask for a lookup of ``k`` (no sooner than its backoff); True if one was not already wanted."""
        if k in self._lookups:
            return False
        self._lookups[k] = max(now, self._not_before.get(k, now))
        return True

    def forget(self, k: CoordinatorKey) -> None:
        """Drop ``k``'s coordinator (NOT_COORDINATOR and friends)."""
        self._known.pop(k, None)

    def forget_node(self, node_id: int) -> None:
        """Drop every key coordinated through ``node_id`` (its connection failed)."""
        for k in [k for k, v in self._known.items() if v == node_id]:
            del self._known[k]

    def pending(self) -> bool:
        """Whether any lookup is wanted or in flight."""
        return bool(self._lookups)

    def next_due(self) -> float | None:
        """The earliest time a wanted lookup may go out (None if none waits)."""
        due = [t for t in self._lookups.values() if t is not None]
        return min(due) if due else None

    def take_due(self, now: float) -> list[CoordinatorKey]:
        """The lookups to send now; they count as in flight until answered."""
        keys = [k for k, due in self._lookups.items() if due is not None and due <= now]
        for k in keys:
            self._lookups[k] = None
        return keys

    def read_answer(
        self, k: CoordinatorKey, response: FindCoordinatorResponse | None, error: KafkaError | None, now: float
    ) -> CoordinatorAddress | KafkaError:
        """What a FindCoordinator answer (or its failure) for ``k`` says; sets the next lookup's backoff.

        A usable answer comes back as its address (the caller then calls
        :meth:`found`); an error code, or an answer without a usable address,
        as the error. A v4+ answer (KIP-699, batched keys) is read for ``k``'s
        entry only.
        """
        self._not_before[k] = now + self._retry_backoff_s
        key = k[1]
        if error is not None:
            return error
        assert response is not None
        answer: FindCoordinatorResponse | Coordinator | None = response
        if response.coordinators:
            answer = next((c for c in response.coordinators if c.key == key), None)
        if answer is None:
            return error_from_code(_NO_COORDINATOR, f"FindCoordinator for {key!r}")
        if answer.error_code != 0:
            return error_from_code(answer.error_code, answer.error_message or f"FindCoordinator for {key!r}")
        if answer.node_id < 0 or not answer.host or not 0 < answer.port < 65536:
            # No usable address (a broker bug): as COORDINATOR_NOT_AVAILABLE, look again after the backoff.
            return error_from_code(_NO_COORDINATOR, f"FindCoordinator for {key!r} named no usable coordinator")
        return CoordinatorAddress(answer.node_id, answer.host, answer.port)

    def found(self, k: CoordinatorKey, node_id: int) -> None:
        """``k``'s coordinator is reached through ``node_id``; its lookup is over."""
        self._known[k] = node_id
        self._lookups.pop(k, None)

    def retry(self, k: CoordinatorKey) -> None:
        """Look ``k`` up again once its backoff is over (a retriable error)."""
        self._lookups[k] = self._not_before[k]

    def give_up(self, k: CoordinatorKey) -> None:
        """End ``k``'s lookup (a non-retriable error the caller reports)."""
        self._lookups.pop(k, None)

    def clear_lookups(self) -> None:
        """Drop every wanted lookup (closing)."""
        self._lookups.clear()

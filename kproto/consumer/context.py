"""What the consumer's parts share: the client, the clock, the error queue and deferred work.

:class:`~kproto.consumer.core.ConsumerCore` builds one :class:`ConsumerContext`
and hands it to its parts (:mod:`~kproto.consumer.fetch_sessions`,
:mod:`~kproto.consumer.offsets`, :mod:`~kproto.consumer.group`), so each
calls methods here instead of reaching into the core. Work that cannot run
now waits here until the core's pump runs it:

* :meth:`ConsumerContext.later`: after ``retry_backoff_ms``;
* :meth:`ConsumerContext.after_metadata`: on the next ``MetadataUpdated``,
  or after the backoff at the latest;
* :meth:`ConsumerContext.with_coordinator`: once the group coordinator is known;
* :meth:`ConsumerContext.defer`: at the start of the next ``poll`` (user
  callbacks such as rebalance listeners run in the user's call, never inside
  a response callback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

from kproto.client import COORDINATOR_GROUP
from kproto.consumer.config import ConsumerConfig
from kproto.consumer.pending import once
from kproto.consumer.types import AnyConsumerEvent, TopicPartition
from kproto.driving import Command
from kproto.errors import BrokerResponseError, KafkaProtocolError
from kproto.events import ClientEvent

if TYPE_CHECKING:
    from kproto.cluster import ClusterMetadata
    from kproto.connection import R, ResponseCallback
    from kproto.protocol.message import Request

__all__ = ["GROUP_KEY_TYPE", "ClientLike", "ConsumerContext"]

#: FindCoordinator key type of a consumer group.
GROUP_KEY_TYPE: Final = COORDINATOR_GROUP


class ClientLike(Protocol):
    """What the consumer needs from :class:`kproto.client.Client`."""

    @property
    def cluster(self) -> ClusterMetadata: ...

    def connection_made(self, node_id: int, now: float) -> None: ...
    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None: ...
    def receive_data(self, node_id: int, data: bytes, now: float) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def commands(self) -> list[Command]: ...
    def data_to_send(self) -> list[tuple[int, bytes]]: ...
    def get_timer(self) -> float | None: ...
    def events(self) -> list[ClientEvent]: ...
    def send(self, request: Request[R], *, now: float, callback: ResponseCallback[R],
             node_id: int | None = None, max_version: int | None = None,
             timeout_ms: int | None = None) -> None: ...
    def add_topics(self, topics: Iterable[str], now: float) -> None: ...
    def request_metadata_update(self, now: float) -> None: ...
    def coordinator(self, key: str, key_type: int, now: float) -> int | None: ...
    def mark_coordinator_dead(self, key: str, key_type: int, now: float) -> None: ...
    def bootstrap_connected(self) -> bool: ...
    @property
    def responses_with_trailing_bytes(self) -> int: ...
    def versions_sent(self) -> dict[int, int]: ...
    def close(self, now: float) -> None: ...


def _unset(*_: object) -> Any:
    raise AssertionError("ConsumerContext hook used before the core set it")


class ConsumerContext:
    """Services the consumer's parts share; one per :class:`~kproto.consumer.core.ConsumerCore`.

    Satisfies :class:`kproto.consumer.group.GroupHost`: the three assignment
    hooks (:attr:`assigned`, :attr:`set_assignment`, :attr:`commit_consumed`)
    are the core's, set by the core when it builds the context.
    """

    def __init__(self, config: ConsumerConfig, client: ClientLike, now: float) -> None:
        self.config = config
        self.client = client
        #: The driver's clock at the latest input (response callbacks carry no ``now``).
        self.now = now
        #: True once the core closed: late responses are dropped.
        self.closed = False
        #: Errors to raise from ``poll``, oldest first (the facades append to it too).
        self.errors: list[BaseException] = []
        #: The earliest retry deadline (part of the core's timer), or None.
        self.retry_at: float | None = None
        #: Counters, see ``ConsumerCore.metrics``.
        self.metrics: dict[str, float] = {
            "records-consumed-total": 0.0,
            "bytes-fetched-total": 0.0,
            "fetch-requests-total": 0.0,
            "commits-total": 0.0,
        }
        #: Consumer events not yet taken (``ConsumerCore.events``).
        self.events: list[AnyConsumerEvent] = []
        #: Awaitables returned by deferred callbacks (``async def`` listeners).
        self.awaitables: list[Awaitable[object]] = []
        self._deferred: list[Callable[[], object]] = []
        #: ``(at, fn)``: retries to run at or after ``at``.
        self._delayed: list[tuple[float, Callable[[float], None]]] = []
        #: Retries to run on the next MetadataUpdated (they are also in ``_delayed``).
        self._waiting_metadata: list[Callable[[float], None]] = []
        self._waiting_coordinator: list[Callable[[int, float], None]] = []
        #: The partitions assigned now (the core's).
        self.assigned: Callable[[], set[TopicPartition]] = _unset
        #: Replace the assignment (the core's; positions of dropped partitions go).
        self.set_assignment: Callable[[set[TopicPartition], float], None] = _unset
        #: Commit the consumed positions that changed (the core's auto-commit).
        self.commit_consumed: Callable[[float], object] = _unset

    def emit(self, event: AnyConsumerEvent) -> None:
        """Queue an event for ``ConsumerCore.events``."""
        self.events.append(event)

    # --- errors ---------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """Raise ``exc`` from the next ``poll``."""
        self.errors.append(exc)

    def report(self, exc: BaseException) -> None:
        """Queue ``exc`` for ``poll`` without its traceback, once while an equal one waits.

        Retries after the backoff meet the same error again; the queue must not
        grow while the user does not poll.
        """
        key = (type(exc), exc.args)
        if not any((type(e), e.args) == key for e in self.errors):
            self.errors.append(exc.with_traceback(None))

    def surface(self, exc: BaseException | None) -> None:
        """Raise from the next ``poll`` a position lookup's error the user must see.

        Bad broker data (a protocol error) and non-retriable broker errors (an
        authorization failure) are raised, as the Java consumer raises them from
        ``poll``; the lookup is retried after the backoff either way, so a
        transient error is never a silent stall and a lasting one keeps saying why.
        """
        if isinstance(exc, KafkaProtocolError) or (isinstance(exc, BrokerResponseError) and not exc.retriable):
            self.report(exc)

    # --- deferred work ----------------------------------------------------------

    def backoff(self, now: float) -> float:
        """``now + retry_backoff_ms``, made part of the core's timer."""
        at = now + self.config.retry_backoff_ms / 1000
        if self.retry_at is None or at < self.retry_at:
            self.retry_at = at
        return at

    def later(self, fn: Callable[[float], None], now: float) -> None:
        """Run ``fn(now)`` after ``retry_backoff_ms`` (from a later pump)."""
        self._delayed.append((self.backoff(now), fn))

    def after_metadata(self, fn: Callable[[float], None], now: float) -> None:
        """Run ``fn(now)`` once, on the next metadata update or after the backoff at the latest."""
        retry = once(fn)
        self._waiting_metadata.append(retry)
        self.later(retry, now)

    def with_coordinator(self, fn: Callable[[int, float], None], now: float) -> None:
        """Run ``fn(node, now)`` once the group coordinator is known."""
        group = self.config.group_id
        assert group is not None
        node = self.client.coordinator(group, GROUP_KEY_TYPE, now)
        if node is not None:
            fn(node, now)
        else:
            self._waiting_coordinator.append(fn)

    def mark_coordinator_dead(self, now: float) -> None:
        """The group coordinator failed a request: look it up again."""
        group = self.config.group_id
        assert group is not None
        self.client.mark_coordinator_dead(group, GROUP_KEY_TYPE, now)

    def defer(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` at the start of the next ``poll`` (user callbacks: rebalance listeners)."""
        self._deferred.append(fn)

    # --- what the core's pump runs -----------------------------------------------

    def metadata_updated(self, now: float) -> None:
        """Run the work waiting for metadata."""
        retries, self._waiting_metadata = self._waiting_metadata, []
        for retry in retries:
            retry(now)

    def run_due(self, now: float) -> None:
        """Run the coordinator waiters (when it is known) and the retries that are due."""
        if self._waiting_coordinator and self.config.group_id is not None:
            node = self.client.coordinator(self.config.group_id, GROUP_KEY_TYPE, now)
            if node is not None:
                waiting, self._waiting_coordinator = self._waiting_coordinator, []
                for fn in waiting:
                    fn(node, now)
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
        d = self._delayed
        if not d:
            return
        due = [fn for at, fn in d if at <= now]
        self._delayed = [(at, fn) for at, fn in d if at > now]
        for at, _ in self._delayed:
            if self.retry_at is None or at < self.retry_at:
                self.retry_at = at
        for retry in due:
            retry(now)

    def run_deferred(self) -> None:
        """Run the deferred user callbacks; keep what they return to be awaited."""
        while self._deferred:
            fns, self._deferred = self._deferred, []
            for call in fns:
                result = call()
                if isinstance(result, Awaitable):
                    self.awaitables.append(result)

    def take_events(self) -> list[AnyConsumerEvent]:
        """Drain the consumer events."""
        evs, self.events = self.events, []
        return evs

    def take_awaitables(self) -> list[Awaitable[object]]:
        """Drain the awaitables :meth:`run_deferred` kept."""
        aws, self.awaitables = self.awaitables, []
        return aws

"""The blocking ``KafkaConsumer``: the consumer core driven inline by the calling thread.

Every blocking call (``poll``, ``position``,
``commit``, ``end_offsets``...) runs a small ``selectors`` loop until its
answer is in or its timeout ends. That keeps records, positions and socket
reads in one thread with no hand-off, which is what makes the fetch path
cheap. With a ``group_id``, a heartbeat thread drives the same loop while no
call of the consumer runs, so the member stays alive while the user works
between polls (KIP-62); the two take turns on the core.

:class:`ConsumerFacadeBase` holds what the three facades share: option
handling and the calls that never wait.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar

from kproto.consumer import (
    ConsumerConfig,
    ConsumerGroupMetadata,
    ConsumerRecord,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    TopicPartition,
)
from kproto.consumer.core import ConsumerCore, Pending
from kproto.errors import IllegalStateError, KafkaTimeoutError
from transports._common import SelectorClient, auth_failure, crashed_error, timeout_error
from transports._observe import Observer, merge_metrics, split_observe
from transports._selector import SelectorDriver
from transports._tls import Security, client_security_kwargs, security_from_configs

__all__ = ["CONSUMER_DRIVER", "ConsumerFacadeBase", "KafkaConsumer", "SelectorDriver", "crash_consumer"]

log = logging.getLogger(__name__)


def crash_consumer(core: Any, exc: BaseException, now: float) -> None:
    """A consumer driver died of ``exc`` (a bug): log it, fail what the client has pending.

    The client's requests fail with ``Cancelled`` (their ``Pending`` results
    with them); every later call of the facade raises the crash (see
    :func:`~transports._common.crashed_error`).
    """
    log.error("kproto consumer driver crashed", exc_info=exc)
    client = getattr(core, "client", None)
    try:
        if client is not None:
            client.close(now)
    except Exception:
        log.exception("closing the client after the crash failed")

def _drop_events(events: object) -> None:
    """The consumer drivers' sink: the facades report commits through ``Pending``, so
    ``CommitCompleted`` events are read only to keep the core's list from growing."""


#: How a consumer facade's event-loop driver treats its core: its events are
#: drained and dropped, a crash fails what the client has pending.
CONSUMER_DRIVER: dict[str, Any] = {"sink": _drop_events, "on_crash": crash_consumer, "what": "the consumer's driver"}

T = TypeVar("T")

#: kafka-python's ``default_api_timeout_ms``: bound of calls given no timeout.
_DEFAULT_API_TIMEOUT: Final = 60.0

#: What ``commit`` and ``commit_async`` take: offsets by partition (an int is the offset alone).
Offsets = Mapping[TopicPartition, OffsetAndMetadata | int]


def as_tp(tp: Any) -> TopicPartition:
    """``tp`` as a TopicPartition (a ``(topic, partition)`` pair is accepted, as kafka-python does).

    Raises:
        TypeError: Anything else.
    """
    if isinstance(tp, TopicPartition):
        return tp
    try:
        topic, partition = tp
    except (TypeError, ValueError):
        raise TypeError(f"expected a TopicPartition, got {tp!r}") from None
    if not isinstance(topic, str) or isinstance(partition, bool) or not isinstance(partition, int):
        raise TypeError(f"expected a TopicPartition, got {tp!r}")
    return TopicPartition(topic, partition)


def as_tps(partitions: Iterable[Any]) -> list[TopicPartition]:
    """Each of ``partitions`` through :func:`as_tp` (a single one is refused: a list is expected)."""
    if isinstance(partitions, (str, TopicPartition)):
        raise TypeError("expected a list of TopicPartition")
    return [as_tp(tp) for tp in partitions]


class ConsumerFacadeBase:
    """Option handling and the non-waiting calls every facade shares."""

    _core: ConsumerCore
    _config: ConsumerConfig

    def _setup(
        self,
        topics: tuple[str, ...],
        configs: dict[str, Any],
        clock: Callable[[], float],
        *,
        allow_async_provider: bool = False,
    ) -> None:
        observe, configs = split_observe(configs)
        self._config = ConsumerConfig.from_kwargs(**configs)
        self._clock = clock
        #: TLS context for the driver, SASL settings for the client (transports/_tls.py).
        self._security: Security = security_from_configs(configs, allow_async_provider=allow_async_provider)
        client = self._make_client(clock())
        #: Logs, hooks, interceptors and windowed metrics (transports/_observe.py).
        self._observer = Observer("consumer", observe, clock, client)
        self._observer.metrics_source = self.metrics
        self._core = ConsumerCore(self._config, now=clock(), client=client)
        self._closed = False
        self._iter_buffer: list[ConsumerRecord] = []
        self._iter_pos = 0
        if topics:
            self._core.subscribe(list(topics), now=clock())

    def _make_client(self, now: float) -> Any:
        """The core's cluster client: the shared options plus SASL and a SystemRandom nonce factory."""
        from kproto.client import Client

        return Client(self._config.client_config(**client_security_kwargs(self._security)), now=now)

    @property
    def _ssl_context(self) -> ssl.SSLContext | None:
        return self._security.ssl_context

    def _raise_auth_failure(self) -> None:
        """Raise the authentication failure (TLS or SASL) that keeps the client from the cluster.

        Waiting calls raise it at once instead of running out their timeout:
        certificates and credentials do not fix themselves.
        """
        failure = auth_failure(self._core)
        if failure is not None:
            raise failure

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalStateError("the consumer is closed")
        crashed = getattr(getattr(self, "_driver", None), "crashed", None)
        if crashed is not None:
            raise crashed_error("the consumer's driver", crashed)

    @property
    def config(self) -> ConsumerConfig:
        """The validated options."""
        return self._config

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly ``partitions`` (no group membership).

        Raises:
            IllegalStateError: after ``subscribe()``.
        """
        self._check_open()
        self._core.assign(as_tps(partitions), self._clock())
        self._iter_buffer = []

    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads."""
        return self._core.assignment()

    def group_metadata(self) -> ConsumerGroupMetadata:
        """Group id, generation and member id, for ``producer.send_offsets_to_transaction`` (KIP-447).

        Raises:
            InvalidGroupIdError: The consumer has no ``group_id``.
        """
        return self._core.group_metadata()

    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None, listener: Any = None) -> None:
        """Read ``topics`` (or topics matching ``pattern``).

        With a ``group_id`` the consumer joins the group and reads the
        partitions the group assigns it; ``listener`` (a
        :class:`~kproto.consumer.group.ConsumerRebalanceListener`) hears
        about revocations and assignments. Without a ``group_id`` every
        partition of the topics is assigned to this consumer.

        Raises:
            IllegalStateError: after ``assign()``.
        """
        self._check_open()
        self._core.subscribe(topics, pattern, now=self._clock(), listener=listener)

    def unsubscribe(self) -> None:
        """Drop the subscription (or the manual assignment)."""
        self._check_open()
        self._core.unsubscribe(self._clock())
        self._iter_buffer = []

    def subscription(self) -> set[str] | None:
        """The subscribed topics, or None."""
        return self._core.subscription()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record ``poll`` returns for ``partition``.

        Raises:
            ValueError: a negative offset.
            IllegalStateError: ``partition`` is not assigned.
        """
        self._check_open()
        self._core.seek(as_tp(partition), offset, self._clock())
        self._drop_iter(as_tp(partition))

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Seek to the earliest offset of each partition (all assigned when none given)."""
        self._check_open()
        tps = as_tps(partitions)
        self._core.seek_to_beginning(tps, self._clock())
        self._drop_iter(*tps)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Seek to the end offset of each partition (all assigned when none given)."""
        self._check_open()
        tps = as_tps(partitions)
        self._core.seek_to_end(tps, self._clock())
        self._drop_iter(*tps)

    def _drop_iter(self, *tps: TopicPartition) -> None:
        # Records already pulled for iteration but not yet yielded belong to the old position.
        if not tps:
            self._iter_buffer = []
            self._iter_pos = 0
            return
        drop = set(tps)
        rest = [r for r in self._iter_buffer[self._iter_pos :] if (r.topic, r.partition) not in drop]
        self._iter_buffer, self._iter_pos = rest, 0

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching and returning records for ``partitions``."""
        self._core.pause(as_tps(partitions))

    def resume(self, *partitions: TopicPartition) -> None:
        """Undo :meth:`pause`."""
        self._core.resume(as_tps(partitions), self._clock())

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return self._core.paused()

    def highwater(self, partition: TopicPartition) -> int | None:
        """The last known high watermark of ``partition`` (None before a fetch)."""
        return self._core.highwater(as_tp(partition))

    def bootstrap_connected(self) -> bool:
        """True once a bootstrap server answered."""
        return self._core.bootstrap_connected()

    def metrics(self, raw: bool = False) -> dict[str, dict[str, float]]:
        """Consumer counters, grouped as kafka-python does (``{'consumer-metrics': {...}}``),
        and ``'api-versions'``: the version of each API last sent."""
        return merge_metrics({f"{self._config.metric_group_prefix}-metrics": self._core.metrics(),
                              "api-versions": self._core.api_versions()}, self._observer.metrics(self._core))

    def _driver_settings(self) -> dict[str, Any]:
        """The driver's settings: the core's events go to the observer."""
        return {**CONSUMER_DRIVER, "sink": self._observer.events}

    # --- what the sync and async polls, iterators and waits share -----------

    @staticmethod
    def _check_poll_args(timeout_ms: float, max_records: int | None) -> None:
        if max_records is not None and (
            isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1
        ):
            raise ValueError(f"max_records must be an int >= 1, got {max_records!r}")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms < 0:
            raise ValueError(f"timeout_ms must be a number >= 0, got {timeout_ms!r}")


    def _start_commit(self, offsets: Offsets | None) -> Pending[dict[TopicPartition, OffsetAndMetadata]]:
        """Check that the consumer is open and start committing ``offsets`` (None: the positions)."""
        self._check_open()
        return self._core.commit(self._commit_offsets(offsets), self._clock())

    def _wait_args(self, pending: Pending[Any], timeout_ms: float | None) -> tuple[float, Callable[[], bool]]:
        """For a facade's ``_wait``: the timeout in seconds, and the driver's stop condition
        (``pending`` done; an authentication failure is raised at once)."""
        self._check_open()

        def done() -> bool:
            if pending.done:
                return True
            self._raise_auth_failure()
            return False

        return _DEFAULT_API_TIMEOUT if timeout_ms is None else timeout_ms / 1000, done

    def _iter_next(self, got: dict[TopicPartition, list[ConsumerRecord]] | None) -> ConsumerRecord | None:
        """The next buffered record, after buffering ``got`` (a poll's result); None if none."""
        if got:
            self._iter_buffer, self._iter_pos = [r for recs in got.values() for r in recs], 0
        if self._iter_pos < len(self._iter_buffer):
            self._iter_pos += 1
            return self._iter_buffer[self._iter_pos - 1]
        return None

    def _iter_deadline(self) -> float | None:
        """When iteration stops without a record (``consumer_timeout_ms``); None: never."""
        ct = self._config.consumer_timeout_ms
        return None if ct is None or ct == float("inf") else self._clock() + ct / 1000

    def _iter_wait(self, deadline: float | None) -> float:
        """The next poll's ``timeout_ms`` (StopIteration when closed)."""
        if self._closed:
            raise StopIteration
        return 1000.0 if deadline is None else max(0.0, (deadline - self._clock()) * 1000)

    def _position_known(self, tp: TopicPartition) -> Callable[[], bool]:
        core = self._core

        def known() -> bool:
            if core.position(tp) is not None:
                return True
            err = core.take_error()
            if err is not None:
                raise err
            self._raise_auth_failure()
            return False

        return known

    def _position(self, tp: TopicPartition, found: bool, timeout: float) -> int:
        pos = self._core.position(tp)
        if not found or pos is None:
            raise KafkaTimeoutError(f"position of {tp} not known within {timeout:.3f}s")
        return pos

    @staticmethod
    def _offsets_map(
        result: dict[TopicPartition, OffsetAndTimestamp | None], tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            ot = result.get(tp)
            out[tp] = ot.offset if ot is not None else 0
        return out

    @staticmethod
    def _check_timestamps(timestamps: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for tp, ts in timestamps.items():
            if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
                raise ValueError(f"offsets_for_times: timestamp for {tp!r} must be an int >= 0, got {ts!r}")
            out[as_tp(tp)] = ts
        return out

    @staticmethod
    def _commit_offsets(offsets: Mapping[TopicPartition, Any] | None) -> dict[TopicPartition, Any] | None:
        if offsets is None:
            return None
        return {as_tp(tp): om for tp, om in offsets.items()}


class KafkaConsumer(ConsumerFacadeBase, SelectorClient):
    """Consume records from a Kafka cluster (blocking; the kafka-python API).

    ``KafkaConsumer(*topics, **configs)``: options as :class:`ConsumerConfig`.
    Not thread safe: use one consumer per thread.
    """

    def __init__(self, *topics: str, **configs: Any) -> None:
        self._driver: SelectorDriver | None = None
        # The heartbeat thread and the user's calls take turns on the core through this.
        # Reentrant: a listener running inside poll may call the consumer (commit, position...).
        self._cond = threading.Condition(threading.RLock())
        self._want = 0
        self._bg: threading.Thread | None = None
        self._bg_stop = False
        self._setup((), configs, time.monotonic)
        self._driver = SelectorDriver(
            self._core, self._clock, self._ssl_context, sink=self._observer.events, on_crash=crash_consumer,
            what=CONSUMER_DRIVER["what"],
        )
        if topics:
            self.subscribe(list(topics))
        self._driver.pump()

    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None, listener: Any = None) -> None:
        """Read ``topics`` (or topics matching ``pattern``); see the base class.

        With a ``group_id`` a background thread starts that keeps heartbeats
        flowing while the caller works between polls (up to
        ``max_poll_interval_ms``, KIP-62); it only drives I/O when no call of
        the consumer is running, and listeners still run inside ``poll``.
        """
        with self._turn():
            super().subscribe(topics, pattern, listener)
        if self._config.group_id is not None and self._bg is None:
            assert self._driver is not None
            self._driver.enable_wakeup()
            self._bg = threading.Thread(
                target=self._heartbeat_loop, name="kproto-consumer-heartbeat", daemon=True
            )
            self._bg.start()

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the core for one user call (the heartbeat thread steps aside)."""
        if self._bg is None:
            yield
            return
        self._want += 1
        assert self._driver is not None
        self._driver.wakeup()
        with self._cond:
            self._want -= 1
            try:
                yield
            finally:
                self._cond.notify_all()

    def _heartbeat_loop(self) -> None:
        driver = self._driver
        assert driver is not None
        try:
            while True:
                with self._cond:
                    while self._want and not self._bg_stop:
                        self._cond.wait()
                    if self._bg_stop:
                        return
                    # Heartbeats, fetch responses, commits: whatever is due while the user is away.
                    driver.run_once(1.0)
        except Exception as exc:  # never lose an error in a background thread
            self._core.fail(exc)

    def _stop_heartbeat_thread(self) -> None:
        bg, self._bg = self._bg, None
        if bg is None:
            return
        self._bg_stop = True
        assert self._driver is not None
        self._driver.wakeup()
        with self._cond:
            self._cond.notify_all()
        bg.join(5.0)

    def _wait(self, pending: Pending[T], timeout_ms: float | None, what: str) -> T:
        timeout, done = self._wait_args(pending, timeout_ms)
        assert self._driver is not None
        if not self._driver.run_until(done, timeout):
            raise timeout_error(self._core, f"{what} did not complete within {timeout:.3f}s")
        self._check_open()  # a crash fails the request too: name the crash, not Cancelled
        return pending.result()

    def poll(
        self, timeout_ms: float = 0, max_records: int | None = None, update_offsets: bool = True
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Fetch records: ``{TopicPartition: [ConsumerRecord, ...]}``, empty after ``timeout_ms``.

        Raises:
            NoOffsetForPartitionError: a reset is needed and ``auto_offset_reset`` allows none.
            RecordDeserializationError: a deserializer failed; the position stays on the record.
            KafkaError: a fetch error that is not retriable.
        """
        self._check_open()
        self._check_poll_args(timeout_ms, max_records)
        core = self._core
        driver = self._driver
        assert driver is not None
        clock = self._clock
        now = clock()
        deadline = now + timeout_ms / 1000
        while True:
            records = core.poll(max_records, now)
            awaitables = core.take_awaitables()
            if awaitables:
                for aw in awaitables:
                    getattr(aw, "close", lambda: None)()
                raise TypeError("a rebalance listener returned an awaitable: async listeners need the "
                                "asyncio or trio KafkaConsumer; the blocking one calls plain methods")
            if records:
                # Send the prefetch this poll made room for, and take in what already arrived.
                driver.run_once(0.0)
                return self._observer.consumed(records, core)
            self._raise_auth_failure()
            left = deadline - now
            if left <= 0:
                driver.run_once(0.0)
                records = core.poll(max_records, clock())
                return self._observer.consumed(records, core)
            driver.run_once(left)
            now = clock()

    def __iter__(self) -> Iterator[ConsumerRecord]:
        return self

    def __next__(self) -> ConsumerRecord:
        """The next record; StopIteration after ``consumer_timeout_ms`` without one."""
        if self._iter_pos < len(self._iter_buffer):  # the per-record path: no call
            self._iter_pos += 1
            return self._iter_buffer[self._iter_pos - 1]
        return self._next_polled()

    def _next_polled(self) -> ConsumerRecord:
        """:meth:`__next__` once the buffered records are used up: poll for more."""
        rec = None
        deadline = self._iter_deadline()
        while rec is None:
            rec = self._iter_next(self.poll(timeout_ms=self._iter_wait(deadline)))
            if rec is None and deadline is not None and self._clock() >= deadline:
                raise StopIteration
        return rec

    def position(self, partition: TopicPartition, timeout_ms: float | None = None) -> int:
        """The offset of the next record ``poll`` returns (waits for a reset to finish).

        Raises:
            IllegalStateError: ``partition`` is not assigned.
            KafkaTimeoutError: not known within ``timeout_ms``.
        """
        self._check_open()
        tp = as_tp(partition)
        assert self._driver is not None
        timeout = _DEFAULT_API_TIMEOUT if timeout_ms is None else timeout_ms / 1000
        return self._position(tp, self._driver.run_until(self._position_known(tp), timeout), timeout)

    def beginning_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """The earliest offset of each partition."""
        return self._edge_offsets(partitions, -2, timeout_ms, "beginning_offsets")

    def end_offsets(
        self, partitions: Iterable[TopicPartition], timeout_ms: float | None = None
    ) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition (the high watermark)."""
        return self._edge_offsets(partitions, -1, timeout_ms, "end_offsets")

    def _edge_offsets(
        self, partitions: Iterable[TopicPartition], spec: int, timeout_ms: float | None, what: str
    ) -> dict[TopicPartition, int]:
        """ListOffsets of each partition for ``spec`` (-2: earliest, -1: latest)."""
        tps = as_tps(partitions)
        p = self._core.list_offsets({tp: spec for tp in tps}, self._clock())
        return self._offsets_map(self._wait(p, timeout_ms, what), tps)

    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int], timeout_ms: float | None = None
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """For each partition the first offset with a timestamp >= the one given, or None."""
        ts = self._check_timestamps(timestamps)
        p = self._core.list_offsets(ts, self._clock())
        return self._wait(p, timeout_ms, "offsets_for_times")

    def topics(self, timeout_ms: float | None = None) -> set[str]:
        """Every topic the cluster has (internal ones hidden unless ``exclude_internal_topics=False``)."""
        p = self._core.fetch_metadata(None, self._clock())
        return set(self._core.topics_from(self._wait(p, timeout_ms, "topics")))

    def partitions_for_topic(self, topic: str, timeout_ms: float | None = None) -> set[int] | None:
        """The partition ids of ``topic``, or None if it does not exist."""
        p = self._core.fetch_metadata([topic], self._clock())
        return self._core.topics_from(self._wait(p, timeout_ms, "partitions_for_topic")).get(topic)

    def commit(self, offsets: Offsets | None = None, timeout_ms: float | None = None) -> None:
        """Commit ``offsets`` (the consumed positions when None) to the group, waiting.

        Raises:
            KafkaConfigurationError: no ``group_id``.
            KafkaError: the commit failed.
        """
        self._wait(self._start_commit(offsets), timeout_ms, "commit")

    def commit_async(
        self, offsets: Offsets | None = None, callback: Callable[[Any, Any], Any] | None = None
    ) -> Pending[Any]:
        """Commit without waiting; ``callback(offsets, exception_or_None)`` runs in a later call.

        Returns:
            A :class:`Pending` (``done``, ``result()``, ``exception()``).
        """
        p = self._start_commit(offsets)
        if callback is not None:
            cb = callback
            p.add_done_callback(lambda r: cb(r.result() if r.exception() is None else offsets, r.exception()))
        assert self._driver is not None
        self._driver.pump()
        return p

    def committed(
        self, partition: TopicPartition, metadata: bool = False, timeout_ms: float | None = None
    ) -> int | OffsetAndMetadata | None:
        """The group's committed offset of ``partition`` (an OffsetAndMetadata with ``metadata=True``)."""
        tp = as_tp(partition)
        p = self._core.committed([tp], self._clock())
        om = self._wait(p, timeout_ms, "committed").get(tp)
        if om is None or metadata:
            return om
        return om.offset

    def close(self, autocommit: bool = True, timeout_ms: float | None = None) -> None:
        """Commit positions (when auto-commit is on and ``autocommit``), then close every connection."""
        if self._closed:
            return
        self._stop_heartbeat_thread()
        driver = self._driver
        assert driver is not None
        try:
            if driver.crashed is None:  # after a crash nothing can be committed
                p = self._core.close(self._clock(), autocommit)
                timeout = 30.0 if timeout_ms is None else timeout_ms / 1000
                driver.run_until(lambda: p.done, timeout)
                driver.pump()
        finally:
            self._closed = True
            driver.close()
            self._observer.close()


def _taking_turns(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def call(self: KafkaConsumer, *args: Any, **kwargs: Any) -> T:
        with self._turn():
            return fn(self, *args, **kwargs)

    return call


# Every call that touches the core takes its turn with the heartbeat thread.
for _name in (
    "assign",
    "unsubscribe",
    "seek",
    "seek_to_beginning",
    "seek_to_end",
    "pause",
    "resume",
    "poll",
    "position",
    "beginning_offsets",
    "end_offsets",
    "offsets_for_times",
    "topics",
    "partitions_for_topic",
    "commit",
    "commit_async",
    "committed",
    "metrics",
    "highwater",
    "paused",
    "assignment",
    "subscription",
):
    setattr(KafkaConsumer, _name, _taking_turns(getattr(KafkaConsumer, _name)))

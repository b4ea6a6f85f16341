"""Blocking ``KafkaProducer`` (kafka-python compatible) over a background I/O thread.

Threads
-------
Each producer owns one daemon I/O thread. That thread is the only one that
ever touches the sans-I/O core: it runs a ``selectors`` loop over the broker
sockets and a socketpair used as a wake-up bell.

User threads never lock the core. ``send()`` validates and serializes on the
caller's thread, creates the future, appends a tuple to a ``deque`` (atomic
under the GIL) and rings the bell only if the I/O thread is asleep in
``select``. The I/O thread hands the deque to ``core.send_many``, which
takes the records in bulk (no call per record for the common case), so a
busy producer pays no lock and no system call per record. Other calls
(``flush``, ``partitions_for``, ``metrics``...) travel through the same deque
as small operations and the caller waits on one shared condition variable.

**Callbacks and errbacks added to a future run on the I/O thread** (or on the
calling thread if the future is already done when the callback is added).
Keep them short and never call blocking producer methods (``flush``,
``close``, ``future.get``) from inside one: that would wait on the thread
that has to do the work.

Backpressure: ``buffer_memory`` bounds every byte accepted and not yet
acknowledged, queued in the deque or held by the core, whatever the number of
sending threads. Each ``send()`` reserves its record's bytes (key + value +
headers) in ``_IOLoop.held`` before queueing; the I/O thread gives them back
as records are delivered or fail. A ``send()`` that does not fit blocks up to
``max_block_ms`` and raises ``KafkaTimeoutError`` (as Java's
``BufferPool.allocate``). The reservation is one ``+=`` on an int attribute,
which CPython's GIL runs without a thread switch between the read and the
write (no call, no eval-breaker check in between): no lock on the hot path.
The core keeps its own ``buffer_memory`` count (encoded sizes) too; when it
refuses a record the I/O thread stops draining and senders wait. The deque
is bounded in records as well (``_INBOX_LIMIT``; ``send()`` looks at its
length every ``_YIELD_EVERY`` records, and at every record once it is near).

Safety: nothing a broker sends or a name that does not resolve stops the I/O
thread. A connection that fails to open, or whose bytes make the core raise,
is reported to the core as lost (a ``KafkaConnectionError`` /
``KafkaProtocolError`` with the cause chained): the core fails or retries its
requests and reconnects with backoff. If the thread dies anyway (a bug), every
pending record fails and every later call raises ``IllegalStateError`` naming
the crash, at once.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kproto import errors as errors
from kproto.errors import IllegalStateError, KafkaError, KafkaTimeoutError
from kproto.events import Event
from kproto.producer.events import BatchOutcome
from kproto.types import TopicPartition as TopicPartition
from transports._common import (
    Delivery,
    auth_failure,
    crash_producer,
    crashed_error,
    dispatch_events,
    lazy_exports,
    make_core,
    prepare_record,
    send_record,
    split_configs,
    timeout_error,
)
from transports._common import (
    RecordMetadata as RecordMetadata,
)
from transports._names import KAFKA_PYTHON_NAMES, LAZY_NAMES
from transports._observe import Observer, merge_metrics, split_observe
from transports._selector import SelectorDriver
from transports._txn import AGAIN, SyncTransactions

if TYPE_CHECKING:  # loaded on first use by __getattr__ below (LAZY_NAMES)
    from kproto.consumer import ConsumerRebalanceListener as ConsumerRebalanceListener
    from kproto.consumer import ConsumerRecord as ConsumerRecord
    from kproto.consumer import OffsetAndMetadata as OffsetAndMetadata
    from transports._consumer_sync import KafkaConsumer as KafkaConsumer

__all__ = ["FutureRecordMetadata", *KAFKA_PYTHON_NAMES]

log = logging.getLogger(__name__)

_monotonic = time.monotonic
_time_ns = time.time_ns
_new = object.__new__
_sleep = time.sleep
#: ``send`` yields the GIL after this many records (see ``KafkaProducer.send``).
_YIELD_EVERY = 256
_AGAIN = AGAIN
#: Records queued for the I/O thread but not yet given to the core. This is
#: memory on top of ``buffer_memory``; 32k tuples is a few MB at most and
#: large enough that a sender rarely waits for the I/O thread to catch up.
_INBOX_LIMIT = 32768
#: Longest ``select`` sleep: a safety net only, every input rings the bell.
_MAX_SLEEP = 1.0
#: Bytes per ``recv``: a Produce response is small; metadata can be larger.
_RECV_SIZE = 256 * 1024


class FutureRecordMetadata(Delivery):
    """The outcome of one ``send()``: resolves to :class:`RecordMetadata`.

    Same surface as kafka-python's future: ``get``, ``add_callback``,
    ``add_errback``, ``add_both``, ``is_done``, ``succeeded()``, ``failed()``,
    ``value``, ``exception``.
    """

    __slots__ = ("_loop", "_nbytes")

    #: The callbacks added while pending: ``[(on_success, fn), ...]``, else None.
    _waiter: list[tuple[bool, Callable[..., Any]]] | None

    def __init__(
        self, loop: _IOLoop, topic: str, timestamp_ms: int, key_size: int, value_size: int, header_size: int
    ) -> None:
        # Delivery.__init__ inlined (KafkaProducer.send builds these without
        # a call: keep the two in step).
        self.topic = topic
        self.timestamp_ms = timestamp_ms
        self.key_size = key_size
        self.value_size = value_size
        self.header_size = header_size
        self._state = 0
        self._error = None
        self._loop = loop
        self._waiter = None
        #: Bytes reserved against buffer_memory until the outcome is known.
        self._nbytes = max(key_size, 0) + max(value_size, 0) + max(header_size, 0)

    def _unsent(self, exc: BaseException) -> None:
        """Fail a record the core never took (``send`` raised on it, or the producer closed) and give
        its reserved bytes back (``core.send_many``'s ``failed``)."""
        self._fail(exc)
        self._loop.held -= self._nbytes

    # Called on the I/O thread by dispatch_events (or Delivery._fail) once
    # _state is set; _add may be adding a callback on another thread at the
    # same time: both take the list under the lock, so each runs once.
    def _completed(self) -> None:
        if self._waiter is not None:
            with self._loop.cond:
                cbs, self._waiter = self._waiter, None
            for on_success, fn in cbs or ():
                self._run_callback(on_success, fn)

    def _run_callback(self, on_success: bool, fn: Callable[..., Any]) -> None:
        if on_success != (self._state == 1):
            return
        try:
            fn(self._metadata() if on_success else self._error)
        except Exception:
            log.exception("producer callback %r raised", fn)

    @property
    def is_done(self) -> bool:
        """True once the record is acknowledged or has failed."""
        return self._state != 0

    def succeeded(self) -> bool:
        """True if the record was acknowledged."""
        return self._state == 1

    def failed(self) -> bool:
        """True if the record failed."""
        return self._state == 2

    @property
    def value(self) -> RecordMetadata | None:
        """The :class:`RecordMetadata` once acknowledged, else None."""
        return self._metadata() if self._state == 1 else None

    @property
    def exception(self) -> BaseException | None:
        """The error once failed, else None."""
        return self._error

    def retriable(self) -> bool:
        """True if the failure is one a retry could fix."""
        return bool(getattr(self._error, "retriable", False))

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """Wait for the outcome.

        Args:
            timeout: Seconds to wait; None waits for as long as it takes
                (the core fails every record within ``delivery_timeout_ms``).

        Returns:
            The record's :class:`RecordMetadata`.

        Raises:
            KafkaTimeoutError: Not done within ``timeout``.
            KafkaError: The delivery failed (the broker's error class, or
                ``KafkaTimeoutError`` for ``delivery_timeout_ms``).
        """
        if not self._state:
            if not self._loop.wait_until(lambda: self._state != 0, timeout):
                raise KafkaTimeoutError(f"record not acknowledged within {timeout}s")
            if not self._state:  # the I/O thread stopped without resolving it
                raise self._loop.closed_error("the record's producer")
        return self._outcome()

    def add_callback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, record_metadata, **kwargs)`` on success (on the I/O thread).

        Returns:
            This future, for chaining.
        """
        return self._add(True, (lambda v: fn(*args, v, **kwargs)) if args or kwargs else fn)

    def add_errback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        """Call ``fn(*args, exception, **kwargs)`` on failure (on the I/O thread).

        Returns:
            This future, for chaining.
        """
        return self._add(False, (lambda e: fn(*args, e, **kwargs)) if args or kwargs else fn)

    def add_both(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> FutureRecordMetadata:
        """Call ``fn`` with the metadata or the exception, whichever comes.

        Returns:
            This future, for chaining.
        """
        self.add_callback(fn, *args, **kwargs)
        return self.add_errback(fn, *args, **kwargs)

    def _add(self, on_success: bool, fn: Callable[..., Any]) -> FutureRecordMetadata:
        with self._loop.cond:
            if not self._state:
                if self._waiter is None:
                    self._waiter = []
                self._waiter.append((on_success, fn))
                added = True
            else:
                added = False
        if not added:
            self._run_callback(on_success, fn)
        elif self._state:
            # Completed on the I/O thread between our check and our append:
            # it may have seen no callbacks; whoever takes the list runs them.
            self._completed()
        return self


def _send_each(core: Any) -> Callable[[deque[Any], float, Callable[[Any, Exception], None]], bool]:
    """``send_many`` for a core that only has ``send`` (a stand-in core): one call per record."""

    def send_many(records: deque[Any], now: float, failed: Callable[[Any, Exception], None]) -> bool:
        while records and type(records[0]) is tuple:
            item = records.popleft()
            topic, key, value, headers, partition, ts, token = item
            try:
                ok = send_record(core, topic, key, value, headers, partition, ts, token, now)
            except Exception as exc:
                failed(token, exc)
                continue
            if not ok:
                records.appendleft(item)
                return False
        return True

    return send_many


class _Op:
    """A call from a user thread run on the I/O thread: ``fn(core, now)``.

    ``fn`` returns ``_AGAIN`` to be polled again on every loop iteration.
    """

    __slots__ = ("cancelled", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[[Any, float], object]) -> None:
        self.fn = fn
        self.done = False
        self.cancelled = False
        self.result: object = None
        self.error: BaseException | None = None


class _IOLoop:
    """The producer's I/O thread and the user threads' way to it: the thread runs ``driver`` (the
    blocking-socket loop every sync client runs) and serves, before each of its steps, what user
    threads queued.

    Only the I/O thread touches ``core``; user threads talk to it through
    ``inbox`` (records and ordered ops), ``urgent`` (other ops) and ``cond``.
    """

    core: Any  # a ProducerCore (or a test's stand-in)

    __slots__ = (
        "core", "driver", "observe", "acknowledged", "_send_many", "inbox", "urgent", "cond", "waiters", "blocked",
        "stopped", "crashed", "held", "limit", "cap", "_stop_requested", "close_error", "_polling", "thread",
    )

    def __init__(self, core: Any, name: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.core = core
        self.driver = SelectorDriver(
            core, _monotonic, ssl_context, sink=self._delivered, recv_size=_RECV_SIZE, reads=1,
            on_crash=self._crash, serve=self._serve, busy=self._busy, what="the producer's I/O thread",
        )
        self.driver.enable_wakeup()
        #: Takes the core's events other than delivery reports (the facade's observer), or None.
        self.observe: Callable[[Event], object] | None = None
        #: Runs the interceptors' ``on_acknowledgement`` on a batch of events, or None.
        self.acknowledged: Callable[[Sequence[Event]], object] | None = None
        #: Hands queued records to the core in bulk (ProducerCore.send_many).
        self._send_many: Callable[[deque[Any], float, Callable[[Any, Exception], None]], bool] = getattr(
            core, "send_many", None
        ) or _send_each(core)
        self.inbox: deque[Any] = deque()
        self.urgent: deque[_Op] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.waiters = 0
        self.blocked = False  # the core refused a record: its buffer is full
        self.stopped = False
        #: Why the I/O thread crashed (later calls name it); set before pending
        #: records are failed, so a sender woken by that failure already sees
        #: the producer closed.
        self.crashed: BaseException | None = None
        #: Bytes reserved by ``send()`` and not yet given back (delivered or failed).
        self.held = 0
        #: ``buffer_memory``: the bound on ``held``.
        self.limit = 1 << 62
        #: ``limit`` while the core takes records, -1 while it refuses them
        #: (``blocked``): ``send()`` checks both with one comparison.
        self.cap = self.limit
        self._stop_requested = False
        #: What records still queued when the thread stops fail with.
        self.close_error: KafkaError | None = None
        self._polling: list[_Op] = []
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    # --- user-thread side ------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait on the shared condition until ``predicate()``; False on timeout.

        Raises:
            IllegalStateError: Called from the I/O thread (a callback), where
                waiting would deadlock.
        """
        if threading.current_thread() is self.thread and not predicate():
            raise IllegalStateError(
                "blocking producer call from a callback: callbacks run on the producer's I/O thread"
            )
        deadline = None if timeout is None else _monotonic() + timeout
        with self.cond:
            self.waiters += 1
            try:
                while not predicate():
                    if self.stopped and not predicate():
                        return predicate()
                    if deadline is None:
                        self.cond.wait(1.0)
                    else:
                        remaining = deadline - _monotonic()
                        if remaining <= 0:
                            return False
                        self.cond.wait(remaining)
                return True
            finally:
                self.waiters -= 1

    def call(
        self, fn: Callable[[Any, float], object], timeout: float | None, ordered: bool = False
    ) -> object:
        """Run ``fn(core, now)`` on the I/O thread and return its result.

        ``ordered`` ops queue behind the records sent before them (``flush``);
        the others run at the next loop iteration even while records wait for
        buffer space.

        Raises:
            KafkaTimeoutError: Not done within ``timeout``.
            IllegalStateError: The I/O thread has stopped.
        """
        if self.stopped:
            raise self.closed_error("the producer")
        op = _Op(fn)
        (self.inbox if ordered else self.urgent).append(op)
        self.driver.wakeup()
        if not self.wait_until(lambda: op.done or self.stopped, timeout):
            op.cancelled = True
            raise KafkaTimeoutError(f"operation did not complete within {timeout}s")
        if not op.done:
            raise self.closed_error("the producer")
        if op.error is not None:
            raise op.error
        return op.result

    def closed_error(self, what: str) -> IllegalStateError:
        """The error of a call on a stopped loop: names the crash if the thread crashed."""
        if self.crashed is not None:
            return crashed_error("the producer's I/O thread", self.crashed)
        return IllegalStateError(f"{what} is closed")

    def notify(self) -> None:
        if self.waiters:
            with self.cond:
                self.cond.notify_all()

    # --- I/O thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop_requested:
                self.driver.run_once(_MAX_SLEEP)
        except Exception:
            pass  # a bug: run_once has failed every pending record (_crash)
        finally:
            self._shutdown()

    def _crash(self, core: Any, exc: BaseException, now: float) -> None:
        self.crashed = exc
        crash_producer(core, exc, now)

    def _serve(self) -> float:
        """Before each step: the ops and records user threads queued; returns the longest sleep."""
        now = _monotonic()
        while self.urgent:
            self._run_op(self.urgent.popleft(), now)
        if self.inbox and not self.blocked:
            self._drain_inbox(now)
        if self._polling:
            self.driver.pump()
            self._poll_ops(now)
        # Pending ops (flush...) are re-checked at least every 50 ms; otherwise
        # the wake-up bell ends the sleep, _MAX_SLEEP is a safety net.
        return 0.0 if self._stop_requested else 0.05 if self._polling else _MAX_SLEEP

    def _busy(self) -> bool:
        return bool((self.inbox and not self.blocked) or self.urgent)

    def _delivered(self, evs: Sequence[Any]) -> None:
        """The sink: complete the futures, give back their reserved bytes, take more records."""
        dispatch_events(evs, self.observe)
        if self.acknowledged is not None:
            self.acknowledged(evs)
        # sum() of a list comprehension: the attribute load specializes to a
        # slot read (attrgetter does a generic lookup) and sum() adds the
        # small ints in C (a ``+=`` loop allocates an int per record).
        freed = 0
        for ev in evs:
            if isinstance(ev, BatchOutcome):
                tokens: Any = ev.tokens  # this facade's futures
                freed += sum([tok._nbytes for tok in tokens])
        # (No call between the read and the write of held: see KafkaProducer.send.)
        self.held -= freed
        if self.blocked:
            self.blocked = False  # deliveries freed buffer space: try again
            self.cap = self.limit
            if self.inbox and not self._stop_requested:
                self._drain_inbox(_monotonic())
        self.notify()

    def _drain_inbox(self, now: float) -> None:
        if self._stop_requested:
            return  # closing: what is still queued fails in _shutdown
        send_many = self._send_many
        inbox = self.inbox
        was_full = len(inbox) >= _INBOX_LIMIT
        while inbox:
            # Records go to the core in bulk (send_many stops at an _Op).
            if not send_many(inbox, now, FutureRecordMetadata._unsent):
                self.blocked = True
                self.cap = -1
                break
            if inbox:
                self._run_op(inbox.popleft(), now)
        if was_full or self.waiters:
            self.notify()

    def _run_op(self, op: _Op, now: float) -> None:
        if op.cancelled:
            return
        try:
            result = op.fn(self.core, now)
        except BaseException as exc:
            op.error = exc
            op.done = True
            self.notify()
            return
        if result is _AGAIN:
            self._polling.append(op)
        else:
            op.result = result
            op.done = True
            self.notify()

    def _poll_ops(self, now: float) -> None:
        ops, self._polling = self._polling, []
        for op in ops:
            self._run_op(op, now)

    def request_stop(self) -> None:
        """Ask the I/O thread to exit after this iteration (from the I/O thread)."""
        self._stop_requested = True

    def _shutdown(self) -> None:
        leftovers = [item for item in self.inbox if type(item) is tuple]
        self.inbox.clear()
        error = self.close_error or IllegalStateError("producer closed before the record was sent")
        for *_, future in leftovers:
            future._unsent(error)
        for op in self._polling:
            op.error = IllegalStateError("producer closed")
            op.done = True
        self._polling = []
        self.driver.close()
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


class KafkaProducer(SyncTransactions):
    """A Kafka producer with kafka-python's API, backed by kproto's sans-I/O core.

    Args:
        **configs: The options of the spec (``bootstrap_servers``, ``acks``,
            ``linger_ms``, ...), plus ``key_serializer`` and ``value_serializer``.

    Raises:
        TypeError: An unknown option (the message names the closest valid one).
        ValueError: An option value that is not allowed.
    """

    #: Builds the core; a seam for tests that drive a stand-in core.
    _make_core = staticmethod(make_core)

    def __init__(self, **configs: Any) -> None:
        observe, configs = split_observe(configs)
        self._options, self.config = split_configs(configs)
        self._max_block = self.config.max_block_ms / 1000.0
        self._core = self._make_core(self.config, _monotonic(), **self._options.core_kwargs())
        self._observer = Observer("producer", observe, _monotonic, getattr(self._core, "client", None))
        security = self._options.security
        self._loop = _IOLoop(
            self._core,
            name=f"kproto-producer-{id(self):x}",
            ssl_context=security.ssl_context if security is not None else None,
        )
        self._loop.limit = self._loop.cap = self.config.buffer_memory
        self._known_topics: set[str] = set()
        # Interceptors see every record before serialization: no fast path then.
        self._plain = (
            self._options.key_serializer is None and self._options.value_serializer is None and not observe.interceptors
        )
        self._loop.observe = self._observer.event
        self._loop.acknowledged = self._observer.acknowledged if observe.interceptors else None
        # The core belongs to the I/O thread: read it there directly, else through call().
        self._observer.metrics_source = lambda: (
            merge_metrics(self._core.metrics(_monotonic()), self._observer.metrics())
            if threading.current_thread() is self._loop.thread
            else self.metrics()
        )
        self._transactional = self.config.transactional_id is not None
        self._unyielded = 0
        #: The inbox is within _YIELD_EVERY records of _INBOX_LIMIT (see send()).
        self._inbox_near_full = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._loop.thread.start()

    # --- sending ---------------------------------------------------------

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> FutureRecordMetadata:
        """Queue one record; thread-safe.

        Args:
            topic: Destination topic.
            value: The value: bytes, or anything ``value_serializer`` accepts.
                None with a key is a tombstone.
            key: The key: bytes, or anything ``key_serializer`` accepts.
            headers: ``[(str, bytes), ...]``.
            partition: Explicit partition; otherwise the partitioner chooses.
            timestamp_ms: Record timestamp, ms since the epoch; default now.

        Returns:
            A :class:`FutureRecordMetadata`.

        Raises:
            IllegalStateError: The producer is closed.
            KafkaTimeoutError: No metadata for the topic, or no buffer space,
                within ``max_block_ms``.
            TypeError: A key/value that is not bytes with no serializer, bad headers.
            ValueError: Both key and value are None, or a bad partition.
            Exception: Whatever a serializer raised.
        """
        loop = self._loop
        if self._closed or loop.stopped or loop.crashed:  # (an exception is true)
            raise loop.closed_error("KafkaProducer (send())")
        if self._transactional:  # transactions: only inside one
            self._core.check_transactional_send()
        if (
            self._plain
            and type(value) is bytes
            and (key is None or type(key) is bytes)
            and headers is None
            and partition is None
            and timestamp_ms is None
            and type(topic) is str
            and topic in self._known_topics
        ):
            # The hot path: bytes in, every default (prepare_record's outcome, inlined).
            # The future is built without an __init__ call (FutureRecordMetadata.__init__'s
            # stores, kept in step with it): a fifth of the caller's time per record.
            ts = _time_ns() // 1_000_000
            fut = _new(FutureRecordMetadata)
            fut.topic = topic
            fut.timestamp_ms = ts
            fut.value_size = nbytes = len(value)
            if key is None:
                fut.key_size = -1
            else:
                fut.key_size = kl = len(key)
                nbytes += kl
            fut._nbytes = nbytes
            fut.header_size = -1
            fut._state = 0
            fut._error = None
            fut._loop = loop
            fut._waiter = None
            item: tuple[Any, ...] = (topic, key, value, None, None, ts, fut)
        else:
            if self._observer.interceptors:
                topic, value, key, headers, partition, timestamp_ms = self._observer.on_send(
                    topic, value, key, headers, partition, timestamp_ms
                )
            topic, k, v, hdrs, part, ts, hsize = prepare_record(
                self._options, topic, value, key, headers, partition, timestamp_ms
            )
            if topic not in self._known_topics:
                self._wait_for_topic(topic, _monotonic() + self._max_block)
            fut = FutureRecordMetadata(
                loop, topic, ts, -1 if k is None else len(k), -1 if v is None else len(v), hsize
            )
            nbytes = fut._nbytes
            item = (topic, k, v, hdrs, part, ts, fut)
        inbox = loop.inbox
        # Reserve first, then check (see the module docstring): racing senders
        # each see the others' reservations, so held never passes the limit.
        # (No call between the read and the write: no other sender runs in between.)
        held = loop.held + nbytes
        loop.held = held
        if held > loop.cap or self._inbox_near_full:  # (cap: limit, or -1 if blocked)
            self._wait_for_space(nbytes)
        inbox.append(item)
        driver = loop.driver
        if driver.sleeping and not driver.wake_pending:
            # (wakeup() checks wake_pending too; checked here first, it saves a call
            # for the many records sent while the I/O thread is asleep or waking.)
            driver.wakeup()
        self._unyielded += 1
        if self._unyielded >= _YIELD_EVERY:
            # Hand the GIL to the I/O thread now and then. Without this a busy
            # sender keeps it for the whole switch interval (5 ms) each time
            # the I/O thread comes back from a system call, and the I/O thread
            # starves: measured, this more than doubles throughput and lowers
            # CPU per record.
            self._unyielded = 0
            _sleep(0)
            # The inbox's record bound, looked at here rather than per record
            # (a C call less per record): the next _YIELD_EVERY records cannot pass
            # it (racing senders, whose += on _unyielded may be lost, by a few at most).
            self._inbox_near_full = len(inbox) >= _INBOX_LIMIT - _YIELD_EVERY
        return fut

    def _wait_for_space(self, nbytes: int) -> None:
        """Wait until the record's ``nbytes`` (already reserved in ``held``) fit; keep them reserved.

        A record larger than ``buffer_memory`` itself does not wait: the core
        fails its future (``MessageSizeTooLargeError``), which gives its bytes back.

        Raises:
            KafkaTimeoutError: No room within ``max_block_ms`` (the reservation is dropped).
            IllegalStateError: The producer closed meanwhile.
        """
        loop = self._loop
        limit = loop.limit
        deadline = _monotonic() + self._max_block

        def room() -> bool:
            return loop.stopped or (
                not loop.blocked and len(loop.inbox) < _INBOX_LIMIT and loop.held + nbytes <= limit
            )

        while True:
            if (loop.held <= limit or nbytes > limit) and not loop.blocked and len(loop.inbox) < _INBOX_LIMIT:
                self._inbox_near_full = len(loop.inbox) >= _INBOX_LIMIT - _YIELD_EVERY
                return
            loop.held -= nbytes
            if loop.stopped:
                raise loop.closed_error("KafkaProducer (send())")
            loop.driver.wakeup()
            left = deadline - _monotonic()
            if left <= 0 or not loop.wait_until(room, left):
                raise KafkaTimeoutError(
                    f"buffer_memory ({limit} bytes) full for longer than max_block_ms "
                    f"({self._max_block * 1000:.0f} ms)"
                )
            loop.held += nbytes

    def _wait_for_topic(self, topic: str, deadline: float) -> set[int]:
        parts = self._partitions(topic, deadline)
        self._known_topics.add(topic)
        return parts

    def _partitions(self, topic: str, deadline: float) -> set[int]:
        requested: list[float] = []

        def poll(core: Any, now: float) -> object:
            parts = core.partitions_for(topic)
            if parts:
                return set(parts)
            failure = auth_failure(core)
            if failure is not None:
                raise failure
            if not requested or now - requested[0] > 0.5:
                core.request_metadata(topic, now)
                requested[:] = [now]
            return _AGAIN

        try:
            result = self._loop.call(poll, max(0.0, deadline - _monotonic()))
        except KafkaTimeoutError:
            error = timeout_error(
                self._core,
                f"no metadata for topic {topic!r} within max_block_ms ({self._max_block * 1000:.0f} ms)",
            )
            raise error from error.__cause__
        assert isinstance(result, set)
        return result

    def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of ``topic``, fetching metadata if needed.

        Args:
            topic: The topic.

        Returns:
            The set of partition ids.

        Raises:
            KafkaTimeoutError: No metadata within ``max_block_ms``.
            IllegalStateError: The producer is closed.
        """
        return self._wait_for_topic(topic, _monotonic() + self._max_block)

    def flush(self, timeout: float | None = None) -> None:
        """Make every buffered record sendable now and wait until all are done.

        Records sent by other threads while flushing are waited for too.

        Args:
            timeout: Seconds to wait; None waits without bound.

        Raises:
            KafkaTimeoutError: Records still pending after ``timeout``.
        """
        if self._loop.stopped:
            if self._loop.crashed is not None:
                raise self._loop.closed_error("the producer")
            return
        started: list[bool] = []

        def poll(core: Any, now: float) -> object:
            if not started:
                core.flush(now)
                started.append(True)
            if core.pending_count() == 0:
                return None
            core.flush(now)
            return _AGAIN

        self._loop.call(poll, timeout, ordered=True)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the I/O thread and close every connection. Idempotent.

        Records still pending when ``timeout`` runs out fail with
        ``KafkaTimeoutError``; ``close`` itself does not raise for that.

        Args:
            timeout: Seconds for the flush; None waits without bound.
        """
        with self._close_lock:
            if self._closed and self._loop.stopped:
                return
            self._closed = True
            loop = self._loop
            if loop.stopped:
                return
            flushed = True
            try:
                self.flush(timeout)
            except KafkaTimeoutError:
                flushed = False
            except IllegalStateError:
                pass
            self._observer.close()  # interceptors' close, a last metrics report

            def stop(core: Any, now: float) -> object:
                if flushed:
                    core.close(now)
                else:
                    loop.close_error = KafkaTimeoutError(
                        f"producer closed with records pending after {timeout}s"
                    )
                    core.abort(now, loop.close_error)
                loop.request_stop()  # first: records still queued are failed, not sent
                loop.driver.pump()
                return None

            try:
                loop.call(stop, 10.0)
            except (KafkaTimeoutError, IllegalStateError):
                pass
            loop.thread.join(10.0)

    def __enter__(self) -> KafkaProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- introspection ---------------------------------------------------

    def metrics(self, raw: bool = False) -> dict[str, dict[str, float]]:
        """Producer metrics, kafka-python shaped: ``{'producer-metrics': {name: value}}``.

        Returns:
            A fresh dict of metric values.
        """
        result = self._loop.call(lambda core, now: core.metrics(now), self._max_block)
        assert isinstance(result, dict)
        return merge_metrics(result, self._observer.metrics())

    def bootstrap_connected(self) -> bool:
        """True while a connection to a bootstrap/broker is up.

        Returns:
            Whether the core reports a live bootstrap connection.
        """
        if self._loop.stopped:
            return False
        return bool(self._loop.call(lambda core, now: core.bootstrap_connected(), self._max_block))


#: ``from transports.sync import KafkaConsumer`` loads the consumer on first use.
__getattr__ = lazy_exports(__name__, {"KafkaConsumer": "transports._consumer_sync", **LAZY_NAMES})

# KafkaAdminClient and the admin types (NewTopic, ConfigResource, ACL...), loaded on first use (issue 13).
from typing import TYPE_CHECKING  # noqa: E402

from transports._admin_exports import with_admin  # noqa: E402

if TYPE_CHECKING:
    from transports._admin_sync import *  # noqa: F403
__getattr__ = with_admin(__getattr__, "transports._admin_sync")

"""What the three producer facades share: options, serialization, delivery tokens.

Nothing here touches a socket, a thread or an event loop. Each facade
(``transports/sync.py``, ``transports/asyncio.py``, ``transports/trio.py``)
combines these helpers with its own driver loop.

The token a facade hands to :meth:`kproto.producer.ProducerCore.send` is the
delivery object itself (a :class:`Delivery` subclass). The core gives the
tokens back in send order inside ``RecordsDelivered`` / ``DeliveryFailed``
events, so a record's offset is ``base_offset + its index in event.tokens``;
:func:`dispatch_events` does that bookkeeping for every facade.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from kproto.errors import IllegalStateError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from kproto.events import Event
from kproto.producer.events import DeliveryFailed, RecordsDelivered
from kproto.types import TopicPartition
from transports._observe import Observer, merge_metrics, split_observe
from transports._tls import SECURITY_OPTIONS, Security, client_security_kwargs, security_from_configs

if TYPE_CHECKING:
    from kproto.producer.config import ProducerConfig

__all__ = [
    "FACADE_OPTIONS",
    "Delivery",
    "FacadeOptions",
    "PRODUCER_DRIVER",
    "SelectorClient",
    "auth_failure",
    "crash_producer",
    "crashed_error",
    "last_error",
    "timeout_error",
    "RecordMetadata",
    "TopicPartition",
    "dispatch_events",
    "now_ms",
    "prepare_record",
    "send_record",
    "AsyncProducerBase",
    "wait_for_topic_async",
    "split_configs",
]

log = logging.getLogger("transports")

Serializer = Callable[[Any], Any]
_D = TypeVar("_D", bound="Delivery")
#: ``send`` yields to the event loop after this many records that did not
#: need to wait (an ``await`` that never suspends never lets other tasks run).
_YIELD_EVERY = 512


class RecordMetadata(NamedTuple):
    """What the broker said about one acknowledged record.

    Field order matches kafka-python's ``RecordMetadata`` so positional
    unpacking keeps working for code written against that API.
    """

    #: The topic the record was written to.
    topic: str
    #: The partition the record was written to.
    partition: int
    #: ``(topic, partition)``.
    topic_partition: TopicPartition
    #: The record's offset; -1 with ``acks=0`` (the broker does not answer).
    offset: int
    #: The record's timestamp (the broker's LogAppendTime if the topic uses it), ms since the epoch.
    timestamp: int
    #: Always None: record batch format v2 has no per-record checksum.
    checksum: int | None
    #: Length of the serialized key, -1 for a None key.
    serialized_key_size: int
    #: Length of the serialized value, -1 for a None value (a tombstone).
    serialized_value_size: int
    #: Sum of the UTF-8 header key lengths and header value lengths, -1 without headers.
    serialized_header_size: int


#: Options the facade handles itself; all others go to ``ProducerConfig``
#: (which also keeps the security options, ``security_protocol``, ``ssl_*``,
#: ``sasl_*``: the transports build TLS from them, see ``transports/_tls.py``,
#: and the client core SASL, through ``make_core``).
FACADE_OPTIONS = frozenset({"key_serializer", "value_serializer"})


class FacadeOptions(NamedTuple):
    """The facade-level options split off the user's keyword arguments."""

    key_serializer: Serializer | None
    value_serializer: Serializer | None
    #: TLS context and SASL settings; None means PLAINTEXT.
    security: Security | None = None

    def core_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``make_core`` (empty for PLAINTEXT/SSL)."""
        sec = self.security
        return {"security": sec} if sec is not None and sec.sasl else {}


def split_configs(
    configs: Mapping[str, Any], *, allow_async_provider: bool = False
) -> tuple[FacadeOptions, ProducerConfig]:
    """Split ``KafkaProducer(**configs)`` into facade options and a ``ProducerConfig``.

    Args:
        configs: The keyword arguments the user passed.
        allow_async_provider: The facade resolves an async ``sasl_oauth_token_provider``.

    Returns:
        ``(facade_options, producer_config)``.

    Raises:
        TypeError: An unknown option (named, with the closest valid name) or a
            serializer that is not callable.
        ValueError: An option with a value that is not allowed.
    """
    from kproto.producer.config import ProducerConfig

    core_kwargs = {k: v for k, v in configs.items() if k not in FACADE_OPTIONS}
    serializers: list[Serializer | None] = []
    for name in ("key_serializer", "value_serializer"):
        fn = configs.get(name)
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        serializers.append(fn)
    config = ProducerConfig.from_kwargs(**core_kwargs)
    security = None
    if any(configs.get(name) is not None for name in SECURITY_OPTIONS):
        security = security_from_configs(configs, allow_async_provider=allow_async_provider)
        if security.protocol == "PLAINTEXT":
            security = None
    return FacadeOptions(serializers[0], serializers[1], security), config


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch (the default record timestamp)."""
    return time.time_ns() // 1_000_000


_BYTES_TYPES = (bytes, bytearray, memoryview)


def _check_bytes(what: str, data: object) -> bytes | None:
    if data is None or type(data) is bytes:
        return data  # type: ignore[return-value,unused-ignore]
    if isinstance(data, _BYTES_TYPES):
        return bytes(data)
    raise TypeError(
        f"{what} must be bytes, bytearray, memoryview or None (or set {what}_serializer), "
        f"got {type(data).__name__}"
    )


def _check_headers(headers: object) -> tuple[list[tuple[str, bytes]], int]:
    if not isinstance(headers, (list, tuple)):
        raise TypeError(f"headers must be a list of (str, bytes) tuples, got {type(headers).__name__}")
    out: list[tuple[str, bytes]] = []
    size = 0
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"each header must be a (str, bytes) tuple, got {item!r}")
        hval = item[1]
        if hval is not None and type(hval) is not bytes:
            if not isinstance(hval, _BYTES_TYPES):
                raise TypeError(f"header {item[0]!r}: value must be bytes or None, got {type(hval).__name__}")
            hval = bytes(hval)
        out.append((item[0], hval))
        size += len(item[0].encode("utf-8")) + (len(hval) if hval is not None else 0)
    return out, (size if out else -1)


def prepare_record(
    options: FacadeOptions,
    topic: object,
    value: object,
    key: object,
    headers: object,
    partition: object,
    timestamp_ms: object,
) -> tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None, int | None, int, int]:
    """Validate and serialize one ``send()``'s arguments.

    Serializers run here, so their exceptions come out of ``send``. They are
    not called for a None key or value (no key; a tombstone).

    Returns:
        ``(topic, key, value, headers, partition, timestamp_ms, header_size)``;
        headers is None when there are none.

    Raises:
        TypeError: topic not a str; key/value not bytes-like after serialization;
            malformed headers; partition/timestamp not int.
        ValueError: both key and value are None; negative partition.
    """
    if type(topic) is not str:
        raise TypeError(f"topic must be a str, got {type(topic).__name__}")
    if value is None and key is None:
        raise ValueError("send() needs a key or a value (a None value with a key is a tombstone)")
    # None is never passed to a serializer: a None key stays "no key" and a
    # None value stays a tombstone, whatever the serializer would make of None.
    ks, vs = options.key_serializer, options.value_serializer
    if ks is not None and key is not None:
        key = ks(key)
    if vs is not None and value is not None:
        value = vs(value)
    if type(key) is not bytes and key is not None:
        key = _check_bytes("key", key)
    if type(value) is not bytes and value is not None:
        value = _check_bytes("value", value)
    if value is None and key is None:
        raise ValueError("send() needs a key or a value: both serialized to None")
    if headers is None or (type(headers) is list and not headers):
        hdrs: list[tuple[str, bytes]] | None = None
        header_size = -1
    else:
        hdrs, header_size = _check_headers(headers)
        if not hdrs:
            hdrs = None
    if partition is not None and (type(partition) is not int or partition < 0):
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise TypeError(f"partition must be an int or None, got {type(partition).__name__}")
        raise ValueError(f"partition must be >= 0, got {partition}")
    if timestamp_ms is None:
        ts = time.time_ns() // 1_000_000
    elif type(timestamp_ms) is int:
        ts = timestamp_ms
    elif isinstance(timestamp_ms, (int, float)) and not isinstance(timestamp_ms, bool):
        ts = int(timestamp_ms)
    else:
        raise TypeError(f"timestamp_ms must be an int or None, got {type(timestamp_ms).__name__}")
    return topic, key, value, hdrs, partition, ts, header_size  # type: ignore[return-value,unused-ignore]


_time_ns = time.time_ns
_new = object.__new__


def send_record(
    core: Any, t: str, k: bytes | None, v: bytes | None, h: Any, p: int | None, ts: int, tok: Any, now: float
) -> bool:
    """``core.send`` of one prepared record (topic, key, value, headers, partition, timestamp, token).

    The general path of the facades, and their retry once buffer space is free; a core takes the
    fields by keyword only (the tests' stand-in cores).
    """
    accepted: bool = core.send(topic=t, key=k, value=v, headers=h, partition=p, timestamp_ms=ts, token=tok, now=now)
    return accepted


def lazy_exports(module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``names[name]``'s module on first use.

    So a producer import does not load the consumer (and a consumer import
    error cannot break the producer).
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


class AsyncProducerBase(Generic[_D]):
    """``send()`` for the asyncio and trio producers, which differ only in the hooks below."""

    _handle_type: type[_D]
    _driver: Any
    #: ProducerCore.send_value (the send hot path), None for a core without it.
    _send_value: Callable[[str, bytes | None, bytes, int, object, float], bool] | None
    _closed: bool
    _plain: bool
    _options: FacadeOptions
    _known_topics: set[str]
    _max_block: float
    _unyielded: int
    #: Logs, hooks, interceptors and metrics (transports/_observe.py); made with the driver.
    _observer: Observer | None
    config: ProducerConfig

    async def _ensure_running(self) -> Any:
        raise NotImplementedError

    async def _checkpoint(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _make_core(config: ProducerConfig, now: float, *args: Any, **kwargs: Any) -> Any:
        """Builds the core (:func:`make_core`); a seam for tests that drive a stand-in core."""
        return make_core(config, now, *args, **kwargs)

    def _new_core(self, now: float) -> Any:
        """The core for a new driver (:meth:`_make_core` with this producer's options)."""
        core = self._make_core(self.config, now, **self._options.core_kwargs())
        self._send_value = getattr(core, "send_value", None)
        return core

    def __init__(self, **configs: Any) -> None:
        """A producer with ``configs``.

        Args:
            **configs: The options of the spec (``bootstrap_servers``, ``acks``,
                ``linger_ms``, ...), plus ``key_serializer`` and ``value_serializer``.

        Raises:
            TypeError: An unknown option (the message names the closest valid one).
            ValueError: An option value that is not allowed.
        """
        self._observe, configs = split_observe(configs)
        self._observer = None
        self._options, self.config = split_configs(configs, allow_async_provider=True)
        self._max_block = self.config.max_block_ms / 1000.0
        self._driver = None
        self._send_value = None
        self._known_topics = set()
        # Interceptors see every record before serialization: no fast path then.
        self._plain = (
            self._options.key_serializer is None
            and self._options.value_serializer is None
            and not self._observe.interceptors
        )
        self._closed = False
        self._unyielded = 0

    def _observed_driver(self, core: Any, clock: Callable[[], float]) -> dict[str, Any]:
        """The driver settings for ``core``, with this producer's observer in its sink."""
        self._observer = Observer("producer", self._observe, clock, getattr(core, "client", None))
        self._observer.metrics_source = self.metrics
        return {**PRODUCER_DRIVER, "sink": self._observer.producer_sink(dispatch_events)}

    async def _wait_for_topic(self, driver: Any, topic: str) -> set[int]:
        return await wait_for_topic_async(self, driver, topic, driver.now)

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> RecordMetadata:
        """``await (await send(...))``: queue one record and wait for its acknowledgement.

        Takes :meth:`send`'s arguments, in the subclass's order (aiokafka's for
        ``AIOKafkaProducer``).

        Returns:
            The record's :class:`RecordMetadata`.

        Raises:
            KafkaError: As :meth:`send`, or the delivery's failure.
        """
        handle = await self.send(*args, **kwargs)
        return await handle  # type: ignore[no-any-return,misc]  # the handle classes are awaitable

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of ``topic``, fetching metadata if needed.

        Returns:
            The set of partition ids.

        Raises:
            KafkaTimeoutError: No metadata within ``max_block_ms``.
        """
        return await self._wait_for_topic(await self._ensure_running(), topic)

    async def flush(self, timeout: float | None = None) -> None:
        """Make every buffered record sendable now and wait until all are done.

        Args:
            timeout: Seconds to wait; None waits without bound.

        Raises:
            KafkaTimeoutError: Records still pending after ``timeout``.
        """
        driver = self._driver
        if driver is not None and driver.crashed is not None:
            raise crashed_error("the producer's driver", driver.crashed)
        if driver is None or driver.ended:
            await self._checkpoint()
            return
        deadline = None if timeout is None else driver.now() + timeout
        first = True
        while True:
            # The driver is woken when the flush closed a lingering batch (and once at the start),
            # not on every turn: kicked on every turn, it would wake this wait at once and spin
            # until the last acknowledgement came.
            if driver.core.flush(driver.now()) or first:
                driver.kick()
                first = False
            if driver.core.pending_count() == 0:
                # Deliveries the core reported since the driver last ran must be
                # resolved before flush returns.
                driver.pump()
                await self._checkpoint()
                return
            if not await driver.progress(deadline):
                raise KafkaTimeoutError(f"flush did not complete within {timeout}s")
            if driver.crashed is not None:
                raise crashed_error("the producer's driver", driver.crashed)

    def metrics(self) -> dict[str, dict[str, float]]:
        """Producer metrics, kafka-python shaped: ``{'producer-metrics': {name: value}}``.

        Returns:
            A fresh dict (empty metrics before ``start``).
        """
        if self._driver is None:
            return {"producer-metrics": {}}
        assert self._observer is not None  # made with the driver
        return merge_metrics(self._driver.core.metrics(self._driver.now()), self._observer.metrics())

    def bootstrap_connected(self) -> bool:
        """True while a connection to a bootstrap/broker is up.

        Returns:
            Whether the core reports a live bootstrap connection.
        """
        return self._driver is not None and bool(self._driver.core.bootstrap_connected())

    async def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> _D:
        """Queue one record, waiting only for buffer space (or a new topic's metadata).

        Args:
            topic: Destination topic.
            value: The value: bytes, or anything ``value_serializer`` accepts.
            key: The key: bytes, or anything ``key_serializer`` accepts.
            headers: ``[(str, bytes), ...]``.
            partition: Explicit partition; otherwise the partitioner chooses.
            timestamp_ms: Record timestamp, ms since the epoch; default now.

        Returns:
            A :class:`DeliveryHandle`; ``await`` it for the :class:`RecordMetadata`.

        Raises:
            IllegalStateError: The producer is closed (trio: or not started).
            KafkaTimeoutError: No metadata or no buffer space within ``max_block_ms``.
            TypeError: A key/value that is not bytes with no serializer, bad headers.
            ValueError: Both key and value None, a bad partition or topic.
            RecordTooLargeError: The record alone is over ``max_request_size``.
        """
        driver = self._driver
        if driver is None or self._closed or driver.crashed is not None:
            driver = await self._ensure_running()
        clock = driver.now
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
            # The hot path: bytes in, every default (prepare_record's outcome, inlined);
            # the handle is built without an __init__ call (the stores of the
            # handle classes' __init__, kept in step with them).
            k: bytes | None = key
            v: bytes | None = value
            hdrs: list[tuple[str, bytes]] | None = None
            part: int | None = None
            ts = _time_ns() // 1_000_000
            handle = _new(self._handle_type)
            handle.topic = topic
            handle.timestamp_ms = ts
            handle.key_size = -1 if key is None else len(key)
            handle.value_size = len(value)
            handle.header_size = -1
            handle._state = 0
            handle._error = None
            handle._waiter = None
        else:
            observer = self._observer
            if observer is not None and observer.interceptors:
                topic, value, key, headers, partition, timestamp_ms = observer.on_send(
                    topic, value, key, headers, partition, timestamp_ms
                )
            topic, k, v, hdrs, part, ts, hsize = prepare_record(
                self._options, topic, value, key, headers, partition, timestamp_ms
            )
            if topic not in self._known_topics:
                await self._wait_for_topic(driver, topic)
            handle = self._handle_type(
                topic, ts, -1 if k is None else len(k), -1 if v is None else len(v), hsize
            )
        core = driver.core
        try:
            send_value = self._send_value
            if hdrs is None and part is None and v is not None and send_value is not None:
                accepted = send_value(topic, k, v, ts, handle, clock())
            else:
                accepted = send_record(core, topic, k, v, hdrs, part, ts, handle, clock())
        except MessageSizeTooLargeError as exc:
            # As kafka-python: a record too large for any request fails its own handle.
            handle._fail(exc)
            return handle
        if not accepted:
            deadline = clock() + self._max_block
            driver.kick()  # once: acknowledgements wake the driver, and it wakes this wait
            while True:
                if not await driver.progress(deadline):
                    raise KafkaTimeoutError(
                        f"buffer_memory full for longer than max_block_ms ({self.config.max_block_ms} ms)"
                    )
                if driver.crashed is not None:
                    raise crashed_error("the producer's driver", driver.crashed)
                if self._closed:
                    raise IllegalStateError("producer closed while send() waited for buffer space")
                if send_record(core, topic, k, v, hdrs, part, ts, handle, clock()):
                    break
            self._unyielded = 0
        else:
            if driver.asleep:
                driver.kick()
            self._unyielded += 1
            if self._unyielded >= _YIELD_EVERY:
                self._unyielded = 0
                await self._checkpoint()
        return handle


async def wait_for_topic_async(
    producer: Any, driver: Any, topic: str, clock: Callable[[], float]
) -> set[int]:
    """The asyncio and trio producers' wait for ``topic``'s metadata; ``clock`` is the runtime's clock."""
    deadline = clock() + producer._max_block
    asked = -1.0
    while True:
        parts = driver.core.partitions_for(topic)
        if parts:
            producer._known_topics.add(topic)
            return set(parts)
        failure = auth_failure(driver.core)
        if failure is not None:
            raise failure
        now = clock()
        if now - asked > 0.5:
            driver.core.request_metadata(topic, now)
            asked = now
            driver.kick()  # only after a request: a kick per turn would spin until the answer
        if not await driver.progress(min(deadline, now + 0.5)) and clock() >= deadline:
            raise timeout_error(
                driver.core,
                f"no metadata for topic {topic!r} within max_block_ms ({producer.config.max_block_ms} ms)",
            )
        if driver.crashed is not None:
            raise crashed_error("the producer's driver", driver.crashed)
        if producer._closed:
            raise IllegalStateError("producer closed while waiting for metadata")


class Delivery:
    """One record's delivery state; also the token handed to the core.

    Runtime-specific subclasses add the waiting part (callbacks, an asyncio
    future, a trio event) in ``_waiter`` and override :meth:`_completed`,
    which is called once, on the driver's thread or task, when the outcome
    is known and ``_waiter`` is set (a delivered batch's tokens nobody waits
    on cost four attribute stores each, no call).

    A lean ``__slots__`` class rather than an attrs one: one of these is made
    per record on the hot path.
    """

    __slots__ = (
        "_error",
        "_log_append_time",
        "_offset",
        "_partition",
        "_state",
        "header_size",
        "key_size",
        "timestamp_ms",
        "topic",
        "value_size",
        "_waiter",
    )

    _PENDING, _DONE, _FAILED = 0, 1, 2

    #: What :meth:`_completed` has to wake or run (the subclass's: callbacks,
    #: a future, an event), None while nobody waits: :func:`dispatch_events`
    #: calls ``_completed`` only when it is set.
    _waiter: Any

    def __init__(
        self, topic: str, timestamp_ms: int, key_size: int, value_size: int, header_size: int
    ) -> None:
        self.topic = topic
        self.timestamp_ms = timestamp_ms
        self.key_size = key_size
        self.value_size = value_size
        self.header_size = header_size
        self._state = 0
        self._error: BaseException | None = None
        self._waiter = None
        # _partition, _offset and _log_append_time are set when the outcome arrives.

    # --- outcome, set by dispatch_events on the driver side -------------

    def _deliver(self, partition: int, offset: int, log_append_time_ms: int) -> None:
        if self._state:
            return
        self._partition = partition
        self._offset = offset
        self._log_append_time = log_append_time_ms
        self._state = 1
        self._completed()

    def _fail(self, error: BaseException) -> None:
        if self._state:
            return
        self._error = error
        self._state = 2
        self._completed()

    def _completed(self) -> None:
        """Hook for subclasses: wake waiters, run callbacks (called only if ``_waiter`` is set)."""

    # --- reading the outcome --------------------------------------------

    def _metadata(self) -> RecordMetadata:
        ts = self._log_append_time if self._log_append_time != -1 else self.timestamp_ms
        return RecordMetadata(
            self.topic,
            self._partition,
            TopicPartition(self.topic, self._partition),
            self._offset,
            ts,
            None,
            self.key_size,
            self.value_size,
            self.header_size,
        )

    def _outcome(self) -> RecordMetadata:
        if self._state == 1:
            return self._metadata()
        assert self._error is not None
        raise self._error


def dispatch_events(events: Iterable[Event], other: Callable[[Event], object] | None = None) -> int:
    """Resolve the delivery tokens carried by the core's events.

    Args:
        events: From ``core.events()``: ``RecordsDelivered`` / ``DeliveryFailed``
            and the client's events the producer core forwards.
        other: Takes every event that is not a delivery report (the facade's
            observer: logs, hooks); None drops them.

    Returns:
        How many tokens were resolved.
    """
    # Delivery._deliver inlined: a batch's tokens are resolved in one loop,
    # and _completed is only called for a token someone waits on. ``type(ev) is``
    # (the two classes are final) is the cheapest exact dispatch.
    n = 0
    tok: Any  # the facades' Delivery objects
    for ev in events:
        if type(ev) is RecordsDelivered:
            tokens = ev.tokens
            part = ev.partition
            lat = ev.log_append_time_ms
            base = ev.base_offset
            for off, tok in enumerate(tokens, base) if base >= 0 else zip(repeat(-1), tokens):
                if not tok._state:
                    tok._partition = part
                    tok._offset = off
                    tok._log_append_time = lat
                    tok._state = 1
                    if tok._waiter is not None:
                        tok._completed()
        elif type(ev) is DeliveryFailed:
            tokens = ev.tokens
            err = ev.error
            part = ev.partition
            for tok in tokens:
                tok._partition = part
                tok._fail(err)
            if other is not None:
                other(ev)  # rare: logged
        else:
            if other is not None:
                other(ev)
            continue
        n += len(tokens)
    return n


def auth_failure(core: Any) -> BaseException | None:
    """The authentication failure (SASL or TLS) that keeps the core's client from the cluster,
    or its ``NoBrokersAvailable`` once ``bootstrap_timeout_ms`` passed with no broker answering.

    Facades waiting for metadata raise it at once instead of waiting out
    ``max_block_ms``: credentials or certificates do not fix themselves. A
    fresh exception per call (tracebacks would pile up on a shared one).
    """
    # ProducerCore.auth_error; a core without that property (the consumer's,
    # a stand-in) is asked through its client.
    client = getattr(core, "client", None)
    if hasattr(type(core), "auth_error"):
        error = core.auth_error
    else:
        error = getattr(client, "auth_error", None)
    if error is None and getattr(getattr(client, "config", None), "bootstrap_timeout_ms", None) is not None:
        # bootstrap_timeout_ms passed with no broker answering: kafka-python
        # fails its constructor then; kproto fails the waiting calls.
        error = getattr(client, "bootstrap_error", None)
    if not isinstance(error, BaseException):
        return None
    try:
        fresh = type(error)(*error.args)
    except TypeError:
        return error
    fresh.__cause__ = error.__cause__
    return fresh


def last_error(core: Any) -> BaseException | None:
    """Why the core's client last failed to connect or to get metadata, None if unknown."""
    client = getattr(core, "client", None)
    error = getattr(client, "last_error", None)
    return error if isinstance(error, BaseException) else None


def timeout_error(core: Any, what: str) -> KafkaTimeoutError:
    """``KafkaTimeoutError(what)`` naming the client's last failure and chaining it as ``__cause__``.

    "No metadata within max_block_ms" alone hides the reason (refused, a TLS
    handshake against a plaintext port, a response over the frame-size cap).
    """
    cause = last_error(core)
    if cause is None:
        return KafkaTimeoutError(what)
    error = KafkaTimeoutError(f"{what}; last error: {describe(cause)}")
    error.__cause__ = cause
    return error


def describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, plus its root cause when that says more (``Connection refused``)."""
    text = f"{type(exc).__name__}: {exc}"
    root = exc
    for _ in range(8):
        if root.__cause__ is None:
            break
        root = root.__cause__
    if root is not exc:
        errno_ = getattr(root, "errno", None)
        why = os.strerror(errno_) if isinstance(errno_, int) and errno_ > 0 else str(root)
        if why and why not in text:
            text += f" (caused by {type(root).__name__}: {why})"
    return text


def crashed_error(what: str, exc: BaseException) -> IllegalStateError:
    """The error every call gets once a driver loop died of ``exc`` (a bug): says why, chains it."""
    error = IllegalStateError(f"{what} crashed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def crash_producer(core: Any, exc: BaseException, now: float) -> None:
    """A producer driver died of ``exc`` (a bug): log it, fail every pending record at once."""
    log.error("kproto producer driver crashed", exc_info=exc)
    try:
        core.abort(now, KafkaError(f"producer driver crashed: {exc!r}"))
        dispatch_events(core.events())
    except Exception:
        log.exception("abort after the crash failed")


#: How a producer facade's event-loop driver treats its core: events resolve
#: the delivery tokens, a crash fails every pending record.
PRODUCER_DRIVER: dict[str, Any] = {"sink": dispatch_events, "on_crash": crash_producer, "what": "the producer's driver"}


def make_core(config: ProducerConfig, now: float, security: Security | None = None) -> Any:
    """Build the sans-I/O producer core (a seam tests use to drive a stand-in core).

    With SASL, the core's client is built here with the ``sasl_*`` options
    added to the ``ClientConfig`` options the producer config shares.
    """
    import random

    from kproto.producer import ProducerCore

    rng = random.Random()
    client = None
    if security is not None and security.sasl:
        from kproto.client import Client

        # SCRAM nonces from the OS's generator: the core itself never draws from it.
        client = Client(config.client_config(**client_security_kwargs(security)), now=now, rng=rng)
    return ProducerCore(config, now=now, rng=rng, client=client)


_Client = TypeVar("_Client", bound="SelectorClient")


class SelectorClient:
    """``with`` support and a finalizer for a blocking facade whose :class:`SelectorDriver` is ``_driver``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Client) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Sockets only: no commit or request from a finalizer.
        driver = getattr(self, "_driver", None)
        if driver is not None and not getattr(self, "_closed", True):
            try:
                driver.close()
            except Exception:
                pass

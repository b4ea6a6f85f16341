"""aiokafka's names on the asyncio and trio facades: options, methods, future-like send results.

Mixed into the facades' classes; nothing here drives I/O. What maps where:

- :func:`aiokafka_configs` turns aiokafka's ``__init__`` keywords into kproto
  options before the shared option handling sees them (``loop`` dropped with
  a DeprecationWarning, ``max_batch_size`` -> ``batch_size``, aiokafka's
  "unset" values that mean kproto's own default dropped).
- :class:`ProducerCompat`: ``stop``, ``create_batch``/``send_batch``
  (:class:`BatchBuilder`) and ``async with producer.transaction()``.
- ``ConsumerCompat`` (in :mod:`transports._aiokafka_consumer`, so that a producer does not
  import the consumer): ``getone``/``getmany`` with partition filters, ``seek_to_committed``,
  ``last_stable_offset``, ``last_poll_timestamp``, ``stop``.
- :class:`HandleCompat`: kafka-python's ``get``/``add_callback``/``add_errback``
  and the asyncio-future calls on top of each facade's ``add_done_callback``.

See docs/aiokafka.md for every option and method and where kproto differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from kproto.errors import IllegalStateError, KafkaError
from kproto.protocol.records import RecordsBuffer, encode_headers
from transports._common import AsyncProducerBase, Delivery, FacadeOptions, RecordMetadata, prepare_record

__all__ = [
    "AsyncioHandleCompat",
    "BatchBuilder",
    "BatchDelivery",
    "HandleCompat",
    "ProducerCompat",
    "TrioHandleCompat",
    "TrioProducerCompat",
    "TrioWaiter",
    "aiokafka_configs",
]

#: aiokafka defaults meaning "not set", i.e. what kproto does when the option is absent:
#: dropped before the shared option handling. Other values of these names go through to it.
_UNSET_VALUES: dict[str, tuple[Any, ...]] = {
    "client_id": (None,),  # aiokafka generates one; so does kproto
    "api_version": (None, "auto"),  # negotiate with ApiVersions
    "client_rack": (None, ""),  # no rack: fetch from the leader
    "sasl_kerberos_service_name": ("kafka",),
    "sasl_kerberos_domain_name": (None,),
    "connections_max_idle_ms": (540000,),  # kafka-python's and aiokafka's default
}

#: Options of aiokafka with no kproto counterpart: accepted, ignored, warned about once.
_IGNORED = {
    "consumer_timeout_ms": (
        "aiokafka's consumer_timeout_ms (the background fetcher's wait) has no kproto counterpart: "
        "fetches follow responses and deadlines, not a polling timer; ignored"
    ),
}

#: aiokafka's ``max_poll_records=None``: no bound on one ``getmany``.
NO_LIMIT = 2**31 - 1

_D = TypeVar("_D", bound=Delivery)
_warned: set[str] = set()
log = logging.getLogger("transports")


def warn_once(name: str, message: str) -> None:
    """One UserWarning per option name per process."""
    if name not in _warned:
        _warned.add(name)
        warnings.warn(message, UserWarning, stacklevel=4)


def aiokafka_configs(configs: dict[str, Any], *, consumer: bool, aiokafka: bool) -> dict[str, Any]:
    """aiokafka's ``__init__`` keywords as kproto options (a new dict; ``configs`` is untouched).

    Args:
        configs: What the user passed.
        consumer: For a consumer (else a producer).
        aiokafka: The ``AIOKafka*`` class: names aiokafka and kafka-python both use take
            aiokafka's meaning (``consumer_timeout_ms``).

    Raises:
        TypeError: ``max_batch_size`` together with ``batch_size``.
    """
    out = dict(configs)
    if "loop" in out:
        del out["loop"]
        # aiokafka deprecated it too: the running loop is the one used.
        warnings.warn(
            "the loop option is deprecated and ignored: the running event loop is used",
            DeprecationWarning,
            stacklevel=3,
        )
    if not consumer and "max_batch_size" in out:
        if "batch_size" in out:
            raise TypeError("pass max_batch_size (aiokafka) or batch_size (kafka-python), not both")
        out["batch_size"] = out.pop("max_batch_size")
    if consumer and "max_poll_records" in out and out["max_poll_records"] is None:
        out["max_poll_records"] = NO_LIMIT
    if aiokafka:
        for name, why in _IGNORED.items():
            if name in out:
                del out[name]
                warn_once(name, why)
    for name, unset in _UNSET_VALUES.items():
        if name in out and any(out[name] is u or out[name] == u for u in unset):
            del out[name]
    return out


# --- send results -------------------------------------------------------------------


class HandleCompat:
    """kafka-python's future calls and the rest of asyncio's, on a delivery handle.

    The facade's handle provides ``done``, ``result``, ``exception`` and
    ``add_done_callback(fn)`` (``fn(handle)`` once the outcome is known).
    """

    __slots__ = ()

    if TYPE_CHECKING:

        def done(self) -> bool: ...
        def result(self) -> RecordMetadata: ...
        def exception(self) -> BaseException | None: ...
        def add_done_callback(self, fn: Callable[[Any], object]) -> None: ...
        def _outcome(self) -> RecordMetadata: ...  # Delivery's, in the handle this is mixed into

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """kafka-python's ``future.get()`` for a handle that is done (after ``flush``).

        An event loop cannot block: await the handle instead while it is pending.

        Raises:
            IllegalStateError: Not done yet.
            KafkaError: The delivery failed.
        """
        if not self.done():
            raise IllegalStateError("delivery not done yet: await the handle (or flush first)")
        return self._outcome()

    @property
    def is_done(self) -> bool:
        """kafka-python's name for :meth:`done`."""
        return self.done()

    def succeeded(self) -> bool:
        """Done and acknowledged."""
        return self.done() and self.exception() is None

    def failed(self) -> bool:
        """Done and failed."""
        return self.done() and self.exception() is not None

    @property
    def value(self) -> RecordMetadata | None:
        """The metadata once acknowledged, else None (kafka-python)."""
        return self.result() if self.succeeded() else None

    def cancelled(self) -> bool:
        """Always False: a queued record cannot be recalled."""
        return False

    def cancel(self, msg: Any = None) -> bool:
        """Refused (returns False): a queued record cannot be recalled."""
        return False

    def add_callback(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> HandleCompat:
        """kafka-python: ``fn(metadata, *args, **kwargs)`` once acknowledged."""

        def cb(h: Any) -> None:
            if h.exception() is None:
                fn(h.result(), *args, **kwargs)

        self.add_done_callback(cb)
        return self

    def add_errback(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> HandleCompat:
        """kafka-python: ``fn(exception, *args, **kwargs)`` once failed."""

        def cb(h: Any) -> None:
            exc = h.exception()
            if exc is not None:
                fn(exc, *args, **kwargs)

        self.add_done_callback(cb)
        return self


class _Call:
    """``fn(handle)`` as an asyncio future's done callback; equal to ``fn`` for ``remove_done_callback``."""

    __slots__ = ("fn", "handle")

    def __init__(self, fn: Callable[[Any], object], handle: Any) -> None:
        self.fn = fn
        self.handle = handle

    def __call__(self, _: object = None) -> None:
        self.fn(self.handle)

    def __eq__(self, other: object) -> bool:
        return other is self.fn or (isinstance(other, _Call) and other.fn is self.fn)

    def __hash__(self) -> int:
        return hash(self.fn)


class AsyncioHandleCompat(HandleCompat):
    """asyncio's future callbacks on the asyncio facade's handle (its ``_waiter`` is a future)."""

    if not TYPE_CHECKING:  # the handle's slots are Delivery's (mypy would take _waiter for a class var)
        __slots__ = ()

    if TYPE_CHECKING:
        _waiter: asyncio.Future[None] | None

    def _future(self) -> asyncio.Future[None]:
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Any = None) -> None:
        """``fn(handle)`` once acknowledged or failed, scheduled on the loop as asyncio does."""
        if self.done():
            asyncio.get_running_loop().call_soon(fn, self, context=context)
        else:
            self._future().add_done_callback(_Call(fn, self), context=context)

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        """Remove ``fn`` from the callbacks; how many were removed."""
        w = self._waiter
        return 0 if w is None else w.remove_done_callback(fn)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (a handle is tied to its producer's)."""
        return asyncio.get_running_loop()


class TrioWaiter:
    """The trio handle's ``_waiter`` once callbacks are added: an event plus the callbacks."""

    __slots__ = ("event", "callbacks")

    def __init__(self, event: Any) -> None:
        self.event = event
        self.callbacks: list[Callable[[Any], object]] = []

    def set(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        await self.event.wait()


class TrioHandleCompat(HandleCompat):
    """Done callbacks on the trio facade's handle: called in the driver task, no loop, no future."""

    __slots__ = ()

    if TYPE_CHECKING:
        _waiter: Any

    def _completed(self) -> None:
        w = self._waiter
        if w is not None:
            w.set()
            if type(w) is TrioWaiter:
                for fn in w.callbacks:
                    try:
                        fn(self)
                    except Exception:  # the user's callback: it must not take the driver down
                        log.exception("delivery callback %r raised", fn)

    def result(self) -> RecordMetadata:
        """The metadata of a done handle, as :meth:`get` (``IllegalStateError`` while pending)."""
        return self.get()

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """``fn(handle)`` once acknowledged or failed (at once if done); it must not block."""
        if self.done():
            fn(self)
            return
        w = self._waiter
        if type(w) is not TrioWaiter:
            import trio  # type: ignore[import-untyped,unused-ignore]

            w = self._waiter = TrioWaiter(trio.Event() if w is None else w)
        w.callbacks.append(fn)

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        """Remove ``fn`` from the callbacks; how many were removed."""
        w = self._waiter
        if type(w) is not TrioWaiter:
            return 0
        n = len(w.callbacks)
        w.callbacks = [f for f in w.callbacks if f is not fn]
        return n - len(w.callbacks)


class BatchDelivery(HandleCompat):
    """The outcome of a :meth:`ProducerCompat.send_batch`: awaitable, future-like.

    Done when every record of the batch is; its metadata is the first
    record's (the batch's base offset), its error the first record's error.
    """

    __slots__ = ("_handles", "_left", "_callbacks")

    def __init__(self, handles: list[Any]) -> None:
        self._handles = handles
        self._left = sum(1 for h in handles if not h.done())
        self._callbacks: list[Callable[[Any], object]] = []
        if self._left:
            for h in handles:
                if not h.done():
                    h.add_done_callback(self._one_done)

    def _one_done(self, _: Any) -> None:
        self._left -= 1
        if self._left == 0:
            for fn in self._callbacks:
                fn(self)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        for h in self._handles:
            if not h.done():
                yield from h.__await__()
        return self.result()

    def done(self) -> bool:
        """True once every record is acknowledged or failed."""
        return all(h.done() for h in self._handles)

    def exception(self) -> BaseException | None:
        """The first failed record's error, else None."""
        for h in self._handles:
            exc: BaseException | None = h.exception()
            if exc is not None:
                return exc
        return None

    def result(self) -> RecordMetadata:
        """The first record's metadata (offset = the batch's base offset).

        Raises:
            IllegalStateError: Not done yet.
            KafkaError: A record of the batch failed.
        """
        if not self.done():
            raise IllegalStateError("batch delivery not done yet")
        exc = self.exception()
        if exc is not None:
            raise exc
        first: RecordMetadata = self._handles[0].result()
        return first

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """``fn(batch_delivery)`` once every record is done (at once if done)."""
        if self.done():
            fn(self)
        else:
            self._callbacks.append(fn)


# --- producer ---------------------------------------------------------------------


class BatchRecordMetadata(NamedTuple):
    """What :meth:`BatchBuilder.append` returns: aiokafka's fields."""

    #: Index in the batch (the offset relative to the batch's base offset).
    offset: int
    #: Always None: record batch v2 has no per-record CRC.
    crc: int | None
    #: The record's encoded size in the batch.
    size: int
    #: The record's timestamp (ms).
    timestamp: int


class BatchBuilder:
    """Records gathered for one :meth:`ProducerCompat.send_batch`, up to ``batch_size`` bytes.

    Keys and values go through the producer's serializers at ``append`` (to
    count their size) and again at ``send_batch``.
    """

    def __init__(self, options: FacadeOptions, limit: int) -> None:
        self._options = options
        self._limit = limit
        self._buffer = RecordsBuffer()
        self._records: list[tuple[Any, Any, int, list[tuple[str, bytes]] | None]] = []
        self._closed = False

    def append(
        self, *, timestamp: int | None, key: Any, value: Any, headers: Iterable[tuple[str, bytes]] | None = None
    ) -> BatchRecordMetadata | None:
        """Add a record unless the batch is full or closed (then None).

        Args:
            timestamp: Record timestamp in ms since the epoch (as aiokafka passes
                it on to its builder); None: now.
            key: The key (serialized with the producer's ``key_serializer``).
            value: The value (``value_serializer``); ``key`` and ``value`` not both None.
            headers: ``[(str, bytes), ...]``.

        Raises:
            TypeError, ValueError: As ``send`` for a bad record.
        """
        if self._closed:
            return None
        hdrs = list(headers) if headers else None
        _, k, v, checked, _, ts, _ = prepare_record(self._options, "", value, key, hdrs, None, timestamp)
        size = self._buffer.append(ts, k, v, encode_headers(checked) if checked else b"\x00", self._limit)
        if not size:
            return None
        self._records.append((key, value, ts, checked))
        return BatchRecordMetadata(len(self._records) - 1, None, size, ts)

    def size(self) -> int:
        """The batch's size in bytes, uncompressed, header included."""
        return self._buffer.size

    def record_count(self) -> int:
        """How many records were appended."""
        return len(self._records)

    def close(self) -> None:
        """Take no more records."""
        self._closed = True


class ProducerCompat(AsyncProducerBase[_D]):
    """aiokafka's producer options and methods, for the asyncio and trio producers."""

    #: The ``AIOKafkaProducer`` flavour (aiokafka's meaning where the two APIs differ).
    _aiokafka = False

    def __init__(self, **configs: Any) -> None:
        super().__init__(**aiokafka_configs(configs, consumer=False, aiokafka=self._aiokafka))

    if TYPE_CHECKING:  # the facade's and AsyncTransactions'

        async def close(self, timeout: float | None = None) -> None: ...
        async def init_transactions(self, timeout: float | None = None) -> None: ...
        async def begin_transaction(self) -> None: ...
        async def commit_transaction(self, timeout: float | None = None) -> None: ...
        async def abort_transaction(self, timeout: float | None = None) -> None: ...

    async def stop(self) -> None:
        """aiokafka's name for ``close()``: flush, then close every connection."""
        await self.close()

    def create_batch(self) -> BatchBuilder:
        """An empty :class:`BatchBuilder` bounded by ``batch_size`` (aiokafka's ``max_batch_size``)."""
        return BatchBuilder(self._options, self.config.batch_size)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> BatchDelivery:
        """Queue ``batch``'s records, in order, for ``partition`` of ``topic``; closes the batch.

        The records go through the same accumulator as ``send``: they may share
        a wire batch with other records of the partition (aiokafka sends the
        builder as one batch).

        Returns:
            A :class:`BatchDelivery`; ``await`` it for the first record's metadata.
        """
        if not isinstance(batch, BatchBuilder):
            raise TypeError(f"send_batch takes a BatchBuilder from create_batch(), got {type(batch).__name__}")
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise TypeError(f"send_batch needs partition=int, got {partition!r}")
        batch.close()
        send = cast(Any, self).send  # the facade's (kafka-python's or aiokafka's positional order)
        handles = [
            await send(topic, value=v, key=k, headers=h, partition=partition, timestamp_ms=ts)
            for k, v, ts, h in batch._records
        ]
        return BatchDelivery(handles)

    def _abort_scope(self) -> contextlib.AbstractContextManager[Any]:
        """Where the abort of a failed ``transaction()`` block runs (trio shields it from cancellation)."""
        return contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """``async with producer.transaction():`` begin; commit on exit, abort on an exception.

        Calls ``init_transactions()`` first if it was not called (aiokafka's
        ``start()`` does that). An abort that fails itself is chained, the
        block's exception is what propagates.
        """
        driver = await self._ensure_running()
        if driver.core.transaction_state() == "UNINITIALIZED":
            await self.init_transactions()
        await self.begin_transaction()
        try:
            yield
        except BaseException:
            with self._abort_scope():
                try:
                    await self.abort_transaction()
                except KafkaError:  # fenced or fatal: the block's exception says more
                    pass
            raise
        await self.commit_transaction()


class TrioProducerCompat(ProducerCompat[_D]):
    """The trio producer's: a failed ``transaction()`` block's abort is shielded from cancellation."""

    def _abort_scope(self) -> contextlib.AbstractContextManager[Any]:
        import trio  # type: ignore[import-untyped,unused-ignore]

        scope: contextlib.AbstractContextManager[Any] = trio.CancelScope(shield=True)
        return scope

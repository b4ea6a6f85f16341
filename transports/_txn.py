"""The transactional methods of the producer facades (KIP-98), kafka-python's names.

The transaction state machine is in :mod:`kproto.producer.transactions`;
these mixins start a call on the core and wait until the op it returns is
done, at most ``timeout`` seconds (default ``max_block_ms``, as the Java
client). A call that timed out keeps going: calling it again waits for the
same op (``init_transactions``, ``commit_transaction``, ``abort_transaction``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kproto.errors import KafkaTimeoutError

__all__ = ["AsyncTransactions", "SyncTransactions"]

#: ``start(core, now)`` begins a call and returns its op (None: done at once).
_Start = Callable[[Any, float], Any]
#: What a sync loop call returns to be polled again (transports.sync's loop;
#: defined here, which sync imports, so the two modules do not import each other).
AGAIN = object()


def _timed_out(what: str, timeout: float) -> KafkaTimeoutError:
    return KafkaTimeoutError(
        f"{what} did not complete within {timeout:.3f}s; it keeps going, call it again to wait for it"
    )


class SyncTransactions:
    """``init_transactions`` ... for ``transports.sync.KafkaProducer`` (needs ``_loop``, ``_max_block``)."""

    _loop: Any
    _max_block: float

    def _txn_run(self, what: str, start: _Start, timeout: float | None) -> None:
        limit = self._max_block if timeout is None else timeout
        ops: list[Any] = []

        def poll(core: Any, now: float) -> object:
            if not ops:
                ops.append(start(core, now))
            op = ops[0]
            if op is None:
                return None
            if not op.done:
                return AGAIN
            if op.error is not None:
                raise op.error
            return None

        try:
            # ordered: records sent before this call reach the core first.
            self._loop.call(poll, limit, ordered=True)
        except KafkaTimeoutError:
            raise _timed_out(what, limit) from None

    def init_transactions(self, timeout: float | None = None) -> None:
        """Register the ``transactional_id`` with its coordinator; call once, before the first transaction.

        Fences any older producer with the same id and finishes (commits or
        aborts) what it left open.

        Args:
            timeout: Seconds to wait; None: ``max_block_ms``.

        Raises:
            IllegalStateError: No ``transactional_id``, or already initialised.
            KafkaTimeoutError: Not done within ``timeout`` (call again to keep waiting).
            KafkaError: A fatal error (e.g. ``TransactionalIdAuthorizationFailedError``).
        """
        self._txn_run("init_transactions", lambda core, now: core.init_transactions(now), timeout)

    def begin_transaction(self) -> None:
        """Start a transaction: records sent from now on belong to it.

        Raises:
            IllegalStateError: Not initialised, or a transaction is already open.
        """
        self._txn_run("begin_transaction", lambda core, now: core.begin_transaction(now), None)

    def send_offsets_to_transaction(
        self, offsets: Mapping[Any, Any], consumer_group_id: Any, timeout: float | None = None
    ) -> None:
        """Commit a consumer group's offsets as part of the transaction (consume-transform-produce).

        Args:
            offsets: ``{TopicPartition: OffsetAndMetadata}``: the next offsets to consume.
            consumer_group_id: The group id, or the consumer's group metadata
                (an object with ``group_id``, and ``generation_id``/``member_id``/
                ``group_instance_id`` for fencing of zombie consumers, KIP-447).
            timeout: Seconds to wait; None: ``max_block_ms``.

        Raises:
            IllegalStateError: No transaction is open.
            KafkaError: The offsets could not be added (the transaction must then be aborted).
        """
        self._txn_run(
            "send_offsets_to_transaction",
            lambda core, now: core.send_offsets_to_transaction(offsets, consumer_group_id, now),
            timeout,
        )

    def commit_transaction(self, timeout: float | None = None) -> None:
        """Flush, then commit: the transaction's records and offsets become visible together.

        Raises:
            IllegalStateError: No transaction is open.
            KafkaTimeoutError: Not done within ``timeout`` (call again to keep waiting).
            KafkaError: A record or offset of the transaction failed: call
                ``abort_transaction()``; or a fatal error (``ProducerFencedError``).
        """
        self._txn_run("commit_transaction", lambda core, now: core.commit_transaction(now), timeout)

    def abort_transaction(self, timeout: float | None = None) -> None:
        """Abort: records not yet sent fail with ``TransactionAbortedError``; none become visible.

        Raises:
            IllegalStateError: No transaction is open.
            KafkaTimeoutError: Not done within ``timeout`` (call again to keep waiting).
            KafkaError: A fatal error (``ProducerFencedError``).
        """
        self._txn_run("abort_transaction", lambda core, now: core.abort_transaction(now), timeout)


class AsyncTransactions:
    """The same methods, awaitable, for the asyncio and trio producers."""

    _max_block: float

    async def _ensure_running(self) -> Any:
        raise NotImplementedError

    async def _txn_run(self, what: str, start: _Start, timeout: float | None) -> None:
        driver = await self._ensure_running()
        limit = self._max_block if timeout is None else timeout
        op = start(driver.core, driver.now())
        if op is None:
            return
        deadline = driver.now() + limit
        driver.kick()  # once: the answers wake the driver, and it wakes this wait
        while not op.done:
            if not await driver.progress(deadline) and not op.done:
                raise _timed_out(what, limit)
        if op.error is not None:
            raise op.error

    async def init_transactions(self, timeout: float | None = None) -> None:
        """As :meth:`SyncTransactions.init_transactions`, awaitable."""
        await self._txn_run("init_transactions", lambda core, now: core.init_transactions(now), timeout)

    async def begin_transaction(self) -> None:
        """As :meth:`SyncTransactions.begin_transaction`, awaitable."""
        await self._txn_run("begin_transaction", lambda core, now: core.begin_transaction(now), None)

    async def send_offsets_to_transaction(
        self, offsets: Mapping[Any, Any], consumer_group_id: Any, timeout: float | None = None
    ) -> None:
        """As :meth:`SyncTransactions.send_offsets_to_transaction`, awaitable."""
        await self._txn_run(
            "send_offsets_to_transaction",
            lambda core, now: core.send_offsets_to_transaction(offsets, consumer_group_id, now),
            timeout,
        )

    async def commit_transaction(self, timeout: float | None = None) -> None:
        """As :meth:`SyncTransactions.commit_transaction`, awaitable."""
        await self._txn_run("commit_transaction", lambda core, now: core.commit_transaction(now), timeout)

    async def abort_transaction(self, timeout: float | None = None) -> None:
        """As :meth:`SyncTransactions.abort_transaction`, awaitable."""
        await self._txn_run("abort_transaction", lambda core, now: core.abort_transaction(now), timeout)

"""aiokafka's consumer names on the asyncio and trio consumers: ``getone``/``getmany`` with
partition filters, ``seek_to_committed``, ``last_stable_offset``, ``last_poll_timestamp``, ``stop``.

Apart from :mod:`transports._aiokafka_compat` (options, producers, handles) so that a producer
does not import the consumer. See docs/aiokafka.md.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kproto.consumer import ConsumerRecord, TopicPartition
from kproto.errors import IllegalStateError
from transports._aiokafka_compat import NO_LIMIT, aiokafka_configs
from transports._consumer_sync import ConsumerFacadeBase, as_tp, as_tps

if TYPE_CHECKING:
    from kproto.consumer.core import Pending

__all__ = ["ConsumerCompat"]

class ConsumerCompat(ConsumerFacadeBase):
    """aiokafka's consumer options and methods, for the asyncio and trio consumers."""

    #: The ``AIOKafkaConsumer`` flavour (aiokafka's meaning where the two APIs differ).
    _aiokafka = False

    if TYPE_CHECKING:  # AsyncConsumerBase's

        async def poll(
            self, timeout_ms: float = 0, max_records: int | None = None
        ) -> dict[TopicPartition, list[ConsumerRecord]]: ...
        async def close(self, autocommit: bool = True, timeout_ms: float | None = None) -> None: ...
        async def _wait(self, pending: Pending[Any], timeout_ms: float | None, what: str) -> Any: ...

    def _setup(self, topics: tuple[str, ...], configs: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """aiokafka's option names mapped first (:func:`aiokafka_configs`)."""
        configs = aiokafka_configs(configs, consumer=True, aiokafka=self._aiokafka)
        super()._setup(topics, configs, *args, **kwargs)

    async def stop(self) -> None:
        """aiokafka's name for ``close()``: commit (auto-commit on), leave the group, close."""
        await self.close()

    def _assigned(self, partitions: tuple[TopicPartition, ...]) -> set[TopicPartition]:
        tps = set(as_tps(partitions))
        missing = tps - self.assignment()
        if missing:
            raise IllegalStateError(f"partitions {sorted(missing)} are not assigned")
        return tps

    def _take_iterated(self, only: set[TopicPartition], limit: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records iteration (``getone``/``async for``) pulled but did not hand out yet, in order."""
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        buf, pos = self._iter_buffer, self._iter_pos
        if pos >= len(buf):
            return out
        keep: list[ConsumerRecord] = []
        for rec in buf[pos:]:
            tp = TopicPartition(rec.topic, rec.partition)
            if limit > 0 and (not only or tp in only):
                out.setdefault(tp, []).append(rec)
                limit -= 1
            else:
                keep.append(rec)
        self._iter_buffer, self._iter_pos = keep, 0
        return out

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: float = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records by partition (only of ``partitions`` when given), waiting up to ``timeout_ms``.

        With partitions, the other assigned partitions are paused while this
        waits (their buffered records stay for a later call).

        Raises:
            IllegalStateError: A partition given is not assigned.
        """
        self._check_open()
        only = self._assigned(partitions)
        limit = NO_LIMIT if max_records is None else max_records
        held = self._take_iterated(only, limit)
        if held:
            return held
        if not only:
            return await self.poll(timeout_ms=timeout_ms, max_records=max_records)
        core = self._core
        others = self.assignment() - only - core.paused()
        core.pause(others)
        try:
            return await self.poll(timeout_ms=timeout_ms, max_records=max_records)
        finally:
            core.resume(others & self.assignment(), self._clock())

    async def getone(self, *partitions: TopicPartition) -> ConsumerRecord:
        """The next record (of ``partitions`` when given), waiting as long as it takes.

        Never stops for ``consumer_timeout_ms`` (that bounds ``async for``).
        """
        while True:
            got = await self.getmany(*partitions, timeout_ms=1000)
            if got:
                recs = [r for batch in got.values() for r in batch]
                # The rest waits for the next getone/getmany/iteration, in order.
                self._iter_buffer = recs[1:] + self._iter_buffer[self._iter_pos :]
                self._iter_pos = 0
                return recs[0]

    async def seek_to_committed(self, *partitions: TopicPartition) -> dict[TopicPartition, int | None]:
        """Seek each partition (all assigned when none given) to the group's committed offset.

        A partition without a committed offset keeps its position.

        Returns:
            ``{partition: committed offset or None}``.

        Raises:
            IllegalStateError: A partition given is not assigned.
            KafkaConfigurationError: No ``group_id``.
        """
        tps = self._assigned(partitions) or self.assignment()
        got = await self._wait(self._core.committed(tps, self._clock()), None, "seek_to_committed")
        out: dict[TopicPartition, int | None] = {}
        for tp in tps:
            om = got.get(tp)
            out[tp] = None if om is None else om.offset
            if om is not None and om.offset >= 0:
                self.seek(tp, om.offset)
        return out

    def last_stable_offset(self, partition: TopicPartition) -> int | None:
        """The LastStableOffset of the last fetch of ``partition`` (KIP-98), None before one."""
        return self._core.last_stable_offset(as_tp(partition))

    def last_poll_timestamp(self, partition: TopicPartition) -> int | None:
        """When (ms since the epoch) the last fetch response for ``partition`` came, None before one."""
        at = self._core.last_fetch_time(as_tp(partition))
        if at is None:
            return None
        return int((time.time() - (self._clock() - at)) * 1000)

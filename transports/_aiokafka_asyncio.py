"""``AIOKafkaProducer`` and ``AIOKafkaConsumer``: the asyncio facade with aiokafka's meanings.

``from transports.asyncio import AIOKafkaProducer, AIOKafkaConsumer`` lets an
aiokafka program run with its import lines changed. They are the asyncio
``KafkaProducer``/``KafkaConsumer`` (which accept aiokafka's option names and
methods too) where the two APIs disagree:

- ``send``/``send_and_wait`` take aiokafka's positional order
  ``(topic, value, key, partition, timestamp_ms, headers)``;
- ``start()`` also runs ``init_transactions()`` when ``transactional_id`` is set;
- ``consumer_timeout_ms`` is aiokafka's fetcher wait (ignored, warned once),
  not kafka-python's end of iteration: ``async for`` runs until ``stop()``.
"""

from __future__ import annotations

from typing import Any

from transports._consumer_asyncio import KafkaConsumer
from transports.asyncio import DeliveryHandle, KafkaProducer

__all__ = ["AIOKafkaConsumer", "AIOKafkaProducer"]


class AIOKafkaProducer(KafkaProducer):
    """The asyncio producer with aiokafka's argument order and ``start()``."""

    _aiokafka = True

    async def start(self) -> None:
        """Start the driver; with ``transactional_id``, also ``init_transactions()`` (as aiokafka)."""
        await super().start()
        if self.config.transactional_id is not None:
            driver = await self._running()
            if driver.core.transaction_state() == "UNINITIALIZED":
                await self.init_transactions()

    async def send(  # type: ignore[override]  # aiokafka's positional order
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> DeliveryHandle:
        """``send`` with aiokafka's positional order; ``await`` the result for the metadata."""
        return await super().send(topic, value, key, headers, partition, timestamp_ms)

    async def __aenter__(self) -> AIOKafkaProducer:
        await self.start()
        return self


class AIOKafkaConsumer(KafkaConsumer):
    """The asyncio consumer with aiokafka's meaning of ``consumer_timeout_ms``."""

    _aiokafka = True

    async def __aenter__(self) -> AIOKafkaConsumer:
        await self.start()
        return self

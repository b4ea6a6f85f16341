"""The hook and interceptor API every facade takes (docs/observability.md).

Two options of every ``KafkaProducer`` / ``KafkaConsumer`` (sync, asyncio,
trio):

- ``interceptors=[...]``: record-level, the Java client's
  ``ProducerInterceptor`` / ``ConsumerInterceptor`` contract in Python.
  A producer calls :meth:`ProducerInterceptor.on_send` before serializing a
  record (its return value, if not None, replaces the record) and
  :meth:`ProducerInterceptor.on_acknowledgement` once per record when the
  broker acknowledged it or it failed. A consumer calls
  :meth:`ConsumerInterceptor.on_consume` with what ``poll`` is about to
  return (its return value, if not None, is returned instead) and
  :meth:`ConsumerInterceptor.on_commit` after each successful commit.
  Interceptors run in list order, each on the previous one's result.
- ``hooks=[...]``: broker-level, :class:`BrokerHooks`: connections,
  requests, responses, throttles, and every core event.

Subclass these classes and override what you need, or pass any object with
methods of these names (missing ones are skipped). A hook or interceptor
that raises is logged (``kproto.hooks``, WARNING, with the traceback) and the
client carries on, as in the Java client. Hooks run on the driver (the
sync producer's I/O thread, the consumer's calling thread, the asyncio or
trio driver task): keep them short and never block in them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from kproto.events import Event, NodeDisconnected, NodeReady, RequestCompleted, RequestWritten

__all__ = ["BrokerHooks", "ConsumerInterceptor", "ProducerInterceptor", "ProducerRecord"]

if TYPE_CHECKING:
    from kproto.consumer.types import ConsumerRecord, OffsetAndMetadata, TopicPartition

    class RecordMetadataLike(Protocol):
        """What :meth:`ProducerInterceptor.on_acknowledgement` gets for an acknowledged
        record: the facades' ``RecordMetadata`` (kafka-python's fields)."""

        @property
        def topic(self) -> str:
            """The topic the record was written to."""

        @property
        def partition(self) -> int:
            """Its partition."""

        @property
        def offset(self) -> int:
            """Its offset (-1 with ``acks=0``: the broker does not answer)."""

        @property
        def timestamp(self) -> int:
            """Its timestamp, ms since the epoch (the broker's with LogAppendTime)."""


class ProducerRecord(NamedTuple):
    """A record as ``send`` got it, before serialization (what :meth:`ProducerInterceptor.on_send` sees)."""

    topic: str
    value: Any = None
    key: Any = None
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None
    timestamp_ms: int | None = None


class ProducerInterceptor:
    """Java's ``ProducerInterceptor``: see the module docstring."""

    def on_send(self, record: ProducerRecord) -> ProducerRecord | None:
        """Called by ``send`` before serialization; return a replacement record or None to keep it."""
        return None

    def on_acknowledgement(self, metadata: RecordMetadataLike | None, exception: BaseException | None) -> None:
        """The record's fate: a ``RecordMetadata`` and None, or None and the error."""

    def close(self) -> None:
        """The producer closed."""


class ConsumerInterceptor:
    """Java's ``ConsumerInterceptor``: see the module docstring."""

    def on_consume(
        self, records: dict[TopicPartition, list[ConsumerRecord]]
    ) -> dict[TopicPartition, list[ConsumerRecord]] | None:
        """Called before ``poll`` returns ``records``; return replacements or None to keep them."""
        return None

    def on_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """A commit succeeded: ``{TopicPartition: OffsetAndMetadata}``."""

    def close(self) -> None:
        """The consumer closed."""


class BrokerHooks:
    """Broker-level hooks (franz-go's hook interfaces): each gets the core's typed event."""

    def on_connect(self, event: NodeReady) -> None:
        """A connection is ready (handshake and authentication done)."""

    def on_disconnect(self, event: NodeDisconnected) -> None:
        """A connection closed or could not be opened."""

    def on_request_written(self, event: RequestWritten) -> None:
        """A request was encoded for the wire (API key, version, bytes)."""

    def on_response(self, event: RequestCompleted) -> None:
        """A response was read (API key, version, bytes, latency)."""

    def on_throttle(self, event: RequestCompleted) -> None:
        """A response asked the client to hold back (``throttle_ms > 0``, KIP-219)."""

    def on_event(self, event: Event) -> None:
        """Every core event, the ones above included (``isinstance`` on :mod:`kproto.events`)."""

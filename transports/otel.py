"""OpenTelemetry for every facade (``pip install 'kproto[otel]'``; docs/observability.md).

Spans follow the OpenTelemetry messaging semantic conventions for Kafka:

- producer: one ``send {topic}`` span (kind PRODUCER) per record, opened and
  ended by ``send`` around the record's creation (operation type
  ``create``: the conventions' span for a message that a batching producer
  sends later); its W3C trace context (``traceparent``, ``tracestate``) is
  injected into the record's headers.
- consumer: one ``process {topic}`` span (kind CONSUMER) per record ``poll``
  returns, a child of the context extracted from the record's headers, so a
  trace runs from the producer to the consumer.

Both are interceptors (:mod:`kproto.hooks`), and the metrics become OTel
observable gauges through a ``metric_reporters`` entry::

    from transports import otel
    producer = KafkaProducer(bootstrap_servers=..., **otel.producer_options())
    consumer = KafkaConsumer("orders", group_id="billing", **otel.consumer_options())

Tracer and meter providers default to the global ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import propagate, trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.trace import SpanKind, TracerProvider

from kproto.hooks import ConsumerInterceptor, ProducerInterceptor, ProducerRecord

__all__ = ["MetricsExporter", "TracingConsumer", "TracingProducer", "consumer_options", "producer_options"]

_SCOPE = "kproto"


def _getter_headers(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers:
        if value is not None and key in ("traceparent", "tracestate"):
            out[key] = value.decode("latin-1")
    return out


class TracingProducer(ProducerInterceptor):
    """A ``send {topic}`` span per record and its context in the record's headers."""

    def __init__(self, tracer_provider: TracerProvider | None = None, client_id: str | None = None) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        self._client_id = client_id

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.name": "send",
            "messaging.operation.type": "create",
            "messaging.destination.name": record.topic,
        }
        if record.partition is not None:
            attributes["messaging.destination.partition.id"] = str(record.partition)
        if isinstance(record.key, (str, bytes)):
            attributes["messaging.kafka.message.key"] = (
                record.key if isinstance(record.key, str) else record.key.decode("utf-8", "replace")
            )
        if self._client_id:
            attributes["messaging.client.id"] = self._client_id
        with self._tracer.start_as_current_span(f"send {record.topic}", kind=SpanKind.PRODUCER,
                                                attributes=attributes):  # fmt: skip
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
        headers = [(k, v) for k, v in (record.headers or []) if k not in carrier]
        headers.extend((k, v.encode("latin-1")) for k, v in carrier.items())
        return record._replace(headers=headers)


class TracingConsumer(ConsumerInterceptor):
    """A ``process {topic}`` span per record polled, child of the producer's context."""

    def __init__(self, tracer_provider: TracerProvider | None = None, group_id: str | None = None) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        self._group_id = group_id

    def on_consume(self, records: dict[Any, list[Any]]) -> None:
        for tp, recs in records.items():
            for r in recs:
                parent = propagate.extract(_getter_headers(r.headers or ()))
                attributes: dict[str, Any] = {
                    "messaging.system": "kafka",
                    "messaging.operation.name": "process",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": tp.topic,
                    "messaging.destination.partition.id": str(tp.partition),
                    "messaging.kafka.offset": r.offset,
                }
                if self._group_id:
                    attributes["messaging.consumer.group.name"] = self._group_id
                span = self._tracer.start_span(f"process {tp.topic}", context=parent, kind=SpanKind.CONSUMER,
                                               attributes=attributes)  # fmt: skip
                span.end()
        return None


class MetricsExporter:
    """A ``metric_reporters`` entry: every metric becomes an OTel observable gauge.

    ``{group: {name: value}}`` gives the gauge ``kproto.<group>.<name>``;
    per-partition names (``<topic>-<partition>.records-lag``) become the gauge
    ``kproto.<group>.records-lag`` with ``messaging.destination.name`` and
    ``messaging.destination.partition.id`` attributes, node groups
    (``...-node-metrics.node-<id>``) a ``node.id`` attribute.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        self._meter: Meter = otel_metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._latest: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}

    def __call__(self, metrics: dict[str, dict[str, float]]) -> None:
        fresh: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for group, values in metrics.items():
            base, _, node = group.partition(".node-")
            for name, value in values.items():
                attrs: tuple[tuple[str, str], ...] = (("node.id", node),) if node else ()
                prefix, dot, short = name.rpartition(".")
                if dot:
                    topic, _, part = prefix.rpartition("-")
                    attrs += (("messaging.destination.name", topic), ("messaging.destination.partition.id", part))
                    name = short
                fresh.setdefault(f"kproto.{base}.{name}", {})[attrs] = float(value)
        for key in fresh.keys() - self._latest.keys():
            self._meter.create_observable_gauge(key, callbacks=[self._callback(key)])
        self._latest.update(fresh)

    def _callback(self, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(v, dict(a)) for a, v in self._latest.get(key, {}).items() if v == v]  # not NaN

        return observe


def producer_options(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> dict[str, Any]:
    """``interceptors`` and ``metric_reporters`` for a ``KafkaProducer``."""
    return {"interceptors": [TracingProducer(tracer_provider)], "metric_reporters": [MetricsExporter(meter_provider)]}


def consumer_options(
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    group_id: str | None = None,
) -> dict[str, Any]:
    """``interceptors`` and ``metric_reporters`` for a ``KafkaConsumer``."""
    return {
        "interceptors": [TracingConsumer(tracer_provider, group_id)],
        "metric_reporters": [MetricsExporter(meter_provider)],
    }


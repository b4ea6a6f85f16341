"""OpenTelemetry on every transport (the ``otel`` extra), with the SDK's in-memory exporters.

A producer sends three records with ``transports.otel.producer_options``; a
consumer reads them with ``consumer_options``. The trace runs from each
producer span to its consumer span (W3C context in the record headers), the
spans carry the messaging semantic conventions' attributes, and the metrics
arrive as OTel gauges.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _kafka import ready_topic

pytest.importorskip("opentelemetry.sdk")  # the otel extra; CI installs it (.ci/run)

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from transports import otel  # noqa: E402


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trace_from_producer_to_consumer_and_metrics(transport: str, broker: Any, bootstrap: str) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    topic = ready_topic(broker, f"otel-{uuid.uuid4().hex[:10]}")
    group = f"otel-{uuid.uuid4().hex[:6]}"
    got: list[Any] = []
    fast = {"metrics_sample_window_ms": 200, "metrics_num_samples": 300}  # report often, keep a minute

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=bootstrap, **fast, **otel.producer_options(tracer_provider, meter_provider)
        ) as p:
            for i in range(3):
                await p.get(await p.send(topic, b"r%d" % i, key=b"k", partition=0), 20)
        async with open_consumer(
            transport, topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
            **fast, **otel.consumer_options(tracer_provider, meter_provider, group_id=group),
        ) as c:  # fmt: skip
            deadline = 60
            while len(got) < 3 and deadline:
                deadline -= 1
                for recs in (await c.poll(1000)).values():
                    got.extend(recs)

    run(transport, scenario)
    assert [r.value for r in got] == [b"r0", b"r1", b"r2"]
    assert all(dict(r.headers)["traceparent"].startswith(b"00-") for r in got)
    finished = spans.get_finished_spans()
    sends = [s for s in finished if s.kind == SpanKind.PRODUCER]
    processes = [s for s in finished if s.kind == SpanKind.CONSUMER]
    assert len(sends) == 3 and len(processes) == 3
    for send, process, record in zip(sends, processes, got, strict=True):
        assert send.name == f"send {topic}" and process.name == f"process {topic}"
        assert send.attributes is not None and process.attributes is not None
        assert send.attributes["messaging.system"] == "kafka"
        assert send.attributes["messaging.destination.name"] == topic
        assert send.attributes["messaging.destination.partition.id"] == "0"
        assert send.attributes["messaging.kafka.message.key"] == "k"
        assert process.attributes["messaging.consumer.group.name"] == group
        assert process.attributes["messaging.kafka.offset"] == record.offset
        # The trace goes on: the consumer's span is the producer span's child.
        assert process.parent is not None and send.context is not None
        assert process.context is not None and process.context.trace_id == send.context.trace_id
        assert process.parent.span_id == send.context.span_id
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "kproto.producer-metrics.request-latency-avg" in names
    assert "kproto.consumer-fetch-manager-metrics.fetch-latency-avg" in names, sorted(n for n in names if "consumer" in n)
    lag = names["kproto.consumer-fetch-manager-metrics.records-lag"]
    points = list(lag.data.data_points)  # type: ignore[union-attr]
    assert any(p.attributes == {"messaging.destination.name": topic, "messaging.destination.partition.id": "0"}
               for p in points)  # fmt: skip

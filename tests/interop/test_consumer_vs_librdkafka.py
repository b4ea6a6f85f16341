"""Records written by librdkafka (confluent-kafka) in every codec, read by kproto's consumer.

Each codec goes to its own partition; librdkafka batches with a linger so
batches hold many records (and, compressed, exercise decompression of whole
batches), with keys, null values and headers. kproto reads them back through
the sync facade and must see exactly what was produced, in order.
"""

from __future__ import annotations

import confluent_kafka
import pytest

from kproto.consumer import TopicPartition
from transports._consumer_sync import KafkaConsumer

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 300


def expected(i: int) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
    key = b"key-%d" % i if i % 3 else None
    value = None if i % 50 == 7 else (b"value-%d-" % i) * (1 + i % 5)
    headers = (("n", b"%d" % i), ("codec-test", b"x")) if i % 4 == 0 else ()
    return key, value, headers


@pytest.mark.parametrize("codec", CODECS)
def test_librdkafka_records_in_each_codec(bootstrap: str, topic: str, codec: str) -> None:
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 50,
        "enable.idempotence": False,
    })
    errors: list[object] = []
    for i in range(PER_CODEC):
        key, value, headers = expected(i)
        producer.produce(topic, key=key, value=value, partition=0, headers=list(headers) or None,
                         timestamp=1_700_000_000_000 + i,
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert producer.flush(30) == 0
    assert errors == []

    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        recs = []
        for _ in range(300):
            for got in consumer.poll(timeout_ms=100).values():
                recs.extend(got)
            if len(recs) >= PER_CODEC:
                break
        assert [r.offset for r in recs] == list(range(PER_CODEC))
        for i, r in enumerate(recs):
            key, value, headers = expected(i)
            assert (r.key, r.value, r.headers) == (key, value, headers), i
            assert r.timestamp == 1_700_000_000_000 + i
        assert consumer.position(tp) == PER_CODEC
    finally:
        consumer.close()

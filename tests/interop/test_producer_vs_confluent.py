"""Records written by kproto's producers, read back by librdkafka (confluent-kafka).

For every codec, the consumer must see the same keys, values, headers,
timestamps (CreateTime) and partitions that kproto sent, at the offsets
kproto's futures reported.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import trio
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer
from confluent_kafka import TopicPartition as CTopicPartition

import transports.asyncio as ta
import transports.sync as ts
import transports.trio as tt

BASE_TS = 1_650_000_000_000


def records(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "key": None if i % 5 == 0 else b"key-%d" % (i % 13),
                "value": None if i % 17 == 3 and i % 5 else (b"value %d " % i) * (1 + i % 9),
                "headers": [] if i % 3 == 0 else [("trace", b"%08d" % i), ("h\u00e9", b"")],
                "partition": i % 4 if i % 2 else None,
                "timestamp_ms": BASE_TS + i * 1000,
            }
        )
    return out


def produce_sync(bootstrap: str, topic: str, recs: list[dict[str, Any]], codec: str | None) -> list[Any]:
    with ts.KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=10) as p:
        futs = [
            p.send(topic, r["value"], key=r["key"], headers=r["headers"] or None, partition=r["partition"],
                   timestamp_ms=r["timestamp_ms"])
            for r in recs
        ]  # fmt: skip
        p.flush(30)
        return [f.get(30) for f in futs]


def produce_asyncio(bootstrap: str, topic: str, recs: list[dict[str, Any]], codec: str | None) -> list[Any]:
    async def main() -> list[Any]:
        async with ta.KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=10) as p:
            handles = [
                await p.send(topic, r["value"], key=r["key"], headers=r["headers"], partition=r["partition"],
                             timestamp_ms=r["timestamp_ms"])
                for r in recs
            ]  # fmt: skip
            return [await h for h in handles]

    return asyncio.run(main())


def produce_trio(bootstrap: str, topic: str, recs: list[dict[str, Any]], codec: str | None) -> list[Any]:
    async def main() -> list[Any]:
        async with tt.KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=10) as p:
            handles = [
                await p.send(topic, r["value"], key=r["key"], headers=r["headers"], partition=r["partition"],
                             timestamp_ms=r["timestamp_ms"])
                for r in recs
            ]  # fmt: skip
            return [await h for h in handles]

    return trio.run(main)


PRODUCERS = {"sync": produce_sync, "asyncio": produce_asyncio, "trio": produce_trio}


def consume_all(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "kproto-interop",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        consumer.assign([CTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                out.append(msg)
        return out
    finally:
        consumer.close()


@pytest.mark.parametrize(
    ("transport", "codec"),
    [("sync", None), ("sync", "gzip"), ("sync", "snappy"), ("sync", "lz4"), ("sync", "zstd"),
     ("asyncio", None), ("asyncio", "lz4"), ("trio", None), ("trio", "zstd")],
)  # fmt: skip
def test_confluent_reads_what_kproto_wrote(
    transport: str, codec: str | None, bootstrap: str, topic: str
) -> None:
    recs = records(120)
    mds = PRODUCERS[transport](bootstrap, topic, recs, codec)
    msgs = consume_all(bootstrap, topic, len(recs))
    assert len(msgs) == len(recs)
    by_pos = {(m.partition(), m.offset()): m for m in msgs}
    for rec, md in zip(recs, mds, strict=True):
        if rec["partition"] is not None:
            assert md.partition == rec["partition"]
        msg = by_pos[(md.partition, md.offset)]
        assert msg.topic() == topic
        assert msg.key() == rec["key"]
        assert msg.value() == rec["value"]
        assert (msg.headers() or []) == rec["headers"]
        assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, rec["timestamp_ms"])

"""An aiokafka program that runs on kproto with only its import lines changed.

With aiokafka the imports read::

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

Everything below the import block is plain aiokafka code: a producer with
``send_and_wait``, ``send``, ``create_batch``/``send_batch`` and the
``transaction()`` context manager; a group consumer with ``getmany``,
``getone``, ``commit``, ``seek_to_committed``, ``highwater`` and
``last_stable_offset``. ``tests/integration/test_aiokafka_program.py`` runs
it against Tansu and Apache Kafka (and the same text against aiokafka
itself, as the reference). Usage: ``python examples/aiokafka_program.py HOST:PORT TOPIC``.
"""

import asyncio
import json
import sys
import uuid

# --- imports: the only lines that differ from the aiokafka program ---
from kproto.consumer import TopicPartition
from transports.asyncio import AIOKafkaConsumer, AIOKafkaProducer

# --- end of imports ---


async def produce(bootstrap, topic):
    """Six JSON records to partitions 0 and 1: one by one, then as one batch."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        value_serializer=lambda v: json.dumps(v).encode(),
        max_batch_size=65536,
        linger_ms=5,
    )
    await producer.start()
    try:
        first = await producer.send_and_wait(topic, {"n": 0}, key=b"k0", partition=0)
        future = await producer.send(topic, {"n": 1}, partition=0)
        second = await future
        batch = producer.create_batch()
        for n in range(2, 6):
            assert batch.append(key=None, value={"n": n}, timestamp=None) is not None
        batched = batch.record_count()
        batch_future = await producer.send_batch(batch, topic, partition=1)
        batch_meta = await batch_future
    finally:
        await producer.stop()
    return {
        "offsets": [first.offset, second.offset],
        "batch_records": batched,
        "batch_partition": batch_meta.partition,
        "batch_offset": batch_meta.offset,
    }


async def transact(bootstrap, topic, transactional_id):
    """One committed and one aborted transaction on partition 2."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=transactional_id,
        enable_idempotence=True,
        value_serializer=lambda v: json.dumps(v).encode(),
    )
    await producer.start()
    aborted = False
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, {"txn": "committed"}, partition=2)
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, {"txn": "aborted"}, partition=2)
                raise RuntimeError("abort this transaction")
        except RuntimeError:
            aborted = True
    finally:
        await producer.stop()
    return {"aborted": aborted}


async def consume(bootstrap, topic, group_id, expect):
    """Read as a group member until ``expect`` values came, then commit and seek around."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        value_deserializer=lambda b: json.loads(b.decode()),
        rebalance_timeout_ms=20000,
    )
    await consumer.start()
    try:
        values = []
        for _ in range(120):
            batches = await consumer.getmany(timeout_ms=500, max_records=100)
            for records in batches.values():
                values.extend(r.value for r in records)
            if len(values) >= expect:
                break
        await consumer.commit()
        p0, p2 = TopicPartition(topic, 0), TopicPartition(topic, 2)
        committed = await consumer.committed(p0)
        consumer.seek(p0, 0)
        again = await consumer.getone(p0)
        rest = []
        while not rest:
            rest = (await consumer.getmany(p0, timeout_ms=1000)).get(p0, [])
        back = await consumer.seek_to_committed(p0)
        position = await consumer.position(p0)
        return {
            "values": values,
            "committed": committed,
            "getone": again.value,
            "getmany": [r.value for r in rest],
            "seek_to_committed": back[p0],
            "position": position,
            "highwater": consumer.highwater(p2),
            "last_stable_offset": consumer.last_stable_offset(p2),
            "polled_at": consumer.last_poll_timestamp(p2),
            "end_offsets": (await consumer.end_offsets([p2]))[p2],
        }
    finally:
        await consumer.stop()


async def main(bootstrap, topic):
    """Produce, run two transactions, consume; returns what each step saw."""
    produced = await produce(bootstrap, topic)
    txn = await transact(bootstrap, topic, f"tx-{uuid.uuid4().hex[:8]}")
    consumed = await consume(bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}", expect=7)
    return {**produced, **txn, **consumed}


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], sys.argv[2])))

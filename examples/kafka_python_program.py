"""A program written for kafka-python 3: run it with kproto by changing only its import line.

    from kafka import ...              ->  from transports.sync import ...

``python examples/kafka_python_program.py BOOTSTRAP TOPIC GROUP`` produces 21
JSON records with callbacks and serializers, consumes them back in a group by
iteration, commits each one, and checks the end offsets and committed offsets.
``tests/integration/test_kafka_python_program.py`` runs it both ways (kafka-python
itself and kproto) against Tansu and Apache Kafka.
"""

import json
import sys

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition, errors

RECORDS = 21


def produce(bootstrap, topic):
    delivered, failed = [], []
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="example-producer",
        key_serializer=str.encode,
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
        acks="all",
        linger_ms=5,
        # One record per batch: Tansu (one of the test brokers) answers
        # ListOffsets with the last batch's base offset + 1, so end offsets
        # are only right there with single-record batches.
        batch_size=1,
    )
    for n in range(RECORDS - 1):
        future = producer.send(topic, key=f"user-{n % 4}", value={"n": n})
        future.add_callback(lambda md: delivered.append((md.topic, md.partition, md.offset)))
        future.add_errback(failed.append)
    producer.flush(timeout=30)
    try:
        metadata = producer.send(topic, key="last", value={"n": RECORDS - 1}).get(timeout=30)
    except errors.KafkaTimeoutError:
        raise SystemExit("no acknowledgement within 30 s") from None
    assert isinstance(metadata.topic_partition, TopicPartition)
    assert metadata.offset >= 0
    producer.close()
    assert not failed, failed
    assert len(delivered) == RECORDS - 1


def consume(bootstrap, topic, group):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="example-consumer",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        key_deserializer=bytes.decode,
        value_deserializer=lambda raw: json.loads(raw.decode("utf-8")),
        consumer_timeout_ms=60000,
    )
    seen = []
    for record in consumer:
        seen.append(record.value["n"])
        assert record.key.startswith("user-") or record.key == "last"
        tp = TopicPartition(record.topic, record.partition)
        consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
        if len(seen) == RECORDS:
            break
    partitions = sorted(consumer.assignment())
    ends = consumer.end_offsets(partitions)
    committed = {tp: consumer.committed(tp) for tp in partitions}
    consumer.close()
    assert sorted(seen) == list(range(RECORDS)), seen
    assert sum(ends.values()) == RECORDS, ends
    for tp in partitions:
        assert committed[tp] == ends[tp] or (committed[tp] is None and ends[tp] == 0), (tp, committed, ends)
    return {"records": len(seen), "partitions": len(partitions), "end_offsets": sum(ends.values())}


if __name__ == "__main__":
    bootstrap, topic, group = sys.argv[1:4]
    produce(bootstrap, topic)
    print(json.dumps(consume(bootstrap, topic, group)))

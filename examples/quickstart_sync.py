"""Quickstart: the blocking producer (a drop-in for kafka-python's KafkaProducer).

Run a broker first (``python examples/demo.py`` starts one for you), then::

    python examples/quickstart_sync.py 127.0.0.1:9092
"""

from __future__ import annotations

import json
import sys

from transports.sync import KafkaProducer


def main(bootstrap: str) -> None:
    # Options use kafka-python's names and defaults; serializers turn your
    # objects into bytes inside send(), so their errors come out of send().
    with KafkaProducer(
        bootstrap_servers=bootstrap,
        value_serializer=lambda obj: json.dumps(obj).encode(),
        linger_ms=5,  # wait up to 5 ms to fill batches
    ) as producer:
        # send() returns at once with a future; the I/O thread does the work.
        future = producer.send("quickstart", {"hello": "world"}, key=b"greeting")
        metadata = future.get(timeout=10)  # block until the broker acknowledged it
        print(f"written to {metadata.topic}[{metadata.partition}] at offset {metadata.offset}")

        # Callbacks run on the producer's I/O thread: keep them short.
        for i in range(10):
            producer.send("quickstart", {"n": i}).add_callback(
                lambda md: print("acked", md.partition, md.offset)
            ).add_errback(lambda exc: print("failed:", exc))
        producer.flush()  # wait for everything sent so far
    # leaving the `with` block closes the producer (flush, then stop the thread)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "localhost:9092")

"""Quickstart: the trio producer (its tasks live in a nursery the `async with` owns).

Run a broker first (``python examples/demo.py`` starts one for you), then::

    python examples/quickstart_trio.py 127.0.0.1:9092
"""

from __future__ import annotations

import sys

import trio

from transports.trio import KafkaProducer


async def main(bootstrap: str) -> None:
    # Nothing outlives this block: leaving it flushes, closes and ends the nursery.
    async with KafkaProducer(bootstrap_servers=bootstrap, compression_type="zstd") as producer:
        handle = await producer.send("quickstart", b"hello from trio")
        metadata = await handle
        print(f"written to {metadata.topic}[{metadata.partition}] at offset {metadata.offset}")

        # Cancelling a wait leaves the producer usable.
        with trio.move_on_after(5):
            metadata = await producer.send_and_wait("quickstart", b"again", partition=0)
            print("second record at offset", metadata.offset)

        print("partitions:", sorted(await producer.partitions_for("quickstart")))


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "localhost:9092")

"""Quickstart: the asyncio producer (no thread: a task on your event loop).

Run a broker first (``python examples/demo.py`` starts one for you), then::

    python examples/quickstart_asyncio.py 127.0.0.1:9092
"""

from __future__ import annotations

import asyncio
import sys

from transports.asyncio import KafkaProducer


async def main(bootstrap: str) -> None:
    # `async with` starts the producer's driver task and closes it at the end.
    async with KafkaProducer(bootstrap_servers=bootstrap, acks="all") as producer:
        # `await send()` waits only for buffer space; it returns a handle...
        handle = await producer.send("quickstart", b"hello", key=b"k", headers=[("source", b"asyncio")])
        # ...that you await for the broker's acknowledgement.
        metadata = await handle
        print(f"written to {metadata.topic}[{metadata.partition}] at offset {metadata.offset}")

        # Or both at once:
        metadata = await producer.send_and_wait("quickstart", b"world")
        print("second record at offset", metadata.offset)

        # Fire many, then wait for all of them.
        handles = [await producer.send("quickstart", b"record %d" % i) for i in range(1000)]
        await producer.flush()
        print("last offset", handles[-1].result().offset)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "localhost:9092"))

"""aiokafka parity on real brokers (Tansu and Apache Kafka).

``examples/aiokafka_program.py`` is an aiokafka program whose only kproto
lines are its imports: it runs here on kproto, and the same text with
aiokafka's imports runs on aiokafka as the reference. The trio facade's
equivalents (same methods where trio idioms allow) run the same steps.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from _kafka import KafkaCluster

from kproto.consumer import TopicPartition
from transports.asyncio import KafkaProducer as AsyncioProducer

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "aiokafka_program.py"
KPROTO_IMPORTS = (
    "from kproto.consumer import TopicPartition\nfrom transports.asyncio import AIOKafkaConsumer, AIOKafkaProducer\n"
)
AIOKAFKA_IMPORTS = (
    "from aiokafka.structs import TopicPartition\nfrom aiokafka import AIOKafkaConsumer, AIOKafkaProducer\n"
)


def load_program(imports: str) -> types.ModuleType:
    """The example program as a module, with ``imports`` as its import block."""
    source = PROGRAM.read_text()
    assert source.count(KPROTO_IMPORTS) == 1, "the program's import block changed"
    module = types.ModuleType(f"aiokafka_program_{uuid.uuid4().hex[:6]}")
    module.__file__ = str(PROGRAM)
    exec(compile(source.replace(KPROTO_IMPORTS, imports), str(PROGRAM), "exec"), module.__dict__)
    return module


def check(result: dict[str, Any], on_kafka: bool) -> None:
    """What the program must have seen, on either library."""
    assert result["offsets"] == [0, 1]
    assert result["batch_records"] == 4
    assert (result["batch_partition"], result["batch_offset"]) == (1, 0)
    assert result["aborted"] is True
    expected = [{"n": n} for n in range(6)] + [{"txn": "committed"}]
    values = result["values"]
    assert all(v in values for v in expected), values
    if on_kafka:
        # Tansu lists no aborted transactions in its fetches (see test_transactions_on_broker).
        assert {"txn": "aborted"} not in values
    assert result["committed"] == 2
    assert result["getone"] == {"n": 0}
    assert result["getmany"] == [{"n": 1}]
    assert result["seek_to_committed"] == 2
    assert result["position"] == 2
    # Partition 2: committed record, COMMIT marker, aborted record, ABORT marker.
    assert result["highwater"] == result["end_offsets"] == 4
    assert result["last_stable_offset"] == 4
    assert isinstance(result["polled_at"], int) and result["polled_at"] > 0


def test_aiokafka_program_on_kproto(broker: Any, topic: str) -> None:
    program = load_program(KPROTO_IMPORTS)
    check(asyncio.run(program.main(broker.bootstrap, topic)), isinstance(broker, KafkaCluster))


def test_aiokafka_program_on_aiokafka_reference(kafka: KafkaCluster) -> None:
    """The same program text on aiokafka itself: the reference the kproto run is checked against."""
    topic = kafka.create_topic(f"t-{uuid.uuid4().hex[:12]}")
    program = load_program(AIOKAFKA_IMPORTS)
    check(asyncio.run(program.main(kafka.bootstrap, topic)), True)


def test_kproto_program_file_runs_as_is(broker: Any, topic: str) -> None:
    """The example file itself (not a copy) imports and runs."""
    spec = importlib.util.spec_from_file_location("aiokafka_program", PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["aiokafka_program"] = module
    try:
        spec.loader.exec_module(module)
        produced = asyncio.run(module.produce(broker.bootstrap, topic))
    finally:
        del sys.modules["aiokafka_program"]
    assert produced["offsets"] == [0, 1] and produced["batch_records"] == 4


def test_asyncio_handles_are_futures(bootstrap: str, topic: str) -> None:
    """send's result: awaitable, add_done_callback, gather, kafka-python's get/add_callback after flush."""

    async def scenario() -> dict[str, Any]:
        seen: list[Any] = []
        async with AsyncioProducer(bootstrap_servers=bootstrap, loop=None, max_batch_size=16384) as p:
            h1 = await p.send(topic, b"a", partition=0)
            h1.add_done_callback(lambda h: seen.append(("done", h.result().offset)))
            h2 = await p.send(topic, b"b", partition=0)
            h2.add_callback(lambda md, tag: seen.append((tag, md.offset)), "cb")
            h3 = await p.send(topic, b"c", partition=0)
            metas = await asyncio.gather(h1, h2, h3)
            await asyncio.sleep(0)  # asyncio runs done callbacks on the next loop turn
            await p.flush()
            return {"metas": [m.offset for m in metas], "seen": seen, "get": h3.get().offset,
                    "state": (h3.done(), h3.succeeded(), h3.failed(), h3.cancelled(), h3.is_done)}

    with pytest.warns(DeprecationWarning, match="loop"):
        out = asyncio.run(scenario())
    assert out["metas"] == [0, 1, 2]
    assert sorted(out["seen"]) == [("cb", 1), ("done", 0)]
    assert out["get"] == 2
    assert out["state"] == (True, True, False, False, True)


def test_trio_equivalents(broker: Any, topic: str) -> None:
    """The trio facade: send_batch, transaction(), done callbacks, getmany/getone with partitions,
    seek_to_committed, highwater/last_stable_offset/last_poll_timestamp."""
    from transports.trio import KafkaConsumer, KafkaProducer

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        called: list[int] = []
        async with KafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=32768) as p:
            batch = p.create_batch()
            for n in range(3):
                batch.append(key=None, value=b"%d" % n, timestamp=None)
            delivery = await p.send_batch(batch, topic, partition=1)
            delivery.add_done_callback(lambda d: called.append(d.result().offset))
            out["batch"] = (await delivery).offset
            h = await p.send(topic, b"p0", partition=0)
            h.add_done_callback(lambda h: called.append(h.result().offset))
            await h
        out["called"] = sorted(called)
        async with KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}") as p:
            async with p.transaction():
                await p.send_and_wait(topic, b"in-txn", partition=2)
            # A cancelled block still aborts (the abort is shielded); the producer goes on.
            with trio.CancelScope() as cancelled:
                async with p.transaction():
                    await p.send_and_wait(topic, b"cancelled", partition=2)
                    cancelled.cancel()
                    await trio.sleep(5)
            out["txn_state"] = p._driver.core.transaction_state()
            async with p.transaction():
                await p.send_and_wait(topic, b"after", partition=2)
        p0, p1, p2 = (TopicPartition(topic, i) for i in range(3))
        async with KafkaConsumer(
            bootstrap_servers=broker.bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest", enable_auto_commit=False, isolation_level="read_committed",
        ) as c:
            c.assign([p0, p1, p2])
            got: list[Any] = []
            with trio.fail_after(30):
                while len(got) < 3:
                    for tp, recs in (await c.getmany(p1, timeout_ms=500)).items():
                        assert tp == p1
                        got.extend(r.value for r in recs)
                out["p1"] = got
                out["one"] = (await c.getone(p2)).value
                out["other"] = (await c.getone(p0)).value
                out["any"] = (await c.getone()).value  # p2's next (p0 and p1 are read to their end)
            await c.commit({p1: 2})
            out["seek_to_committed"] = await c.seek_to_committed(p1)
            out["position"] = await c.position(p1)
            out["hw"], out["lso"] = c.highwater(p2), c.last_stable_offset(p2)
            out["polled"] = c.last_poll_timestamp(p2)
        return out

    out = trio.run(scenario)
    assert out["batch"] == 0
    assert out["called"] == [0, 0]
    assert out["p1"] == [b"0", b"1", b"2"]
    assert out["one"] == b"in-txn"
    assert out["other"] == b"p0"
    # Tansu lists no aborted transactions in fetches, Kafka does (test_transactions_on_broker).
    assert out["any"] == b"after" if isinstance(broker, KafkaCluster) else out["any"] in (b"cancelled", b"after")
    assert out["seek_to_committed"] == {TopicPartition(topic, 1): 2}
    assert out["position"] == 2
    assert out["txn_state"] == "READY"
    # in-txn, COMMIT, cancelled, ABORT, after, COMMIT.
    assert out["hw"] == out["lso"] == 6
    assert isinstance(out["polled"], int) and out["polled"] > 0

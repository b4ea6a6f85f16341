"""Faults on real sockets, on each transport: cuts, restarts, a dead broker, a black hole, a slow link.

A Tansu broker advertises the port of a :class:`FaultProxy` (tests/_proxy.py),
so every connection of the client goes through it; the proxy cuts, delays or
black-holes on command. The restart and dead-broker scenarios run their own
Tansu, stopped and started on the same port. Records are read back with
kafka-python, an independent client.

The proxy scenarios (cut, black hole, slow link) run on Tansu and on an
Apache Kafka node of their own that advertises the proxy (``kafka`` in the
test ids); the restart and dead-broker ones on Tansu.

Timeouts are small (request 1 s, delivery a few seconds) so the module runs
in well under two minutes. There are no timing assertions beyond generous
hang guards (``HANG_GUARD``): each says "this returned at all".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, read_back, run, sleep
from _broker import TansuBroker
from _kafka import BROKERS, KafkaCluster, ready_topic
from _proxy import FaultProxy, tansu_behind_proxy

from kproto.errors import KafkaTimeoutError

#: Seconds after which an operation that should have returned counts as hung.
HANG_GUARD = 25.0

FAST = {
    "request_timeout_ms": 1000,
    "retry_backoff_ms": 50,
    "reconnect_backoff_ms": 20,
    "reconnect_backoff_max_ms": 300,
    "max_block_ms": 10000,
}


@pytest.fixture(scope="module", params=BROKERS)
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[TansuBroker | KafkaCluster, FaultProxy]]:
    """A broker that advertises the proxy's port: every client connection goes through the proxy."""
    if request.param == "kafka":
        cluster = KafkaCluster(1)
        kproxy = FaultProxy(cluster.nodes[0].ports["PLAINTEXT"])
        cluster.nodes[0].advertised["PLAINTEXT"] = kproxy.port
        try:
            with cluster:
                yield cluster, kproxy
        finally:
            kproxy.close()
        return
    with tansu_behind_proxy() as pair:
        yield pair


@pytest.fixture
def proxy(proxied: tuple[TansuBroker | KafkaCluster, FaultProxy]) -> Iterator[FaultProxy]:
    p = proxied[1]
    p.delay, p.blackhole, p.refuse = 0.0, False, False
    yield p
    p.delay, p.blackhole, p.refuse = 0.0, False, False


def kill(broker: TansuBroker) -> None:
    """Stop the broker at once (SIGKILL, a crash): Tansu's graceful stop waits for its clients."""
    proc = broker.proc
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(5)
    broker.proc = None


def new_topic(broker: Any = None) -> str:
    """A fresh topic name, created and ready first on Kafka (``tests/_kafka.ready_topic``)."""
    return ready_topic(broker, f"f-{uuid.uuid4().hex[:10]}")


# --- a connection cut in the middle of producing ----------------------------------------------


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "acks-all-retries"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cut_mid_produce_loses_no_acknowledged_record(
    transport: str, idempotent: bool, proxy: FaultProxy, proxied: tuple[Any, FaultProxy]
) -> None:
    topic = new_topic(proxied[0])
    n = 300
    configs: dict[str, Any] = {
        **FAST,
        "bootstrap_servers": proxy.bootstrap,
        "linger_ms": 2,
        "delivery_timeout_ms": 15000,
    }
    if idempotent:
        configs["enable_idempotence"] = True
    else:
        configs.update(acks="all", retries=10, max_in_flight_requests_per_connection=1)
    outcomes: list[Any] = []

    async def scenario() -> None:
        async with open_producer(transport, **configs) as p:
            handles = []
            for i in range(n):
                handles.append(await p.send(topic, b"v%05d" % i, key=b"k%d" % (i % 7)))
                if i in (100, 200):
                    await sleep(transport, 0.02)  # some requests are in flight
                    proxy.cut()
                elif i % 20 == 0:
                    await sleep(transport, 0.005)
            for h in handles:
                outcomes.append(await p.outcome(h, HANG_GUARD))

    run(transport, scenario)
    assert proxy.accepted >= 3  # the client reconnected after each cut
    acked = {b"v%05d" % i for i, o in enumerate(outcomes) if not isinstance(o, BaseException)}
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    # with retries and a 15 s delivery timeout every record gets through
    assert not failed, failed[:3]
    records = read_back(proxy.bootstrap, topic, len(acked))
    values = [r.value for r in records]
    assert acked <= set(values), f"lost {len(acked - set(values))} acknowledged records"
    if idempotent:
        assert len(values) == len(set(values)), "duplicates despite enable_idempotence"
    # per key order holds within each partition
    for part in {r.partition for r in records}:
        in_part = [r.value for r in records if r.partition == part]
        by_key: dict[bytes, list[bytes]] = {}
        for r in records:
            if r.partition == part:
                by_key.setdefault(r.key, []).append(r.value)
        if idempotent:
            assert all(v == sorted(v) for v in by_key.values()), in_part[:10]


# --- the broker stopped and started again on the same port --------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_broker_restart_producer_recovers_on_its_own(transport: str) -> None:
    topic = new_topic()
    broker = TansuBroker()
    broker.start()
    results: dict[str, Any] = {}
    try:

        async def scenario() -> None:
            # 'none': Tansu acknowledges a Produce to a topic it does not have
            # (its in-memory topics are gone after the restart) with error 0 and
            # drops the record, where Kafka answers UNKNOWN_TOPIC_OR_PARTITION.
            # With the default 'rebootstrap' (KIP-899) the metadata refresh that
            # re-creates the topic goes over the bootstrap connection and can
            # lose that race against the Produce on the broker connection; the
            # re-bootstrap path itself is tested in test_rebootstrap.py.
            async with open_producer(
                transport,
                bootstrap_servers=broker.bootstrap,
                delivery_timeout_ms=15000,
                retries=100,
                metadata_recovery_strategy="none",
                **FAST,
            ) as p:
                results["before"] = await p.get(await p.send(topic, b"before"), HANG_GUARD)
                kill(broker)
                during = await p.send(topic, b"during")  # the topic is known: accepted, waits
                await sleep(transport, 1.0)
                broker.start()  # same port, empty (Tansu keeps data in memory)
                results["during"] = await p.outcome(during, HANG_GUARD)
                results["after"] = await p.outcome(await p.send(topic, b"after"), HANG_GUARD)
                t0 = time.monotonic()
                await p.flush(HANG_GUARD)
                await p.close(HANG_GUARD)
                results["closed_in"] = time.monotonic() - t0

        run(transport, scenario)
        assert results["before"].offset == 0
        assert not isinstance(results["during"], BaseException), results["during"]
        assert not isinstance(results["after"], BaseException), results["after"]
        parts = {results["during"].partition, results["after"].partition}
        values = {r.value for r in read_back(broker.bootstrap, topic, 2, partitions=parts)}
        assert {b"during", b"after"} <= values
        assert results["closed_in"] < HANG_GUARD
    finally:
        broker.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_broker_restart_consumer_resumes(transport: str) -> None:
    from kafka import KafkaProducer as PeerProducer

    topic = new_topic()
    broker = TansuBroker()
    broker.start()

    def peer_send(values: list[bytes]) -> None:
        p = PeerProducer(bootstrap_servers=broker.bootstrap)
        try:
            for v in values:
                p.send(topic, v, partition=0).get(timeout=20)
        finally:
            p.close()

    got: dict[str, list[bytes]] = {}
    try:
        peer_send([b"a1", b"a2"])

        async def scenario() -> None:
            async with open_consumer(
                transport,
                topic,
                bootstrap_servers=broker.bootstrap,
                auto_offset_reset="earliest",
                group_id=None,
                request_timeout_ms=2000,
                reconnect_backoff_max_ms=300,
                retry_backoff_ms=50,
            ) as c:
                got["before"] = await c.poll_values(2)
                kill(broker)
                t0 = time.monotonic()
                assert await c.poll(500) == {}  # down: empty, within its timeout
                got["poll_down_s"] = [str(time.monotonic() - t0).encode()]
                broker.start()
                # The restarted broker is empty. Depending on when the consumer's next
                # fetch lands, its position (2) is past the end (reset to earliest) or
                # valid again once records are written: either way it resumes and
                # reads on, in order, up to the newest record.
                peer_send([b"b0", b"b1", b"b2", b"b3", b"b4"])
                got["after"] = await c.poll_values(3, timeout=HANG_GUARD)
                if b"b4" not in got["after"]:
                    got["after"] += await c.poll_values(5 - len(got["after"]), timeout=HANG_GUARD)

        run(transport, scenario)
        assert got["before"] == [b"a1", b"a2"]
        assert float(got["poll_down_s"][0]) < HANG_GUARD
        written = [b"b0", b"b1", b"b2", b"b3", b"b4"]
        assert got["after"] and got["after"][-1] == b"b4", got["after"]
        assert got["after"] == written[len(written) - len(got["after"]) :], got["after"]
    finally:
        broker.stop()


# --- the broker stays down ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_broker_down_fails_in_bounded_time(transport: str) -> None:
    topic = new_topic()
    broker = TansuBroker()
    broker.start()
    results: dict[str, Any] = {}
    try:

        async def scenario() -> None:
            async with open_producer(
                transport, bootstrap_servers=broker.bootstrap, delivery_timeout_ms=3000, retries=100, **FAST
            ) as p:
                await p.get(await p.send(topic, b"first"), HANG_GUARD)
                kill(broker)
                handles = [await p.send(topic, b"lost %d" % i) for i in range(5)]
                t0 = time.monotonic()
                try:
                    await p.flush(1.0)
                    results["flush"] = None
                except KafkaTimeoutError as exc:
                    results["flush"] = exc
                results["flush_s"] = time.monotonic() - t0
                results["outcomes"] = [await p.outcome(h, HANG_GUARD) for h in handles]
                results["fail_s"] = time.monotonic() - t0
                late = await p.send(topic, b"late")
                t0 = time.monotonic()
                await p.close(1.0)
                results["close_s"] = time.monotonic() - t0
                results["late"] = await p.outcome(late, HANG_GUARD)

        run(transport, scenario)
        assert isinstance(results["flush"], KafkaTimeoutError)  # records were still pending after 1 s
        assert all(isinstance(o, KafkaTimeoutError) for o in results["outcomes"]), results["outcomes"]
        assert isinstance(results["late"], KafkaTimeoutError), results["late"]
        assert max(results["flush_s"], results["fail_s"], results["close_s"]) < HANG_GUARD

        async def consume() -> None:
            async with open_consumer(
                transport, topic, bootstrap_servers=broker.bootstrap, group_id=None, request_timeout_ms=1000
            ) as c:
                t0 = time.monotonic()
                results["poll"] = await c.poll(500)
                results["poll_s"] = time.monotonic() - t0

        run(transport, consume)
        assert results["poll"] == {}
        assert results["poll_s"] < HANG_GUARD
    finally:
        broker.stop()


# --- a black-holed connection -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_black_hole_is_detected_by_the_request_timeout(
    transport: str, proxy: FaultProxy, proxied: tuple[Any, FaultProxy]
) -> None:
    topic = new_topic(proxied[0])
    results: dict[str, Any] = {}

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=proxy.bootstrap, delivery_timeout_ms=2500, retries=100, **FAST
        ) as p:
            await p.get(await p.send(topic, b"first"), HANG_GUARD)
            opened = proxy.accepted
            proxy.blackhole = True
            results["swallowed"] = await p.outcome(await p.send(topic, b"swallowed"), HANG_GUARD)
            # the request timed out (1 s): the client dropped that connection and opened a new one
            results["reconnected"] = proxy.accepted > opened
            proxy.blackhole = False
            proxy.cut()  # the network is back; half-dead connections are reset
            results["after"] = await p.outcome(await p.send(topic, b"after"), HANG_GUARD)

    run(transport, scenario)
    assert isinstance(results["swallowed"], KafkaTimeoutError), results["swallowed"]
    assert results["reconnected"]
    assert not isinstance(results["after"], BaseException), results["after"]
    assert b"after" in {r.value for r in read_back(proxy.bootstrap, topic, 2)}


# --- a slow broker ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_slow_link_still_delivers(transport: str, proxy: FaultProxy, proxied: tuple[Any, FaultProxy]) -> None:
    topic = new_topic(proxied[0])
    proxy.delay = 0.15  # each way, per chunk: 0.3 s round trips, under the 1 s request timeout
    outcomes: list[Any] = []

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=proxy.bootstrap, delivery_timeout_ms=10000, **FAST
        ) as p:
            handles = [await p.send(topic, b"s%d" % i) for i in range(40)]
            for h in handles:
                outcomes.append(await p.outcome(h, HANG_GUARD))

    run(transport, scenario)
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes[:3]
    proxy.delay = 0.0
    assert {r.value for r in read_back(proxy.bootstrap, topic, 40)} == {b"s%d" % i for i in range(40)}

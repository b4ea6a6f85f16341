"""KIP-899 re-bootstrap against a real broker that moves to a new address, on each transport.

::

    client --bootstrap--> FaultProxy B ----------\\
    client --metadata---> FaultProxy A (then C) --+--> Tansu (listens on P)

Tansu advertises the port of proxy A, so after bootstrapping through B every
connection of the client goes to A. Then the broker "moves": it is killed
and started again on P advertising the port of a new proxy C, and A goes away
(nothing listens on its port any more). Only the bootstrap proxy B knows the
way: with ``metadata_recovery_strategy='rebootstrap'`` the client goes back
to B, learns C from the metadata and keeps delivering; with ``'none'`` it
keeps knocking on A and the record sent after the move times out.

Tansu keeps data in memory, so the topic is re-created empty after the
move (by the Metadata request that names the new address, since the client
asks about the topics it uses).

On Apache Kafka (``kafka`` in the test ids) one node serves the whole module:
it is killed and restarted on its data, advertising the new proxy, so the
topic and its records survive the move; each test's "old" address is the one
the previous move left.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, read_back, run, sleep
from _broker import TansuBroker, free_port
from _kafka import BROKERS, KafkaCluster
from _proxy import FaultProxy

#: Seconds after which an operation that should have returned counts as hung.
HANG_GUARD = 25.0

FAST = {
    "request_timeout_ms": 1000,
    "retry_backoff_ms": 50,
    "reconnect_backoff_ms": 20,
    "reconnect_backoff_max_ms": 300,
    "max_block_ms": 10000,
}


class MovingBroker:
    """A Tansu behind a bootstrap proxy; ``move()`` restarts it at a new advertised address."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap_proxy = FaultProxy(self.port)
        self.old = FaultProxy(self.port)
        self.new: FaultProxy | None = None
        self.broker = TansuBroker(port=self.port, advertised_port=self.old.port)

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_proxy.bootstrap

    def start(self) -> None:
        self.broker.start()

    def move(self) -> None:
        """Kill the broker, close the old address, start it again advertising a new proxy."""
        proc = self.broker.proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # a crash: Tansu's graceful stop waits for its clients
            proc.wait(5)
        self.broker.proc = None
        self.old.cut()
        self.old.close()  # nothing listens on the old address any more
        self.new = FaultProxy(self.port)
        self.bootstrap_proxy.cut()
        self.broker = TansuBroker(port=self.port, advertised_port=self.new.port)
        self.broker.start()

    def close(self) -> None:
        self.broker.stop()
        for proxy in (self.bootstrap_proxy, self.old, self.new):
            if proxy is not None:
                proxy.close()


class MovingKafka:
    """An Apache Kafka node behind a bootstrap proxy; ``move()`` restarts it advertising a new proxy.

    The node outlives the test (module scope, see ``moving_kafka``): ``old`` is
    the proxy it advertises when the test starts.
    """

    def __init__(self, cluster: KafkaCluster, old: FaultProxy) -> None:
        self.cluster = cluster
        self.node = cluster.nodes[0]
        self.port = self.node.ports["PLAINTEXT"]
        self.bootstrap_proxy = FaultProxy(self.port)
        self.old = old
        self.new: FaultProxy | None = None

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_proxy.bootstrap

    def move(self) -> None:
        """Kill the node, close the old address, restart it on its data advertising a new proxy."""
        self.cluster.stop_node(self.node.node_id, graceful=False)
        self.old.cut()
        self.old.close()
        self.new = FaultProxy(self.port)
        self.bootstrap_proxy.cut()
        self.node.advertised["PLAINTEXT"] = self.new.port
        self.cluster.start_node(self.node.node_id)

    def close(self) -> None:
        self.bootstrap_proxy.close()


@pytest.fixture(scope="module")
def moving_kafka() -> Iterator[tuple[KafkaCluster, list[FaultProxy]]]:
    """One Kafka node for the module, advertising a proxy; yields it and the proxies it advertised (last: current)."""
    cluster = KafkaCluster(1)
    proxy = FaultProxy(cluster.nodes[0].ports["PLAINTEXT"])
    cluster.nodes[0].advertised["PLAINTEXT"] = proxy.port
    proxies = [proxy]
    with cluster:
        try:
            yield cluster, proxies
        finally:
            for p in proxies:
                p.close()


@pytest.fixture(params=BROKERS)
def moving(request: pytest.FixtureRequest) -> Iterator[MovingBroker | MovingKafka]:
    if request.param == "kafka":
        cluster, proxies = request.getfixturevalue("moving_kafka")
        mk = MovingKafka(cluster, proxies[-1])
        try:
            yield mk
        finally:
            if mk.new is not None:
                proxies.append(mk.new)
            mk.close()
        return
    m = MovingBroker()
    m.start()
    try:
        yield m
    finally:
        m.close()


@pytest.mark.parametrize("strategy", ["rebootstrap", "none"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_producer_follows_the_broker_to_its_new_address(
    transport: str, strategy: str, moving: MovingBroker
) -> None:
    topic = f"rb-{uuid.uuid4().hex[:10]}"
    results: dict[str, Any] = {}

    async def scenario() -> None:
        async with open_producer(
            transport,
            bootstrap_servers=moving.bootstrap,
            delivery_timeout_ms=6000,
            retries=100,
            metadata_recovery_strategy=strategy,
            socket_connection_setup_timeout_ms=2000,
            **FAST,
        ) as p:
            results["before"] = await p.get(await p.send(topic, b"before"), HANG_GUARD)
            results["bootstraps_before"] = moving.bootstrap_proxy.accepted
            moving.move()
            await sleep(transport, 0.2)
            results["after"] = await p.outcome(await p.send(topic, b"after"), HANG_GUARD)
            results["bootstraps_after"] = moving.bootstrap_proxy.accepted
            await p.close(HANG_GUARD)

    run(transport, scenario)
    assert results["before"].offset == 0
    assert moving.new is not None
    if strategy == "rebootstrap":
        after = results["after"]
        assert not isinstance(after, BaseException), after
        assert results["bootstraps_after"] > results["bootstraps_before"]  # back through the bootstrap proxy
        assert moving.new.accepted > 0  # and then to the new address
        # The record really is in the moved broker's log (read with kafka-python).
        # Tansu: the metadata that named the new address re-created the topic
        # empty. Kafka kept its log, so "before" may precede it in its partition.
        got = [r.value for r in read_back(f"127.0.0.1:{moving.port}", topic, 1, partitions=[after.partition])]
        assert got[-1:] == [b"after"] and set(got) <= {b"before", b"after"}, got
    else:
        assert isinstance(results["after"], Exception), results["after"]
        assert results["bootstraps_after"] == results["bootstraps_before"]
        assert moving.new.accepted == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_follows_the_broker_to_its_new_address(transport: str, moving: MovingBroker) -> None:
    from kafka import KafkaProducer as PeerProducer

    topic = f"rb-{uuid.uuid4().hex[:10]}"
    results: dict[str, Any] = {}

    def produce(values: list[bytes]) -> None:
        peer = PeerProducer(bootstrap_servers=f"127.0.0.1:{moving.port}")
        try:
            for v in values:
                peer.send(topic, v, partition=0).get(HANG_GUARD)
        finally:
            peer.close()

    async def scenario() -> None:
        async with open_consumer(
            transport,
            topic,
            bootstrap_servers=moving.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            metadata_recovery_strategy="rebootstrap",
            enable_auto_commit=False,
            request_timeout_ms=2000,
            fetch_max_wait_ms=100,
            retry_backoff_ms=50,
            reconnect_backoff_ms=20,
            reconnect_backoff_max_ms=300,
        ) as c:
            produce([b"before"])
            results["before"] = await c.poll_values(1, HANG_GUARD)
            moving.move()
            # The moved broker is empty (Tansu keeps data in memory): depending on
            # when the next fetch lands, position 1 is past the end (reset to
            # earliest) or valid once records are written; either way the
            # consumer reads on, in order, up to the newest record.
            produce([b"b0", b"b1", b"b2"])
            results["after"] = await c.poll_values(2, HANG_GUARD)
            if b"b2" not in results["after"]:
                results["after"] += await c.poll_values(3 - len(results["after"]), HANG_GUARD)

    run(transport, scenario)
    assert results["before"] == [b"before"]
    written = [b"b0", b"b1", b"b2"]
    assert results["after"] and results["after"] == written[len(written) - len(results["after"]) :], results

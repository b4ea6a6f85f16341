"""Three Apache Kafka brokers (``kafka_cluster``): replication factor 3, ``min.insync.replicas=2``.

* ``acks='all'`` on every transport, plainly and over SASL_SSL: the partitions'
  leaders are spread over the three brokers, each write waits for the in-sync
  replicas, and everything reads back.
* A group whose coordinator is not the broker the client bootstrapped from:
  the client finds it (FindCoordinator), connects to it and gets its assignment.
* Leader failover: a broker stops while a producer with ``acks='all'`` is
  sending; the producer refreshes its metadata, follows the new leaders and
  delivers everything (two in-sync replicas remain, enough for
  ``min.insync.replicas=2``); the broker is started again afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, read_back, run
from _kafka import KafkaCluster

pytestmark = pytest.mark.kafka_cluster

N = 40


def new_topic(cluster: KafkaCluster) -> str:
    return cluster.create_topic(f"c3-{uuid.uuid4().hex[:10]}")


@pytest.mark.parametrize("security", ["PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_acks_all_across_three_brokers(transport: str, security: str, kafka_cluster: KafkaCluster) -> None:
    topic = new_topic(kafka_cluster)
    leaders = kafka_cluster.leaders(topic)
    assert len(set(leaders.values())) > 1, leaders  # the partitions really live on several brokers
    mechanism = "SCRAM-SHA-512" if security == "SASL_SSL" else None
    cfg = kafka_cluster.client_config(security, mechanism)
    outcomes: list[Any] = []

    async def scenario() -> None:
        async with open_producer(transport, acks="all", **cfg) as p:
            handles = [await p.send(topic, b"v%d" % i, key=b"k%d" % i) for i in range(N)]
            outcomes.extend([await p.outcome(h, 30) for h in handles])

    run(transport, scenario)
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert {o.partition for o in outcomes} == set(leaders)
    values = sorted(r.value for r in read_back(kafka_cluster.bootstrap, topic, N))
    assert values == sorted(b"v%d" % i for i in range(N))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_group_coordinator_is_another_broker(transport: str, kafka_cluster: KafkaCluster) -> None:
    topic = new_topic(kafka_cluster)
    first = kafka_cluster.nodes[0]
    group = next(
        g for g in (f"g3-{uuid.uuid4().hex[:8]}" for _ in range(100)) if kafka_cluster.coordinator(g) != first.node_id
    )
    got: list[bytes] = []
    assigned: list[Any] = []

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=kafka_cluster.bootstrap, acks="all") as p:
            for i in range(N):
                await p.send(topic, b"g%d" % i)
            await p.flush(30)
        async with open_consumer(
            transport, topic, bootstrap_servers=first.bootstrap(), group_id=group, auto_offset_reset="earliest",
            session_timeout_ms=10000, heartbeat_interval_ms=500,
        ) as c:  # fmt: skip
            got.extend(await c.poll_values(N, timeout=60))
            assigned.extend(c.c.assignment())

    run(transport, scenario)
    assert sorted(got) == sorted(b"g%d" % i for i in range(N))
    assert {tp.partition for tp in assigned} == {0, 1, 2, 3}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_leader_failover_with_acks_all(transport: str, kafka_cluster: KafkaCluster) -> None:
    topic = new_topic(kafka_cluster)
    victim = kafka_cluster.leaders(topic)[0]
    before: list[Any] = []
    after: list[Any] = []

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=kafka_cluster.bootstrap, acks="all", retries=1000,
            request_timeout_ms=5000, delivery_timeout_ms=60000,
        ) as p:  # fmt: skip
            for i in range(N):
                before.append(await p.outcome(await p.send(topic, b"b%d" % i, partition=i % 4), 30))
            kafka_cluster.stop_node(victim)  # controlled shutdown: its partitions get new leaders
            for i in range(N):
                after.append(await p.outcome(await p.send(topic, b"a%d" % i, partition=i % 4), 60))

    try:
        run(transport, scenario)
        assert all(not isinstance(o, BaseException) for o in before + after), before + after
        leaders = kafka_cluster.leaders(topic)
        assert victim not in leaders.values(), leaders
        values = sorted(r.value for r in read_back(kafka_cluster.bootstrap, topic, 2 * N))
        assert values == sorted([b"b%d" % i for i in range(N)] + [b"a%d" % i for i in range(N)])
    finally:
        kafka_cluster.start_node(victim)

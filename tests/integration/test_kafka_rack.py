"""KIP-392 on Apache Kafka: a consumer with ``client_rack`` reads from the replica in its rack.

The three-node ``kafka_cluster`` has node n in ``rack<n>`` and Kafka's
``RackAwareReplicaSelector``. A consumer in the rack of a node that leads
only some of the topic's partitions (replication factor 3: every node holds
every partition) sends its rack in each Fetch; the leaders of the other
partitions answer with that node as ``preferred_read_replica``, and the
consumer reads every record from there. Which node each Fetch went to, and
the record bytes each node returned, come from the consumer core's own
bookkeeping (``ConsumerCore.fetches_by_node``), checked against the leaders
the brokers report.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _kafka import KafkaCluster

from kproto.consumer import TopicPartition

pytestmark = pytest.mark.kafka_cluster

N = 200


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_fetches_from_the_replica_in_its_rack(transport: str, kafka_cluster: KafkaCluster) -> None:
    topic = kafka_cluster.create_topic(f"rack-{uuid.uuid4().hex[:10]}")
    leaders = kafka_cluster.leaders(topic)
    # The node leading the fewest partitions: most partitions are read from it as a follower.
    near = min(sorted(n.node_id for n in kafka_cluster.nodes), key=lambda n: list(leaders.values()).count(n))
    followed = sorted(p for p, leader in leaders.items() if leader != near)
    assert followed, leaders
    got: list[bytes] = []
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=kafka_cluster.bootstrap, acks="all") as p:
            for i in range(N):
                await p.send(topic, b"r%d" % i, partition=i % len(leaders))
            await p.flush(30)
        async with open_consumer(
            transport, bootstrap_servers=kafka_cluster.bootstrap, client_rack=f"rack{near}",
            auto_offset_reset="earliest", enable_auto_commit=False,
        ) as c:  # fmt: skip
            c.c.assign([TopicPartition(topic, p) for p in leaders])
            got.extend(await c.poll_values(N, timeout=60))
            core = c.c._core
            seen["nodes"] = core.fetches_by_node()
            seen["replicas"] = {p: core.read_replica(TopicPartition(topic, p)) for p in leaders}
            seen["versions"] = core.api_versions()

    run(transport, scenario)
    assert sorted(got) == sorted(b"r%d" % i for i in range(N))
    assert seen["versions"]["Fetch"] >= 11  # rack_id travels in Fetch v11+
    # Every partition now reads from the node in our rack: as leader, or as the preferred replica.
    assert seen["replicas"] == dict.fromkeys(leaders, near), (seen, leaders)
    nodes: dict[int, tuple[int, int]] = seen["nodes"]
    # The other leaders were asked (they named the replica) but sent no record bytes; all came from `near`.
    assert nodes[near][1] > 0, nodes
    for node, (requests, nbytes) in nodes.items():
        if node != near:
            assert nbytes == 0, (node, nodes, leaders)
            assert requests >= 1
    assert {leaders[p] for p in followed} <= set(nodes), (nodes, leaders)

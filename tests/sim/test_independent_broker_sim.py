"""A consumer group on a 3-broker cluster of an independent Kafka-compatible implementation (issue 10).

The brokers differ from Apache Kafka as the one in issue 10 did, plus two
ways seen in other implementations (each a :class:`BrokerQuirks` field):

* ApiVersions above v0 is answered UNSUPPORTED_VERSION in a body that reads
  neither as the version asked nor as v0 (the issue's bytes), and the broker
  then hangs up;
* every flexible response carries a byte after its fields;
* FindCoordinator names the coordinator by another host string than Metadata
  (both reach the broker).

The consumer must get every partition, and no broker may be asked an
ApiVersions version it refused more than once (per broker, not per
connection: the coordinator connection is a second connection to a broker,
under a node id of its own, ``COORDINATOR_NODE_BASE - broker id``).
"""

from __future__ import annotations

import random

import pytest

from kproto.client import COORDINATOR_NODE_BASE
from kproto.consumer import ConsumerConfig, TopicPartition
from kproto.consumer.core import ConsumerCore
from tests.sim.harness import MultiSim, SimCluster

TOPIC = "events"
PARTITIONS = 6
#: The issue's answer to ApiVersions v4: error 35, then bytes that read as no layout.
REFUSAL = bytes.fromhex("0023" "01001200" "000300" "00000000")


def quirky_cluster(seed: int) -> SimCluster:
    cluster = SimCluster(random.Random(seed), n_brokers=3, default_partitions=PARTITIONS)
    for broker in cluster.brokers.values():
        broker.api_versions_max = 0
        broker.quirks.api_versions_refusal = REFUSAL
        broker.quirks.close_after_refusal = True
        broker.quirks.trailing_bytes = b"\x00"
        broker.quirks.coordinator_host = broker.host.upper()
    cluster.create_topic(TOPIC, 0.0, partitions=PARTITIONS)
    return cluster


@pytest.mark.parametrize("seed", range(8))
def test_group_is_assigned_on_an_independent_broker_cluster(seed: int) -> None:
    rng = random.Random(seed)
    cluster = quirky_cluster(seed)
    sim = MultiSim(cluster, rng)
    cfg = ConsumerConfig.from_kwargs(
        bootstrap_servers=cluster.bootstrap,
        group_id="g",
        auto_offset_reset="earliest",
        session_timeout_ms=3000,
        heartbeat_interval_ms=500,
        retry_backoff_ms=50,
        request_timeout_ms=5000,
    )
    core = ConsumerCore(cfg, now=sim.now, rng=random.Random(seed))
    core.subscribe([TOPIC], now=sim.now)
    sim.add("c", core)

    def poll(now: float) -> None:
        core.poll(None, now)
        sim.schedule(now + 0.05, poll)

    sim.schedule(0.0, poll)
    want = {TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
    assert sim.run(until=lambda: core.assignment() == want, max_time=30.0), f"seed {seed}: not assigned"
    seen = len(sim.commands_seen)
    heartbeats = sum(r == (12, 4) for b in cluster.brokers.values() for r in b.requests)
    sim.run(max_time=sim.now + 2.0)  # heartbeats on the coordinator connection
    assert core.assignment() == want
    assert sum(r == (12, 4) for b in cluster.brokers.values() for r in b.requests) >= heartbeats + 3
    # The coordinator connection stays up: no reconnect to it once the group is stable.
    assert [c for _, c in sim.commands_seen[seen:] if c.node_id > COORDINATOR_NODE_BASE - 100] == []
    for broker in cluster.brokers.values():
        refused = [r for r in broker.requests if r[0] == 18 and r[1] > 0]
        assert len(refused) <= 1, f"broker {broker.node_id} asked {refused}"
    assert core._client.responses_with_trailing_bytes > 0

"""ClusterMetadata.update: errors, leaderless partitions, KIP-320 epochs, forgetting topics."""

from __future__ import annotations

import uuid

from kproto.cluster import ClusterMetadata, PartitionInfo
from kproto.errors import TopicAuthorizationFailedError, UnknownTopicOrPartitionError
from kproto.protocol.messages.metadata import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)

TID = uuid.UUID(int=7)


def response(*topics: MetadataResponseTopic) -> MetadataResponse:
    return MetadataResponse(
        brokers=[
            MetadataResponseBroker(node_id=1, host="h1", port=9092, rack="r1"),
            MetadataResponseBroker(node_id=2, host="h2", port=9093),
        ],
        cluster_id="c",
        controller_id=2,
        topics=list(topics),
    )


def topic(
    name: str, *parts: tuple[int, int, int], error: int = 0, internal: bool = False
) -> MetadataResponseTopic:
    return MetadataResponseTopic(
        error_code=error,
        name=name,
        topic_id=TID,
        is_internal=internal,
        partitions=[
            MetadataResponsePartition(
                partition_index=i,
                leader_id=leader,
                leader_epoch=epoch,
                replica_nodes=[1, 2],
                isr_nodes=[1],
                error_code=5 if leader < 0 else 0,
            )
            for i, leader, epoch in parts
        ],
    )


def test_brokers_partitions_and_leaders() -> None:
    c = ClusterMetadata()
    assert c.version == 0 and c.brokers == {}
    described, transient = c.update(
        response(topic("t", (0, 1, 3), (1, 2, 0)), topic("__consumer_offsets", internal=True))
    )
    assert (described, transient) == (frozenset({"t", "__consumer_offsets"}), False)
    assert c.version == 1 and (c.cluster_id, c.controller_id) == ("c", 2)
    assert c.broker(1) == ("h1", 9092, "r1") and c.broker(3) is None
    host, port, rack = c.brokers[2]
    assert (host, port, rack) == ("h2", 9093, None)
    assert c.partitions_for("t") == {0, 1}
    assert (c.leader_for("t", 0), c.leader_epoch_for("t", 0)) == (1, 3)
    assert c.partition_info("t", 1) == PartitionInfo(
        topic="t",
        partition=1,
        leader=2,
        leader_epoch=0,
        replicas=(1, 2),
        isr=(1,),
        offline_replicas=(),
        error_code=0,
    )
    assert c.topic_id("t") == TID and c.is_internal("__consumer_offsets") and not c.is_internal("t")
    assert c.topics == {"t", "__consumer_offsets"}
    assert c.leader_for("t", 9) is None and c.leader_for("x", 0) is None


def test_leaderless_partition_is_unavailable_and_transient() -> None:
    c = ClusterMetadata()
    _, transient = c.update(response(topic("t", (0, -1, 2), (1, 2, 0))))
    assert transient
    assert c.partitions_for("t") == {0, 1}
    assert c.available_partitions_for("t") == {1}
    assert c.leader_for("t", 0) is None
    assert c.available_partitions_for("nope") == set()


def test_stale_leader_epoch_is_ignored_kip_320() -> None:
    c = ClusterMetadata()
    c.update(response(topic("t", (0, 2, 5))))
    c.update(response(topic("t", (0, 1, 4))))  # a lagging broker's view
    assert (c.leader_for("t", 0), c.leader_epoch_for("t", 0)) == (2, 5)
    c.update(response(topic("t", (0, 1, 6))))
    assert (c.leader_for("t", 0), c.leader_epoch_for("t", 0)) == (1, 6)
    assert c.version == 3


def test_topic_errors() -> None:
    c = ClusterMetadata()
    c.update(response(topic("t", (0, 1, 0))))
    _, transient = c.update(response(topic("t", error=5)))  # LEADER_NOT_AVAILABLE: keep what we had
    assert transient and c.partitions_for("t") == {0}
    _, transient = c.update(response(topic("t", error=3)))  # retriable, as in Java: the topic may be coming
    assert transient
    _, transient = c.update(response(topic("t", error=3), topic("secret", error=29)))
    assert isinstance(c.topic_error("t"), UnknownTopicOrPartitionError)
    assert isinstance(c.topic_error("secret"), TopicAuthorizationFailedError)
    assert c.partitions_for("t") is None
    c.update(response(topic("t", (0, 1, 0))))
    assert c.topic_error("t") is None


def test_retain_topics_forgets_the_rest() -> None:
    c = ClusterMetadata()
    c.update(response(topic("a", (0, 1, 0)), topic("b", (0, 1, 0)), topic("x", error=3)))
    c.retain_topics(["a"])
    assert c.topics == {"a"} and c.topic_error("x") is None and c.topic_id("b") is None

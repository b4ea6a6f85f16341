"""Consumer groups and their committed offsets, at each group's coordinator
(ListGroups at every broker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kproto.admin.answers import Retry, by_topic, error_for, per_unit, retry_or_fail
from kproto.admin.engine import (
    COORDINATOR,
    AdminEngine,
    AdminOp,
)
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotCoordinatorError,
    UnstableOffsetCommitError,
)
from kproto.protocol.messages import offset_commit as _oc
from kproto.protocol.messages import offset_delete as _od
from kproto.protocol.messages import offset_fetch as _of
from kproto.protocol.messages.delete_groups import DeleteGroupsRequest
from kproto.protocol.messages.describe_groups import DescribeGroupsRequest
from kproto.protocol.messages.list_groups import ListGroupsRequest

_COORDINATOR_CODES = (
    NotCoordinatorError.errno,
    CoordinatorNotAvailableError.errno,
    CoordinatorLoadInProgressError.errno,
)

#: OffsetFetch partition errors that retry the group: UNSTABLE_OFFSET_COMMIT (KIP-447) and
#: the coordinator moving; any other leaves that partition out of the answer.
_OFFSET_FETCH_RETRY = (*_COORDINATOR_CODES, UnstableOffsetCommitError.errno)


def list_consumer_groups(
    engine: AdminEngine, *, now: float, states: Iterable[str] = (), timeout_ms: int | None = None
) -> AdminOp:
    """ListGroups on every broker, as Java does (each broker lists the groups it
    coordinates). One entry per broker id: ``[(group_id, protocol_type, state)]``."""
    states_filter = list(states)

    def build(keys: list[int], _t: int) -> Any:
        return ListGroupsRequest(states_filter=states_filter)

    def parse(resp: Any, keys: list[int]) -> dict[int, Any]:
        if resp.error_code:
            return {keys[0]: retry_or_fail(resp.error_code, None, f"list groups on broker {keys[0]}")}
        return {keys[0]: [(g.group_id, g.protocol_type, g.group_state) for g in resp.groups]}

    return engine.every_broker("list_consumer_groups", build, parse, now, timeout_ms)


def describe_consumer_groups(
    engine: AdminEngine,
    group_ids: Iterable[str],
    *,
    now: float,
    include_authorized_operations: bool = False,
    timeout_ms: int | None = None,
) -> AdminOp:
    """DescribeGroups at each group's coordinator; one entry per group, a dict
    (``group_id``, ``state``, ``protocol_type``, ``protocol``, ``members``)."""

    def build(keys: list[str], _t: int) -> Any:
        return DescribeGroupsRequest(groups=keys, include_authorized_operations=include_authorized_operations)

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        return per_unit(
            resp.groups, lambda g: g.group_id, "describe group", _group_description, retry_or_fail
        )

    keys = list(dict.fromkeys(group_ids))
    return engine.start("describe_consumer_groups", keys, COORDINATOR, build, parse, now, timeout_ms)


def _group_description(g: Any) -> dict[str, Any]:
    return {
        "group_id": g.group_id,
        "state": g.group_state,
        "protocol_type": g.protocol_type,
        "protocol": g.protocol_data,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.member_metadata,
                "member_assignment": m.member_assignment,
            }
            for m in g.members
        ],
        "authorized_operations": g.authorized_operations,
    }


def list_consumer_group_offsets(
    engine: AdminEngine,
    group_id: str,
    partitions: Iterable[TopicPartition] | None = None,
    *,
    now: float,
    require_stable: bool = False,
    timeout_ms: int | None = None,
) -> AdminOp:
    """OffsetFetch at the group's coordinator: result ``{group_id: {TopicPartition:
    OffsetAndMetadata}}``. Partitions without a committed offset, or whose answer
    carries a final error, are left out (as Java's handler does);
    UNSTABLE_OFFSET_COMMIT (KIP-447) and coordinator errors retry the group."""
    parts = None if partitions is None else list(partitions)

    def build(keys: list[str], _t: int) -> Any:
        topics = None
        if parts is not None:
            topics = [
                _of.OffsetFetchRequestTopic(name=t, partition_indexes=p) for t, p in by_topic(parts).items()
            ]
        return _of.OffsetFetchRequest(group_id=keys[0], topics=topics, require_stable=require_stable)

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        g = keys[0]
        if resp.error_code:
            return {g: retry_or_fail(resp.error_code, None, f"fetch offsets of group {g!r}")}
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code:
                    if p.error_code in _OFFSET_FETCH_RETRY:  # pending transactional offsets, a move
                        return {g: Retry(error_for(p.error_code, None, f"offsets of group {g!r}"))}
                    continue  # Java's ListConsumerGroupOffsetsHandler leaves such a partition out
                if p.committed_offset >= 0:
                    offsets[TopicPartition(t.name, p.partition_index)] = OffsetAndMetadata(
                        p.committed_offset, p.metadata or "", p.committed_leader_epoch
                    )
        return {g: offsets}

    return engine.start("list_consumer_group_offsets", [group_id], COORDINATOR, build, parse, now, timeout_ms)


def alter_consumer_group_offsets(
    engine: AdminEngine,
    group_id: str,
    offsets: Mapping[TopicPartition, OffsetAndMetadata | int],
    *,
    now: float,
    timeout_ms: int | None = None,
) -> AdminOp:
    """OffsetCommit as a simple (non-member) commit at the coordinator; the group
    must be empty. Result ``{group_id: {TopicPartition: None | KafkaError}}``."""
    wanted = {
        tp: o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(int(o)) for tp, o in offsets.items()
    }

    def build(keys: list[str], _t: int) -> Any:
        per_topic = by_topic(
            wanted,
            lambda tp: _oc.OffsetCommitRequestPartition(
                partition_index=tp.partition,
                committed_offset=wanted[tp].offset,
                committed_leader_epoch=wanted[tp].leader_epoch,
                committed_metadata=wanted[tp].metadata,
            ),
        )
        return _oc.OffsetCommitRequest(
            group_id=keys[0],
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[_oc.OffsetCommitRequestTopic(name=t, partitions=p) for t, p in per_topic.items()],
        )

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        return {keys[0]: _partition_results(resp.topics, keys[0])}

    return engine.start(
        "alter_consumer_group_offsets", [group_id], COORDINATOR, build, parse, now, timeout_ms
    )


def delete_consumer_group_offsets(
    engine: AdminEngine,
    group_id: str,
    partitions: Iterable[TopicPartition],
    *,
    now: float,
    timeout_ms: int | None = None,
) -> AdminOp:
    """OffsetDelete (KIP-496) at the coordinator: ``{group_id: {TopicPartition: None | KafkaError}}``."""
    parts = list(partitions)

    def build(keys: list[str], _t: int) -> Any:
        per_topic = by_topic(parts, lambda tp: _od.OffsetDeleteRequestPartition(partition_index=tp.partition))
        return _od.OffsetDeleteRequest(
            group_id=keys[0],
            topics=[_od.OffsetDeleteRequestTopic(name=t, partitions=p) for t, p in per_topic.items()],
        )

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        g = keys[0]
        if resp.error_code:
            return {g: retry_or_fail(resp.error_code, None, f"delete offsets of group {g!r}")}
        return {g: _partition_results(resp.topics, g)}

    return engine.start(
        "delete_consumer_group_offsets", [group_id], COORDINATOR, build, parse, now, timeout_ms
    )


def delete_consumer_groups(
    engine: AdminEngine, group_ids: Iterable[str], *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DeleteGroups at each group's coordinator; value None per deleted group."""

    def build(keys: list[str], _t: int) -> Any:
        return DeleteGroupsRequest(groups_names=keys)

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        return per_unit(resp.results, lambda r: r.group_id, "delete group", answer=retry_or_fail)

    keys = list(dict.fromkeys(group_ids))
    return engine.start("delete_consumer_groups", keys, COORDINATOR, build, parse, now, timeout_ms)


def _partition_results(topics: Any, group: str) -> Any:
    """Per-partition outcome of a group offsets call; a coordinator error on any
    partition retries the whole group (Java's AlterConsumerGroupOffsetsHandler)."""
    out: dict[TopicPartition, KafkaError | None] = {}
    for t in topics:
        for p in t.partitions:
            if p.error_code in _COORDINATOR_CODES:
                return Retry(error_for(p.error_code, None, f"offsets of group {group!r}"))
            out[TopicPartition(t.name, p.partition_index)] = error_for(p.error_code) if p.error_code else None
    return out

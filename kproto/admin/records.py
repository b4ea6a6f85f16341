"""Partition records and leaders: DeleteRecords and ListOffsets at each
partition's leader, ElectLeaders (KIP-460) at the controller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kproto.admin.answers import by_topic, controller_answer, per_partition, topic_entries
from kproto.admin.engine import (
    CONTROLLER,
    LEADER,
    AdminEngine,
    AdminOp,
)
from kproto.admin.types import (
    ListOffsetsResultInfo,
    OffsetSpec,
)
from kproto.consumer import TopicPartition
from kproto.protocol.messages import delete_records as _dr
from kproto.protocol.messages import elect_leaders as _el
from kproto.protocol.messages import list_offsets as _lo


def delete_records(
    engine: AdminEngine, offsets: Mapping[TopicPartition, int], *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DeleteRecords at each partition's leader (one request per leader); value
    ``{"low_watermark": n}`` per partition. Offset -1 deletes up to the high watermark."""
    before = dict(offsets)

    def build(keys: list[TopicPartition], t_ms: int) -> Any:
        return _dr.DeleteRecordsRequest(
            topics=topic_entries(keys, _dr.DeleteRecordsTopic, _dr.DeleteRecordsPartition, offset=before),
            timeout_ms=t_ms,
        )

    def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
        return per_partition(resp.topics, "delete records", lambda p: {"low_watermark": p.low_watermark})

    return engine.start(
        "delete_records", list(before), LEADER, build, parse, now, timeout_ms, target=lambda k: k
    )


def list_offsets(
    engine: AdminEngine,
    specs: Mapping[TopicPartition, int],
    *,
    now: float,
    isolation_level: int = 0,
    timeout_ms: int | None = None,
) -> AdminOp:
    """ListOffsets at each partition's leader; ``specs`` maps a partition to an
    :class:`~kproto.admin.types.OffsetSpec` value or a timestamp. Value per
    partition: :class:`~kproto.admin.types.ListOffsetsResultInfo`."""
    wanted = dict(specs)

    def build(keys: list[TopicPartition], t_ms: int) -> Any:
        return _lo.ListOffsetsRequest(
            replica_id=-1,
            isolation_level=isolation_level,
            topics=topic_entries(keys, _lo.ListOffsetsTopic, _lo.ListOffsetsPartition, timestamp=wanted),
            timeout_ms=t_ms,
        )

    def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
        return per_partition(
            resp.topics,
            "list offsets",
            lambda p: ListOffsetsResultInfo(p.offset, p.timestamp, p.leader_epoch),
        )

    # MAX_TIMESTAMP (KIP-734) exists from ListOffsets v7; an older broker would
    # read -3 as a timestamp. Java fails such a call with UnsupportedVersionException.
    needs = (_lo.ListOffsetsRequest.API_KEY, 7) if OffsetSpec.MAX_TIMESTAMP in wanted.values() else None
    return engine.start(
        "list_offsets", list(wanted), LEADER, build, parse, now, timeout_ms, needs_version=needs
    )


def elect_leaders(
    engine: AdminEngine,
    election_type: int,
    partitions: Iterable[TopicPartition],
    *,
    now: float,
    timeout_ms: int | None = None,
) -> AdminOp:
    """ElectLeaders (KIP-460) at the controller; 0 preferred, 1 unclean. Value None
    per partition elected (ELECTION_NOT_NEEDED is an error entry, as Java reports it)."""
    parts = list(dict.fromkeys(partitions))

    def build(keys: list[TopicPartition], t_ms: int) -> Any:
        return _el.ElectLeadersRequest(
            election_type=election_type,
            topic_partitions=[_el.TopicPartitions(topic=t, partitions=p) for t, p in by_topic(keys).items()],
            timeout_ms=t_ms,
        )

    def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
        if resp.error_code:
            return {k: controller_answer(resp.error_code, None, "elect leaders") for k in keys}
        out: dict[TopicPartition, Any] = {}
        for r in resp.replica_election_results:
            for p in r.partition_result:
                tp = TopicPartition(r.topic, p.partition_id)
                out[tp] = (
                    controller_answer(
                        p.error_code, p.error_message, f"elect leader of {r.topic}-{p.partition_id}"
                    )
                    if p.error_code
                    else None
                )
        return out

    return engine.start("elect_leaders", parts, CONTROLLER, build, parse, now, timeout_ms)

"""The cluster and its brokers: DescribeCluster (or Metadata) and DescribeLogDirs."""

from __future__ import annotations

from typing import Any

from kproto.admin.answers import error_for, retry_or_fail
from kproto.admin.engine import (
    ANY,
    AdminEngine,
    AdminOp,
)
from kproto.admin.topics import metadata_build, metadata_checked
from kproto.consumer import TopicPartition
from kproto.protocol.messages import describe_log_dirs as _dld
from kproto.protocol.messages.describe_cluster import DescribeClusterRequest


def describe_cluster(engine: AdminEngine, *, now: float, timeout_ms: int | None = None) -> AdminOp:
    """DescribeCluster (KIP-700) at any broker, or Metadata without topics where
    the broker lacks it (Java and kafka-python 3 do the same). Result ``{None:
    {"cluster_id", "controller_id", "brokers": [{"broker_id", "host", "port",
    "rack", "is_fenced"}]}}``."""

    def build(_keys: list[Any], _t: int) -> Any:
        return DescribeClusterRequest()

    def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
        if resp.error_code:
            return {None: retry_or_fail(resp.error_code, resp.error_message, "describe cluster")}
        brokers = [(b.broker_id, b.host, b.port, b.rack, b.is_fenced) for b in resp.brokers]
        return {None: _cluster_dict(resp.cluster_id, resp.controller_id, brokers)}

    def metadata_parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
        brokers = [(b.node_id, b.host, b.port, b.rack, False) for b in resp.brokers]
        return {None: _cluster_dict(resp.cluster_id, resp.controller_id, brokers)}

    op = engine.new_op("describe_cluster", now, timeout_ms)
    engine.add_call(
        op,
        [None],
        ANY,
        build,
        parse,
        now,
        needs_version=(DescribeClusterRequest.API_KEY, 0),
        fallback=(metadata_build([]), metadata_checked("describe_cluster", metadata_parse)),
    )
    return engine.finish_start(op, now)


def describe_log_dirs(engine: AdminEngine, *, now: float, timeout_ms: int | None = None) -> AdminOp:
    """DescribeLogDirs (all topics) on every broker; per broker id,
    ``{log_dir: {"total_bytes", "usable_bytes", "partitions": {TopicPartition:
    {"size", "offset_lag", "is_future"}}}}``; a failed log dir maps to its error."""

    def build(_keys: list[int], _t: int) -> Any:
        return _dld.DescribeLogDirsRequest(topics=None)

    def parse(resp: Any, keys: list[int]) -> dict[int, Any]:
        if resp.error_code:
            return {keys[0]: retry_or_fail(resp.error_code, None, f"describe log dirs of broker {keys[0]}")}
        dirs: dict[str, Any] = {}
        for d in resp.results:
            if d.error_code:
                dirs[d.log_dir] = error_for(d.error_code, None, d.log_dir)
                continue
            dirs[d.log_dir] = {
                "total_bytes": d.total_bytes,
                "usable_bytes": d.usable_bytes,
                "partitions": {
                    TopicPartition(t.name, p.partition_index): {
                        "size": p.partition_size,
                        "offset_lag": p.offset_lag,
                        "is_future": p.is_future_key,
                    }
                    for t in d.topics
                    for p in t.partitions
                },
            }
        return {keys[0]: dirs}

    return engine.every_broker("describe_log_dirs", build, parse, now, timeout_ms)


def _cluster_dict(
    cluster_id: str | None, controller_id: int, brokers: list[tuple[int, str, int, str | None, bool]]
) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "controller_id": controller_id,
        "brokers": [
            {"broker_id": i, "host": h, "port": p, "rack": r, "is_fenced": f}
            for i, h, p, r, f in sorted(brokers)
        ],
    }

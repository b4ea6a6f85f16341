"""Topics and partitions: CreateTopics, DeleteTopics, CreatePartitions and
Metadata-based listing, as request builders and answer parsers over the
:class:`~kproto.admin.engine.AdminEngine`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from kproto.admin.answers import controller_answer, error_for, per_unit, retry_or_fail
from kproto.admin.engine import (
    ANY,
    CONTROLLER,
    AdminEngine,
    AdminOp,
    Build,
    Parse,
)
from kproto.admin.types import (
    NewPartitions,
    NewTopic,
)
from kproto.protocol.messages import create_partitions as _cp
from kproto.protocol.messages import create_topics as _ct
from kproto.protocol.messages import delete_topics as _dt
from kproto.protocol.messages.metadata import MetadataRequest, MetadataRequestTopic

_K = TypeVar("_K", bound=Hashable)


def create_topics(
    engine: AdminEngine,
    new_topics: Sequence[NewTopic | str] | Mapping[str, Mapping[str, object]],
    *,
    now: float,
    timeout_ms: int | None = None,
    validate_only: bool = False,
) -> AdminOp:
    """CreateTopics at the controller; one entry per topic name.

    ``new_topics``: :class:`NewTopic` objects, names (the broker's defaults,
    KIP-464), or ``{name: {num_partitions, replication_factor, assignments,
    configs}}`` as kafka-python 3 takes. A result is a dict with
    ``num_partitions``, ``replication_factor``, ``topic_id`` and ``configs``
    as the broker reports them (v5+; -1/None before)."""
    topics = _creatable_topics(new_topics)
    by_name = {t.name: t for t in topics}

    def build(keys: list[str], t_ms: int) -> Any:
        return _ct.CreateTopicsRequest(
            topics=[by_name[k] for k in keys], timeout_ms=t_ms, validate_only=validate_only
        )

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in resp.topics:
            if r.error_code:
                out[r.name] = controller_answer(r.error_code, r.error_message, f"create topic {r.name!r}")
            else:
                out[r.name] = {
                    "name": r.name,
                    "topic_id": r.topic_id if r.topic_id != uuid.UUID(int=0) else None,
                    "num_partitions": r.num_partitions,
                    "replication_factor": r.replication_factor,
                    "configs": {c.name: c.value for c in (r.configs or [])},
                }
        return out

    return engine.start("create_topics", list(by_name), CONTROLLER, build, parse, now, timeout_ms)


def delete_topics(
    engine: AdminEngine, topics: Iterable[str | uuid.UUID], *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DeleteTopics at the controller; topics by name, or by id (a ``uuid.UUID``, v6+, KIP-516)."""
    keys = list(dict.fromkeys(topics))

    def build(ks: list[Any], t_ms: int) -> Any:
        return _dt.DeleteTopicsRequest(
            topics=[
                _dt.DeleteTopicState(name=None, topic_id=k)
                if isinstance(k, uuid.UUID)
                else _dt.DeleteTopicState(name=k)
                for k in ks
            ],
            topic_names=[k for k in ks if isinstance(k, str)],
            timeout_ms=t_ms,
        )

    def parse(resp: Any, ks: list[Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for r in resp.responses:
            key: Any = r.name
            if key not in ks and r.topic_id in ks:
                key = r.topic_id
            if r.error_code:
                out[key] = controller_answer(r.error_code, r.error_message, f"delete topic {key!s}")
            else:
                out[key] = {"name": r.name, "topic_id": r.topic_id}
        return out

    return engine.start(
        "delete_topics",
        keys,
        CONTROLLER,
        build,
        parse,
        now,
        timeout_ms,
        # Topic ids exist in DeleteTopics v6+ (KIP-516); older versions cannot name them.
        needs_version=(_dt.DeleteTopicsRequest.API_KEY, 6)
        if any(isinstance(k, uuid.UUID) for k in keys)
        else None,
    )


def create_partitions(
    engine: AdminEngine,
    topic_partitions: Mapping[str, NewPartitions],
    *,
    now: float,
    timeout_ms: int | None = None,
    validate_only: bool = False,
) -> AdminOp:
    """CreatePartitions at the controller; one entry per topic (value None on success)."""
    wanted = dict(topic_partitions)

    def build(keys: list[str], t_ms: int) -> Any:
        return _cp.CreatePartitionsRequest(
            topics=[
                _cp.CreatePartitionsTopic(
                    name=k,
                    count=wanted[k].total_count,
                    assignments=None
                    if wanted[k].new_assignments is None
                    else [
                        _cp.CreatePartitionsAssignment(broker_ids=a) for a in wanted[k].new_assignments or []
                    ],
                )
                for k in keys
            ],
            timeout_ms=t_ms,
            validate_only=validate_only,
        )

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        return per_unit(resp.results, lambda r: r.name, "create partitions of", answer=controller_answer)

    return engine.start("create_partitions", list(wanted), CONTROLLER, build, parse, now, timeout_ms)


def list_topics(engine: AdminEngine, *, now: float, timeout_ms: int | None = None) -> AdminOp:
    """All topic names (internal ones too, as kafka-python): result ``{None: [names]}``."""

    def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
        return {None: sorted(t.name for t in resp.topics if not t.error_code)}

    return _metadata_call(engine, "list_topics", [None], None, parse, now, timeout_ms)


def describe_topics(
    engine: AdminEngine, topics: Iterable[str] | None = None, *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """Metadata of ``topics``; one entry per topic, a dict in kafka-python's
    shape (``name``, ``topic_id``, ``is_internal``, ``partitions``). With
    ``topics=None``, one entry ``None: [dict per topic]`` (a topic the broker
    answered with an error appears as ``{"name", "error"}``)."""
    names = None if topics is None else list(dict.fromkeys(topics))

    def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for t in resp.topics:
            if t.error_code:
                out[t.name] = error_for(t.error_code, None, f"describe topic {t.name!r}")
            else:
                out[t.name] = _topic_dict(t)
        if names is None:  # the one "all topics" unit: every topic described, errors included
            return {None: [v if isinstance(v, dict) else {"name": k, "error": v} for k, v in out.items()]}
        return out

    keys: list[Any] = [None] if names is None else names
    return _metadata_call(engine, "describe_topics", keys, names, parse, now, timeout_ms)


def _metadata_call(
    engine: AdminEngine,
    name: str,
    keys: list[Any],
    topics: list[str] | None,
    parse: Callable[[Any, list[Any]], Mapping[Any, Any]],
    now: float,
    timeout_ms: int | None,
) -> AdminOp:
    return engine.start(
        name, keys, ANY, metadata_build(topics), metadata_checked(name, parse), now, timeout_ms
    )


def _creatable_topics(new_topics: Sequence[NewTopic | str] | Mapping[str, Mapping[str, Any]]) -> list[Any]:
    items: list[NewTopic] = []
    if isinstance(new_topics, Mapping):
        for name, spec in new_topics.items():
            items.append(
                NewTopic(
                    name,
                    spec.get("num_partitions", -1),
                    spec.get("replication_factor", -1),
                    spec.get("assignments"),
                    spec.get("configs"),
                )
            )
    else:
        for t in new_topics:
            items.append(NewTopic(t) if isinstance(t, str) else t)
    return [
        _ct.CreatableTopic(
            name=t.name,
            num_partitions=t.num_partitions,
            replication_factor=t.replication_factor,
            assignments=[
                _ct.CreatableReplicaAssignment(partition_index=p, broker_ids=r)
                for p, r in t.replica_assignments.items()
            ],
            configs=[_ct.CreatableTopicConfig(name=k, value=v) for k, v in t.topic_configs.items()],
        )
        for t in items
    ]


def _topic_dict(t: Any) -> dict[str, Any]:
    return {
        "name": t.name,
        "topic_id": t.topic_id if t.topic_id != uuid.UUID(int=0) else None,
        "is_internal": t.is_internal,
        "partitions": [
            {
                "partition_index": p.partition_index,
                "leader_id": p.leader_id,
                "leader_epoch": p.leader_epoch,
                "replica_nodes": list(p.replica_nodes),
                "isr_nodes": list(p.isr_nodes),
                "offline_replicas": list(p.offline_replicas),
                "error_code": p.error_code,
            }
            for p in sorted(t.partitions, key=lambda p: p.partition_index)
        ],
    }


def metadata_build(topics: list[str] | None) -> Build[_K]:
    """A Metadata request for ``topics`` (None: all), never creating them."""

    def build(_keys: list[Any], _t: int) -> Any:
        return MetadataRequest(
            topics=None if topics is None else [MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=False,
        )

    return build


def metadata_checked(name: str, parse: Parse[_K]) -> Parse[_K]:
    """``parse`` behind the Metadata v13+ top-level error (KIP-1102), which fails every unit."""

    def checked(resp: Any, keys: list[Any]) -> Mapping[Any, Any]:
        code = getattr(resp, "error_code", 0)
        if code:
            return dict.fromkeys(keys, retry_or_fail(code, None, name))
        return parse(resp, keys)

    return checked

"""The admin subcommands: ``topics``, ``describe``, ``groups``, ``lag``, ``create-topic``,
``delete-topic`` and ``config``, on :class:`transports.sync.KafkaAdminClient`.

The readers below accept the result shapes of kafka-python's admin client
(lists of names, dicts keyed by topic or group, results nested per broker or
per group) so that the commands print the same table whichever of those
shapes a method returns.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from typing import Any

from kproto.consumer import TopicPartition
from kproto.errors import (
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from kproto_cli.clients import check_reachable, make_client
from kproto_cli.errors import CliError, NotFound
from kproto_cli.options import parse_assignment, topic_command
from kproto_cli.render import table

# kproto.admin (and the admin client) are imported by the commands that use them:
# they load every admin message class, which ``kproto --help`` and produce/consume do not need.

__all__ = ["add_parsers"]

#: DescribeConfigs ``ConfigSource`` values (KIP-226), as kafka-configs.sh names them.
_CONFIG_SOURCES = {
    1: "dynamic-topic",
    2: "dynamic-broker",
    3: "dynamic-default-broker",
    4: "static-broker",
    5: "default",
    6: "dynamic-broker-logger",
    7: "dynamic-client-metrics",
    8: "dynamic-group",
}


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the admin subcommands to ``sub``."""
    p = sub.add_parser("topics", parents=[common], help="list topics")
    p.add_argument("-l", "--long", action="store_true", help="with partition counts and replication factors")
    p.add_argument("-a", "--all", action="store_true", help="internal topics (__consumer_offsets...) too")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=topics)

    p = topic_command(sub, common, "describe", "a topic's partitions, leaders and offsets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=describe)

    p = sub.add_parser("groups", parents=[common], help="list consumer groups")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=groups)

    p = sub.add_parser(
        "lag", parents=[common], help="a consumer group's committed offsets, end offsets and lag"
    )
    p.add_argument("group")
    p.add_argument("--topic", help="only this topic")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=lag)

    p = topic_command(sub, common, "create-topic", "create a topic")
    p.add_argument("-p", "--partitions", type=int, default=-1, help="partition count (default: the broker's)")
    p.add_argument(
        "-r", "--replication-factor", type=int, default=-1, help="replication factor (default: the broker's)"
    )
    p.add_argument(
        "-c", "--config", action="append", default=[], metavar="KEY=VALUE", help="a topic config (repeatable)"
    )
    p.add_argument("--if-not-exists", action="store_true", help="succeed if the topic exists already")
    p.add_argument("--validate-only", action="store_true", help="ask the broker to check, not create")
    p.set_defaults(run=create_topic)

    p = sub.add_parser("delete-topic", parents=[common], help="delete topics")
    p.add_argument("topics", nargs="+", metavar="topic")
    p.add_argument("--if-exists", action="store_true", help="succeed if a topic does not exist")
    p.set_defaults(run=delete_topic)

    p = sub.add_parser(
        "config",
        parents=[common],
        help="describe or alter a topic's or a broker's config",
        description="Without --set/--delete: print the configs (key, value, source). With them: "
        "change those keys only (IncrementalAlterConfigs, KIP-339).",
    )
    p.add_argument("type", choices=["topic", "broker"])
    p.add_argument("name", help="the topic name or the broker id")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set a key (repeatable)")
    p.add_argument(
        "--delete", action="append", default=[], metavar="KEY", help="reset a key to its default (repeatable)"
    )
    p.add_argument(
        "--overrides",
        action="store_true",
        help="only keys set on the resource itself (dynamic-topic; dynamic-* for a broker)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=config)


def _admin(config: dict[str, Any]) -> Any:
    from transports.sync import KafkaAdminClient

    check_reachable(config["bootstrap_servers"])
    return make_client(KafkaAdminClient, config, "admin client")


def _admin_for(args: argparse.Namespace, config: dict[str, Any]) -> Any:
    """The admin client, its calls bounded by ``-t`` unless ``-X default_api_timeout_ms`` says otherwise."""
    return _admin({"default_api_timeout_ms": int(args.timeout * 1000), **config})


def _dump(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


# --- result readers: kafka-python's shapes, flattened ---------------------------------


def _items(result: Any) -> Iterator[Any]:
    """The entries of a list, or the values of a dict (flattened one level when they are lists)."""
    if isinstance(result, Mapping):
        for value in result.values():
            if isinstance(value, list | tuple) and not (value and isinstance(value[0], str)):
                yield from value
            else:
                yield value
    else:
        yield from result


def _topic_descriptions(result: Any) -> list[dict[str, Any]]:
    out = []
    for t in _items(result):
        if isinstance(t, BaseException):
            raise t
        if t.get("error"):
            error = t["error"]
            raise error if isinstance(error, BaseException) else CliError(f"topic {t.get('name')!r}: {error}")
        out.append(t)
    return out


def _partition(p: Mapping[str, Any]) -> tuple[int, int, list[int], list[int]]:
    """``(partition, leader, replicas, isr)`` of a partition dict (kafka-python's or the older short keys)."""
    return (
        p.get("partition_index", p.get("partition")),
        p.get("leader_id", p.get("leader")),
        list(p.get("replica_nodes", p.get("replicas", []))),
        list(p.get("isr_nodes", p.get("isr", []))),
    )


def _offsets(admin: Any, tps: list[TopicPartition], latest: bool) -> dict[TopicPartition, int]:
    from kproto.admin import OffsetSpec

    spec = OffsetSpec.LATEST if latest else OffsetSpec.EARLIEST
    if not tps:
        return {}
    result = admin.list_offsets(dict.fromkeys(tps, spec))
    return {TopicPartition(tp.topic, tp.partition): getattr(v, "offset", v) for tp, v in result.items()}


# --- the commands -----------------------------------------------------------------------


def topics(args: argparse.Namespace, config: dict[str, Any]) -> int:
    admin = _admin_for(args, config)
    try:
        if args.long:
            found = {t["name"]: t for t in _topic_descriptions(admin.describe_topics())}
        else:
            found = dict.fromkeys(_items(admin.list_topics()), {})
    finally:
        admin.close()
    names = sorted(n for n in found if args.all or not n.startswith("__"))
    if not args.long:
        if args.json:
            _dump(names)
        else:
            for name in names:
                print(name)
        return 0
    rows = []
    for name in names:
        parts = found[name]["partitions"]
        rows.append((name, len(parts), len(_partition(parts[0])[2]) if parts else 0))
    if args.json:
        _dump([{"topic": n, "partitions": p, "replication_factor": r} for n, p, r in rows])
    else:
        print(table(("TOPIC", "PARTITIONS", "REPLICATION"), rows))
    return 0


def describe(args: argparse.Namespace, config: dict[str, Any]) -> int:
    admin = _admin_for(args, config)
    try:
        try:
            (found,) = _topic_descriptions(admin.describe_topics([args.topic]))
        except UnknownTopicOrPartitionError:
            raise NotFound(f"topic {args.topic!r} not found") from None
        parts = sorted(_partition(p) for p in found["partitions"])
        tps = [TopicPartition(args.topic, p[0]) for p in parts]
        starts = _offsets(admin, tps, latest=False)
        ends = _offsets(admin, tps, latest=True)
    finally:
        admin.close()
    rows = [
        (
            p,
            leader,
            ",".join(map(str, replicas)),
            ",".join(map(str, isr)),
            starts[tp],
            ends[tp],
            ends[tp] - starts[tp],
        )
        for (p, leader, replicas, isr), tp in zip(parts, tps, strict=True)
    ]
    if args.json:
        keys = ("partition", "leader", "replicas", "isr", "start", "end", "records")
        _dump(
            {
                "topic": args.topic,
                "topic_id": found.get("topic_id"),
                "partitions": [dict(zip(keys, r, strict=True)) for r in rows],
            }
        )
        return 0
    replication = len(parts[0][2]) if parts else 0
    print(
        f"topic {args.topic}: {len(parts)} partitions, replication {replication}, id {found.get('topic_id')}"
    )
    print(table(("PARTITION", "LEADER", "REPLICAS", "ISR", "START", "END", "RECORDS"), rows))
    return 0


def _group_rows(result: Any) -> list[tuple[str, str, str]]:
    rows = []
    for g in _items(result):
        if isinstance(g, Mapping):
            rows.append(
                (g.get("group_id", ""), g.get("group_state", g.get("state", "")), g.get("protocol_type", ""))
            )
        else:  # (group_id, protocol_type[, state])
            rows.append((g[0], g[2] if len(g) > 2 else "", g[1]))
    return sorted(set(rows))


def groups(args: argparse.Namespace, config: dict[str, Any]) -> int:
    admin = _admin_for(args, config)
    try:
        rows = _group_rows(admin.list_groups())
    finally:
        admin.close()
    if args.json:
        _dump([{"group": g, "state": s, "protocol_type": t} for g, s, t in rows])
    else:
        print(table(("GROUP", "STATE", "TYPE"), rows))
    return 0


def _committed(result: Any, group: str) -> dict[TopicPartition, int]:
    if isinstance(result, Mapping) and group in result and isinstance(result[group], Mapping):
        result = result[group]
    return {TopicPartition(tp.topic, tp.partition): getattr(om, "offset", om) for tp, om in result.items()}


def lag(args: argparse.Namespace, config: dict[str, Any]) -> int:
    admin = _admin_for(args, config)
    try:
        # The partitions are named (all of the topic's, or of every topic): OffsetFetch for
        # "all of the group's partitions" is what Tansu cannot answer (docs/admin.md).
        names = [args.topic] if args.topic else None
        try:
            tps = [
                TopicPartition(t["name"], _partition(p)[0])
                for t in _topic_descriptions(admin.describe_topics(names))
                if not t["name"].startswith("__")
                for p in t["partitions"]
            ]
        except UnknownTopicOrPartitionError:
            raise NotFound(f"topic {args.topic!r} not found") from None
        committed = (
            _committed(admin.list_consumer_group_offsets(args.group, partitions=tps), args.group)
            if tps
            else {}
        )
        if not committed:
            raise NotFound(
                f"group {args.group!r} has no committed offsets"
                + (f" for topic {args.topic!r}" if args.topic else "")
            )
        # Every partition of the topics the group has offsets on; one without a commit shows
        # "-" as kafka-consumer-groups.sh does (where it starts depends on auto_offset_reset).
        topics = {tp.topic for tp in committed}
        tps = sorted(tp for tp in tps if tp.topic in topics)
        ends = _offsets(admin, tps, latest=True)
    finally:
        admin.close()
    rows: list[tuple[str, int, int | None, int, int | None]] = []
    for tp in tps:
        at = committed.get(tp)
        rows.append((tp.topic, tp.partition, at, ends[tp], None if at is None else max(0, ends[tp] - at)))
    total = sum(r[4] or 0 for r in rows)
    if args.json:
        keys = ("topic", "partition", "committed", "end", "lag")
        _dump(
            {"group": args.group, "lag": total, "partitions": [dict(zip(keys, r, strict=True)) for r in rows]}
        )
    else:
        print(table(("TOPIC", "PARTITION", "COMMITTED", "END", "LAG"), rows))
        print(f"total lag {total:,}")
    return 0


def create_topic(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from kproto.admin import NewTopic

    configs = dict(parse_assignment(c, "-c config") for c in args.config)
    new = NewTopic(args.topic, args.partitions, args.replication_factor, topic_configs=configs)
    admin = _admin_for(args, config)
    try:
        admin.create_topics([new], validate_only=args.validate_only)
    except TopicAlreadyExistsError:
        if not args.if_not_exists:
            raise CliError(f"topic {args.topic!r} already exists") from None
        return 0
    finally:
        admin.close()
    print(f"{'validated' if args.validate_only else 'created'} topic {args.topic}")
    return 0


def delete_topic(args: argparse.Namespace, config: dict[str, Any]) -> int:
    admin = _admin_for(args, config)
    try:
        for name in args.topics:
            try:
                admin.delete_topics([name])
            except UnknownTopicOrPartitionError:
                if not args.if_exists:
                    raise NotFound(f"topic {name!r} not found") from None
                continue
            print(f"deleted topic {name}")
    finally:
        admin.close()
    return 0


def _config_entries(result: Any) -> dict[str, Mapping[str, Any]]:
    """The ``{key: {value, config_source, ...}}`` inside a describe_configs result, however nested."""
    node = result
    while (
        isinstance(node, Mapping)
        and node
        and not any(isinstance(v, Mapping) and "value" in v for v in node.values())
    ):
        (node,) = node.values() if len(node) == 1 else (None,)
    if isinstance(node, BaseException):
        raise node
    return dict(node or {})


def config(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from kproto.admin import AlterConfigOp, ConfigResource, ConfigResourceType

    rtype = ConfigResourceType.TOPIC if args.type == "topic" else ConfigResourceType.BROKER
    admin = _admin_for(args, config)
    try:
        if args.set or args.delete:
            changes: dict[str, object] = {
                k: (AlterConfigOp.SET, v) for k, v in (parse_assignment(s, "--set") for s in args.set)
            }
            changes.update({k: (AlterConfigOp.DELETE, None) for k in args.delete})
            admin.incremental_alter_configs([ConfigResource(rtype, args.name, changes)])
            print(f"altered {args.type} {args.name}: " + ", ".join(changes))
            return 0
        resource = ConfigResource(rtype, args.name)
        entries = _config_entries(admin.describe_configs([resource], config_filter="all"))
        if (
            not entries and rtype == ConfigResourceType.TOPIC
        ):  # some brokers answer an unknown topic with none
            _topic_descriptions(admin.describe_topics([args.name]))
    except UnknownTopicOrPartitionError:
        raise NotFound(f"topic {args.name!r} not found") from None
    finally:
        admin.close()
    rows = []
    for key in sorted(entries):
        e = entries[key]
        source = _CONFIG_SOURCES.get(int(e.get("config_source") or 0), str(e.get("config_source")))
        if args.overrides and not (
            source == "dynamic-topic" if args.type == "topic" else source.startswith("dynamic")
        ):
            continue
        value = "(sensitive)" if e.get("is_sensitive") else e.get("value")
        rows.append((key, value, source))
    if args.json:
        _dump({k: {"value": v, "source": s} for k, v, s in rows})
    else:
        print(table(("KEY", "VALUE", "SOURCE"), rows))
    return 0

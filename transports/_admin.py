"""``KafkaAdminClient``: what the three runtimes share.

:class:`AdminFacadeBase` checks the options and every call's arguments,
starts the operation on the sans-I/O :class:`~kproto.admin.AdminCore`, and
turns its per-resource answer into kafka-python's result shape (raising
kafka-python's errors where kafka-python raises). How an operation is waited
for is the runtime's: each facade implements :meth:`AdminFacadeBase._finish`,
which the blocking client runs to the end and the asyncio and trio clients
return as a coroutine (so their methods are awaited). docs/admin.md lists the
methods and their shapes.
"""

from __future__ import annotations

import difflib
import enum
import inspect
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from kproto.admin import (
    ACL,
    ACLFilter,
    AdminConfig,
    AdminCore,
    AdminOp,
    ConfigResource,
    ConfigResourceType,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.errors import (
    ElectionNotNeededError,
    IllegalArgumentError,
    IllegalStateError,
    KafkaError,
    NoError,
    UnknownBrokerError,
)
from transports._common import auth_failure, crashed_error, timeout_error
from transports._tls import SECURITY_OPTIONS, Security, client_security_kwargs, security_from_configs

__all__ = ["ADMIN_DRIVER", "AdminCall", "AdminFacadeBase", "OpGroup", "admin_option_names"]

log = logging.getLogger(__name__)

#: ClientConfig fields that are wiring, not user options (the facade sets them).
_INTERNAL = frozenset({"authenticator", "sasl_nonce_factory", "allow_auto_create_topics"})

#: Slack over an op's own deadline before the facade gives up on the driver: the
#: core fails every open resource with KafkaTimeoutError at the deadline itself.
_SLACK = 5.0

_NO_ID = uuid.UUID(int=0)

#: kafka-python's ``config_filter`` values and which config sources each keeps
#: (ConfigSource codes of DescribeConfigs v1+: 3, 4 and 5 are defaults and static).
_CONFIG_FILTERS: dict[str, Callable[[int], bool]] = {
    "all": lambda _s: True,
    "modified": lambda s: s not in (3, 4, 5),
    "default": lambda s: s in (3, 4, 5),
    "static": lambda s: s == 4,
}


def admin_option_names() -> list[str]:
    """Every keyword ``KafkaAdminClient(**configs)`` accepts."""
    core = [f.name for f in attrs.fields(AdminConfig) if f.name not in _INTERNAL]
    return sorted(set(core) | SECURITY_OPTIONS)


def _drop_events(events: object) -> None:
    """The admin drivers' sink: results come through the ops, events are only drained."""


def _crash_admin(core: Any, exc: BaseException, now: float) -> None:
    """An admin driver died of ``exc`` (a bug): log it, fail every open operation."""
    log.error("kproto admin driver crashed", exc_info=exc)
    try:
        core.close(now)
    except Exception:
        log.exception("closing the admin core after the crash failed")


#: How an event-loop driver treats the admin core (keyword arguments of the drivers).
ADMIN_DRIVER: dict[str, Any] = {"sink": _drop_events, "on_crash": _crash_admin, "what": "the admin client's driver"}


class OpGroup:
    """Several operations waited for as one (one per group in ``list_group_offsets``)."""

    def __init__(self, ops: list[AdminOp]) -> None:
        self.ops = ops
        self.name = ops[0].name
        self.deadline = max(op.deadline for op in ops)

    @property
    def done(self) -> bool:
        return all(op.done for op in self.ops)


@attrs.frozen
class AdminCall:
    """An operation (or a group of them) under way and how its answer becomes the call's result."""

    op: AdminOp | OpGroup
    shape: Callable[[Any], Any]

    @property
    def what(self) -> str:
        return self.op.name


# --- argument checks ---------------------------------------------------------


def _timeout(timeout_ms: Any, name: str = "timeout_ms") -> int | None:
    """A call's ``timeout_ms``; None or 0 mean the client's ``default_api_timeout_ms``
    (kafka-python also reads 0 as "the default")."""
    if timeout_ms is None:
        return None
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms < 0:
        raise IllegalArgumentError(f"{name} must be a number >= 0 or None, got {timeout_ms!r}")
    return int(timeout_ms) or None


def _names(value: Any, name: str, kinds: tuple[type, ...] = (str,)) -> list[Any]:
    """A list of names (strings), refusing a bare string (a classic mistake: ``'topic'`` iterates letters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise IllegalArgumentError(f"{name} must be a list, got {value!r}")
    out = list(value)
    for v in out:
        if not isinstance(v, kinds) or (isinstance(v, str) and not v):
            raise IllegalArgumentError(f"{name}: {v!r} is not a non-empty {' or '.join(t.__name__ for t in kinds)}")
    return out


def _typed(value: Any, name: str, cls: type | tuple[type, ...]) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise IllegalArgumentError(f"{name} must be a list, got {value!r}")
    out = list(value)
    for v in out:
        if not isinstance(v, cls):
            names = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
            raise IllegalArgumentError(f"{name}: {v!r} is not a {names}")
    return out


def _mapping(value: Any, name: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise IllegalArgumentError(f"{name} must be a dict, got {value!r}")
    return value


def _tp_key(value: Any, name: str) -> TopicPartition:
    """A TopicPartition, or a ``(topic, partition)`` pair as one."""
    if isinstance(value, TopicPartition):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int:
        return TopicPartition(value[0], value[1])
    raise IllegalArgumentError(f"{name}: expected a TopicPartition, got {value!r}")


def _partitions(value: Any, name: str) -> list[TopicPartition]:
    if isinstance(value, (str, TopicPartition)) or not isinstance(value, Iterable):
        raise IllegalArgumentError(f"{name} must be a list of TopicPartition, got {value!r}")
    return [_tp_key(tp, name) for tp in value]


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise IllegalArgumentError(f"{name} must be an int, got {value!r}")
    return value


# --- result shaping ----------------------------------------------------------


def _raise_first(op: AdminOp, ignore: tuple[type[KafkaError], ...] = ()) -> None:
    """Raise the call's error, else the first resource error not in ``ignore`` (kafka-python raises)."""
    if op.error is not None:
        raise op.error
    for err in op.errors.values():
        if not isinstance(err, ignore):
            raise err


def _code(err: KafkaError | None) -> int:
    if err is None:
        return 0
    if isinstance(err, UnknownBrokerError):
        return err.errno
    return int(getattr(err, "errno", -1))


def _entry(key: Any, op: AdminOp) -> dict[str, Any]:
    """One resource as a response row: ``error_code``/``error_message`` plus its value's fields."""
    err = op.errors.get(key)
    row: dict[str, Any] = {"error_code": _code(err), "error_message": str(err) if err is not None else None}
    value = op.results.get(key)
    if isinstance(value, dict):
        row.update(value)
    return row


def _rows(field: str, names: list[str], raise_errors: bool) -> Callable[[AdminOp], Any]:
    """The shape of a per-topic controller call: ``{field: [{"name", "error_code",
    "error_message", ...}]}`` in the order asked (``raise_errors``: the first failure raises)."""

    def shape(op: AdminOp) -> Any:
        if raise_errors:
            _raise_first(op)
        return {field: [{"name": n, **_entry(n, op)} for n in names]}

    return shape


def _value_or_error(op: AdminOp, raise_errors: bool) -> dict[Any, Any]:
    """``{resource: value}`` (raise_errors) or ``{resource: value | KafkaError}``."""
    if raise_errors:
        _raise_first(op)
    if op.error is not None:
        raise op.error
    out: dict[Any, Any] = dict(op.results)
    out.update(op.errors)
    return out


def _only(key: Any) -> Callable[[AdminOp], Any]:
    """The shape of a call about one resource ``key`` (a group): its value, or its error raised."""

    def shape(op: AdminOp) -> Any:
        _raise_first(op)
        return dict(op.results[key])

    return shape


def _single(op: AdminOp) -> Any:
    """The value of a call with one resource (keyed None), raising its error."""
    _raise_first(op)
    return op.results[None]


def _salted(alteration: Any) -> Any:
    """An upsertion with a salt: kproto's core draws no randomness, the facade gives it one (RFC 5802)."""
    if isinstance(alteration, UserScramCredentialUpsertion) and alteration.salt is None:
        alteration.salt = secrets.token_bytes(24)
    return alteration


class AdminFacadeBase:
    """Options, argument checks, operations and result shapes shared by every ``KafkaAdminClient``.

    Each public method starts its operation and hands it to :meth:`_finish`:
    the blocking facade returns the result, the async ones a coroutine.
    """

    _core: AdminCore

    def _setup(self, configs: dict[str, Any], clock: Callable[[], float], *, allow_async_provider: bool) -> None:
        names = admin_option_names()
        for key in configs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"unknown KafkaAdminClient option {key!r}{hint}")
        self._clock = clock
        self._closed = False
        self._security: Security | None = None
        core_kwargs = {k: v for k, v in configs.items() if k not in SECURITY_OPTIONS}
        if any(configs.get(n) is not None for n in SECURITY_OPTIONS):
            self._security = security_from_configs(configs, allow_async_provider=allow_async_provider)
            if self._security.protocol == "PLAINTEXT":
                self._security = None
        core_kwargs.update(client_security_kwargs(self._security))
        if self._security is not None:
            core_kwargs["security_protocol"] = self._security.protocol
        self.config = AdminConfig(**core_kwargs)
        self._core = AdminCore(self.config, now=clock())

    # --- the runtime's part -----------------------------------------------------

    def _finish(self, call: AdminCall) -> Any:
        """Wait for ``call`` and return ``call.shape(call.op)`` (async facades: a coroutine doing that)."""
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalStateError("the admin client is closed")
        crashed = getattr(getattr(self, "_driver", None), "crashed", None)
        if crashed is not None:
            raise crashed_error("the admin client's driver", crashed)

    def _fail_open(self) -> None:
        """Mark the client closed, fail what is still open and send the closes (not after a driver crash)."""
        self._closed = True
        driver = getattr(self, "_driver", None)
        if driver is not None and driver.crashed is None:
            self._core.close(self._clock())
            driver.pump()

    def _wait_budget(self, call: AdminCall) -> float:
        """Seconds the driver may run for ``call``: its deadline plus slack."""
        return max(0.0, call.op.deadline - self._clock()) + _SLACK

    def _done(self, call: AdminCall) -> Callable[[], bool]:
        """``done()`` for the driver's run_until: the op settled; raises an authentication failure at once."""
        client = self._core.client

        def done() -> bool:
            if call.op.done:
                return True
            failure = auth_failure(client)
            if failure is not None:
                raise failure
            return False

        return done

    def _result(self, call: AdminCall, finished: bool) -> Any:
        """The shaped result once the driver stopped for ``call``."""
        self._check_open()
        if not finished:
            raise timeout_error(self._core, f"{call.what} did not complete in time")
        return call.shape(call.op)

    def _start(self, make: Callable[[float], AdminOp], shape: Callable[[AdminOp], Any]) -> Any:
        self._check_open()
        return self._finish(AdminCall(make(self._clock()), shape))

    def _start_each(self, makes: list[Callable[[float], AdminOp]], shape: Callable[[OpGroup], Any]) -> Any:
        self._check_open()
        now = self._clock()
        return self._finish(AdminCall(OpGroup([make(now) for make in makes]), shape))

    # --- topics -------------------------------------------------------------------

    def create_topics(
        self,
        new_topics: Any,
        timeout_ms: int | None = None,
        validate_only: bool = False,
        raise_errors: bool = True,
    ) -> Any:
        """Create topics: a list of :class:`NewTopic` or names, or ``{name: {num_partitions,
        replication_factor, assignments, configs}}``. Returns ``{"topics": [{"name", "error_code",
        "error_message", "topic_id", "num_partitions", "replication_factor", "configs"}]}``;
        with ``raise_errors`` the first failed topic raises."""
        if isinstance(new_topics, Mapping):
            names = _names(list(new_topics), "new_topics")
        else:
            items = _typed(new_topics, "new_topics", (NewTopic, str))
            names = [t if isinstance(t, str) else t.name for t in items]
        if not names:
            raise IllegalArgumentError("new_topics must name at least one topic")
        t = _timeout(timeout_ms)

        return self._start(
            lambda now: self._core.create_topics(new_topics, now=now, timeout_ms=t, validate_only=bool(validate_only)),
            _rows("topics", names, raise_errors),
        )

    def delete_topics(self, topics: Any, timeout_ms: int | None = None, raise_errors: bool = True) -> Any:
        """Delete topics by name (or ``uuid.UUID`` id). Returns ``{"topics": [{"name", "topic_id",
        "error_code", "error_message"}]}``; with ``raise_errors`` the first failure raises."""
        keys = _names(topics, "topics", (str, uuid.UUID))
        t = _timeout(timeout_ms)

        def shape(op: AdminOp) -> Any:
            if raise_errors:
                _raise_first(op)
            rows = []
            for k in keys:
                row = {"name": k if isinstance(k, str) else None, "topic_id": k if isinstance(k, uuid.UUID) else None}
                row.update(_entry(k, op))
                if row["topic_id"] == _NO_ID:  # DeleteTopics before v6 has no ids
                    row["topic_id"] = None
                rows.append(row)
            return {"topics": rows}

        return self._start(lambda now: self._core.delete_topics(keys, now=now, timeout_ms=t), shape)

    def create_partitions(
        self,
        topic_partitions: Mapping[str, NewPartitions],
        timeout_ms: int | None = None,
        validate_only: bool = False,
        raise_errors: bool = True,
    ) -> Any:
        """Grow topics: ``{name: NewPartitions}``. Returns ``{"results": [{"name", "error_code",
        "error_message"}]}``; with ``raise_errors`` the first failure raises."""
        parts = dict(_mapping(topic_partitions, "topic_partitions"))
        _names(list(parts), "topic_partitions")
        _typed(list(parts.values()), "topic_partitions values", NewPartitions)
        t = _timeout(timeout_ms)

        return self._start(
            lambda now: self._core.create_partitions(parts, now=now, timeout_ms=t, validate_only=bool(validate_only)),
            _rows("results", list(parts), raise_errors),
        )

    def list_topics(self) -> Any:
        """Every topic name of the cluster (internal ones too, as kafka-python): a list."""
        return self._start(lambda now: self._core.list_topics(now=now), _single)

    def describe_topics(self, topics: Any = None) -> Any:
        """Metadata of ``topics`` (every topic when None): a list of dicts (``name``,
        ``topic_id``, ``is_internal``, ``partitions``...); a topic the broker does not
        know comes back with ``error_code`` and ``error``, as a Metadata row would."""
        if topics is None:
            return self._start(lambda now: self._core.describe_topics(None, now=now), _describe_all)
        names = _names(topics, "topics")

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            return [op.results[n] if n in op.results else {"name": n, **_entry(n, op), "error": op.errors[n]}
                    for n in names]

        return self._start(lambda now: self._core.describe_topics(names, now=now), shape)

    def describe_cluster(self) -> Any:
        """``{"cluster_id", "controller_id", "brokers": [{"broker_id", "host", "port", "rack", "is_fenced"}]}``."""
        return self._start(lambda now: self._core.describe_cluster(now=now), _single)

    # --- configs ------------------------------------------------------------------

    def describe_configs(
        self, config_resources: Any, include_synonyms: bool = False, config_filter: str = "modified"
    ) -> Any:
        """Configs of each resource: ``{type name lower-case: {resource name: {key: {value,
        read_only, config_source, is_sensitive, synonyms}}}}``. ``config_filter`` as
        kafka-python 3: ``'modified'`` (non-default values; the default), ``'all'``,
        ``'default'``, ``'static'``. A resource that failed maps to its KafkaError
        (kafka-python 3 leaves it empty); the others are unaffected."""
        resources = _typed(config_resources, "config_resources", ConfigResource)
        keep = _CONFIG_FILTERS.get(str(getattr(config_filter, "name", config_filter)).lower())
        if keep is None:
            raise IllegalArgumentError(
                f"config_filter={config_filter!r} is not allowed: one of {', '.join(_CONFIG_FILTERS)}"
            )
        kept = keep

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            out: dict[str, dict[str, Any]] = {}
            for (rtype, name), configs in op.results.items():
                out.setdefault(rtype.name.lower(), {})[name] = {
                    k: c for k, c in configs.items() if kept(c["config_source"])
                }
            for (rtype, name), err in op.errors.items():
                out.setdefault(rtype.name.lower(), {})[name] = err
            return out

        return self._start(
            lambda now: self._core.describe_configs(resources, now=now, include_synonyms=bool(include_synonyms)),
            shape,
        )

    def alter_configs(
        self,
        config_resources: Any,
        validate_only: bool = False,
        raise_on_unknown: bool = True,
        incremental: bool | None = None,
    ) -> Any:
        """Set configs: each resource's ``configs`` is ``{key: value | (AlterConfigOp, value)}``.

        As kafka-python 3.0, ``incremental=None`` (the default) and True use
        IncrementalAlterConfigs (KIP-339, brokers 2.3+): only the keys named
        change. ``incremental=False`` uses AlterConfigs, which resets every
        dynamic config of the resource not named (plain values only). Unknown
        keys are refused by the broker (INVALID_CONFIG), whatever
        ``raise_on_unknown`` says. Returns ``{type name: {resource name: None |
        KafkaError}}``: one bad resource fails only its own entry.
        """
        resources = _typed(config_resources, "config_resources", ConfigResource)
        for r in resources:
            _mapping(r.configs, f"configs of {r.name!r}")
        return self._start(
            lambda now: self._core.alter_configs(
                resources, now=now, validate_only=bool(validate_only), incremental=incremental is not False
            ),
            _by_config_type,
        )

    def incremental_alter_configs(self, config_resources: Any, validate_only: bool = False) -> Any:
        """:meth:`alter_configs` with ``incremental=True`` (IncrementalAlterConfigs, KIP-339)."""
        return self.alter_configs(config_resources, validate_only=validate_only, incremental=True)

    # --- groups ---------------------------------------------------------------------

    def list_consumer_groups(self, broker_ids: Any = None, states_filter: Any = None) -> Any:
        """Every group the cluster's brokers coordinate: ``[(group_id, protocol_type)]``
        (ListGroups on every broker; ``states_filter``, KIP-518, e.g. ``['Stable']``)."""
        states = [] if states_filter is None else _names(states_filter, "states_filter")
        wanted = None if broker_ids is None else set(_typed(broker_ids, "broker_ids", int))

        def shape(op: AdminOp) -> Any:
            _raise_first(op)
            seen: dict[str, tuple[str, str]] = {}
            for bid in sorted(op.results):
                if wanted is None or bid in wanted:
                    for gid, ptype, _state in op.results[bid]:
                        seen.setdefault(gid, (gid, ptype))
            return list(seen.values())

        return self._start(lambda now: self._core.list_consumer_groups(now=now, states=states), shape)

    def describe_consumer_groups(
        self, group_ids: Any, group_coordinator_id: int | None = None, include_authorized_operations: bool = False
    ) -> Any:
        """One dict per group (``group_id``, ``state``, ``protocol_type``, ``protocol``,
        ``members``, ``authorized_operations``), in the order asked; a group whose
        lookup failed raises. ``group_coordinator_id`` is accepted and unused (the
        core finds each coordinator)."""
        ids = _names(group_ids, "group_ids")

        def shape(op: AdminOp) -> Any:
            _raise_first(op)
            return [op.results[g] for g in ids]

        return self._start(
            lambda now: self._core.describe_consumer_groups(
                ids, now=now, include_authorized_operations=bool(include_authorized_operations)
            ),
            shape,
        )

    def list_consumer_group_offsets(
        self, group_id: str, group_coordinator_id: int | None = None, partitions: Any = None
    ) -> Any:
        """The group's committed offsets: ``{TopicPartition: OffsetAndMetadata}``
        (``partitions`` None: all; a partition without a committed offset is left out)."""
        gid = _names([group_id], "group_id")[0]
        tps = None if partitions is None else _partitions(partitions, "partitions")

        return self._start(lambda now: self._core.list_consumer_group_offsets(gid, tps, now=now), _only(gid))

    def alter_consumer_group_offsets(
        self, group_id: str, offsets: Mapping[Any, Any], group_coordinator_id: int | None = None
    ) -> Any:
        """Commit ``{TopicPartition: OffsetAndMetadata | offset}`` for an empty group:
        ``{TopicPartition: None | KafkaError}``; a group-level failure raises."""
        gid = _names([group_id], "group_id")[0]
        offs: dict[TopicPartition, OffsetAndMetadata | int] = {}
        for tp, om in _mapping(offsets, "offsets").items():
            if not isinstance(om, OffsetAndMetadata):
                _int(om, f"offsets[{tp!r}]")
            offs[_tp_key(tp, "offsets")] = om

        return self._start(lambda now: self._core.alter_consumer_group_offsets(gid, offs, now=now), _only(gid))

    def delete_consumer_group_offsets(
        self, group_id: str, partitions: Any, group_coordinator_id: int | None = None
    ) -> Any:
        """Drop the group's committed offsets of ``partitions`` (OffsetDelete, KIP-496):
        ``{TopicPartition: None | KafkaError}``; a group-level failure raises."""
        gid = _names([group_id], "group_id")[0]
        tps = _partitions(partitions, "partitions")

        return self._start(lambda now: self._core.delete_consumer_group_offsets(gid, tps, now=now), _only(gid))

    def delete_consumer_groups(self, group_ids: Any, group_coordinator_id: int | None = None) -> Any:
        """Delete groups: ``[(group_id, None | KafkaError)]`` in the order asked (each group its own entry)."""
        ids = _names(group_ids, "group_ids")

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            return [(g, op.errors.get(g)) for g in ids]

        return self._start(lambda now: self._core.delete_consumer_groups(ids, now=now), shape)

    # --- records and partitions -------------------------------------------------

    def delete_records(
        self,
        records_to_delete: Mapping[Any, int],
        timeout_ms: int | None = None,
        partition_leader_id: int | None = None,
        raise_errors: bool = True,
    ) -> Any:
        """Delete records before an offset (-1: the high watermark) per partition:
        ``{TopicPartition: {"low_watermark": n}}`` (``raise_errors=False``: a failed
        partition maps to its KafkaError)."""
        offs = {
            _tp_key(tp, "records_to_delete"): _int(o, f"records_to_delete[{tp!r}]")
            for tp, o in _mapping(records_to_delete, "records_to_delete").items()
        }
        t = _timeout(timeout_ms)
        return self._start(
            lambda now: self._core.delete_records(offs, now=now, timeout_ms=t),
            lambda op: _value_or_error(op, raise_errors),
        )

    def list_offsets(
        self,
        topic_partition_specs: Mapping[Any, Any],
        isolation_level: int | str = 0,
        timeout_ms: int | None = None,
        raise_errors: bool = True,
    ) -> Any:
        """ListOffsets per partition: ``{TopicPartition: OffsetSpec.LATEST | EARLIEST |
        MAX_TIMESTAMP | a timestamp in ms}`` -> ``{TopicPartition: ListOffsetsResultInfo(offset,
        timestamp, leader_epoch)}``. ``isolation_level``: 0/'read_uncommitted' or 1/'read_committed'."""
        specs: dict[TopicPartition, int] = {}
        for tp, spec in _mapping(topic_partition_specs, "topic_partition_specs").items():
            value = getattr(spec, "value", spec)
            _int(value, f"topic_partition_specs[{tp!r}]")
            if value < OffsetSpec.MAX_TIMESTAMP:
                raise IllegalArgumentError(
                    f"topic_partition_specs[{tp!r}]={spec!r} is not allowed: OffsetSpec.LATEST, "
                    "EARLIEST, MAX_TIMESTAMP or a timestamp >= 0"
                )
            specs[_tp_key(tp, "topic_partition_specs")] = value
        levels = {0: 0, 1: 1, "read_uncommitted": 0, "read_committed": 1}
        if isolation_level not in levels:
            raise IllegalArgumentError(
                f"isolation_level={isolation_level!r} is not allowed: 'read_uncommitted' (0) or 'read_committed' (1)"
            )
        iso = levels[isolation_level]
        t = _timeout(timeout_ms)
        return self._start(
            lambda now: self._core.list_offsets(specs, now=now, isolation_level=iso, timeout_ms=t),
            lambda op: _value_or_error(op, raise_errors),
        )

    def elect_leaders(
        self, election_type: int, topic_partitions: Any, timeout_ms: int | None = None, raise_errors: bool = True
    ) -> Any:
        """Elect leaders (0 preferred, 1 unclean; KIP-460): ``{TopicPartition: None |
        KafkaError}``. ELECTION_NOT_NEEDED never raises (kafka-python ignores it too)."""
        etype = _int(election_type, "election_type")
        if etype not in (0, 1):
            raise IllegalArgumentError(f"election_type={etype} is not allowed: 0 (preferred) or 1 (unclean)")
        tps = _partitions(topic_partitions, "topic_partitions")
        t = _timeout(timeout_ms)

        def shape(op: AdminOp) -> Any:
            if raise_errors:
                _raise_first(op, ignore=(ElectionNotNeededError,))
            return _value_or_error(op, False)

        return self._start(lambda now: self._core.elect_leaders(etype, tps, now=now, timeout_ms=t), shape)

    def describe_log_dirs(self, topic_partitions: Any = None, brokers: Any = None) -> Any:
        """Every broker's log dirs: ``{broker_id: {log_dir: {"total_bytes", "usable_bytes",
        "partitions": {TopicPartition: {"size", "offset_lag", "is_future"}}}}}``, kept to
        ``brokers`` and ``topic_partitions`` when given (every broker is asked all topics)."""
        tps = None if topic_partitions is None else set(_partitions(topic_partitions, "topic_partitions"))
        wanted = None if brokers is None else set(_typed(brokers, "brokers", int))

        def keep(dirs: dict[str, Any]) -> dict[str, Any]:
            if tps is None:
                return dirs
            return {
                d: v if isinstance(v, KafkaError) else {**v, "partitions": {
                    tp: p for tp, p in v["partitions"].items() if tp in tps
                }}
                for d, v in dirs.items()
            }

        def shape(op: AdminOp) -> Any:
            _raise_first(op)
            return {b: keep(d) for b, d in sorted(op.results.items()) if wanted is None or b in wanted}

        return self._start(lambda now: self._core.describe_log_dirs(now=now), shape)

    # --- ACLs and SCRAM -----------------------------------------------------------

    def describe_acls(self, acl_filter: ACLFilter) -> Any:
        """``(list of ACL, None)`` matching the filter; an error (no authorizer:
        SecurityDisabledError) raises, as kafka-python."""
        if not isinstance(acl_filter, ACLFilter):
            raise IllegalArgumentError(f"acl_filter must be an ACLFilter, got {acl_filter!r}")

        def shape(op: AdminOp) -> Any:
            _raise_first(op)
            return list(op.results[acl_filter]), None

        return self._start(lambda now: self._core.describe_acls(acl_filter, now=now), shape)

    def create_acls(self, acls: Any) -> Any:
        """Create ACLs: ``{"succeeded": [ACL], "failed": [(ACL, KafkaError)]}``."""
        items = _typed(acls, "acls", ACL)

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            return {
                "succeeded": [a for a in items if a in op.results],
                "failed": [(a, op.errors[a]) for a in items if a in op.errors],
            }

        return self._start(lambda now: self._core.create_acls(items, now=now), shape)

    def delete_acls(self, acl_filters: Any) -> Any:
        """Delete ACLs: ``[(ACLFilter, [ACL deleted], None | KafkaError)]`` per filter."""
        filters = _typed(acl_filters, "acl_filters", ACLFilter)

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            return [(f, list(op.results.get(f, [])), op.errors.get(f)) for f in filters]

        return self._start(lambda now: self._core.delete_acls(filters, now=now), shape)

    def describe_user_scram_credentials(self, users: Any = None) -> Any:
        """``{user: {"error": None | message, "credential_infos": [{"mechanism", "iterations"}]}}``
        (every user with credentials when ``users`` is None)."""
        names = None if users is None else _names(users, "users")

        def row(v: Any) -> dict[str, Any]:
            if isinstance(v, KafkaError):
                return {"error": str(v), "credential_infos": []}
            return {"error": None, "credential_infos": [{"mechanism": m, "iterations": i} for m, i in v]}

        def shape(op: AdminOp) -> Any:
            if names is None:
                return {u: row(v) for u, v in _single(op).items()}
            if op.error is not None:
                raise op.error
            return {u: row(op.results[u] if u in op.results else op.errors[u]) for u in names}

        return self._start(lambda now: self._core.describe_user_scram_credentials(names, now=now), shape)

    def alter_user_scram_credentials(self, alterations: Any) -> Any:
        """Upsert or delete SCRAM credentials (KIP-554; a salt is drawn from ``secrets``
        when an upsertion has none): ``{user: None | error message}``."""
        items = [
            _salted(a)
            for a in _typed(alterations, "alterations", (UserScramCredentialUpsertion, UserScramCredentialDeletion))
        ]

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            out: dict[str, str | None] = dict.fromkeys(op.results)
            out.update({u: str(e) for u, e in op.errors.items()})
            return out

        return self._start(lambda now: self._core.alter_user_scram_credentials(items, now=now), shape)

    # --- transactions -------------------------------------------------------------

    def list_transactions(
        self, broker_ids: Any = None, producer_id_filters: Any = None, state_filters: Any = None
    ) -> Any:
        """Open and recent transactions per broker (KIP-664): ``{broker_id:
        [(transactional_id, producer_id, state)]}``."""
        states = [] if state_filters is None else _names(state_filters, "state_filters")
        pids = [] if producer_id_filters is None else _typed(producer_id_filters, "producer_id_filters", int)
        wanted = None if broker_ids is None else set(_typed(broker_ids, "broker_ids", int))

        def shape(op: AdminOp) -> Any:
            _raise_first(op)
            return {b: v for b, v in sorted(op.results.items()) if wanted is None or b in wanted}

        return self._start(
            lambda now: self._core.list_transactions(now=now, state_filters=states, producer_id_filters=pids), shape
        )

    def describe_transactions(self, transactional_ids: Any) -> Any:
        """``{transactional_id: {"state", "timeout_ms", "start_time_ms", "producer_id",
        "producer_epoch", "partitions"}}``; an unknown id raises TransactionalIdNotFoundError."""
        ids = _names(transactional_ids, "transactional_ids")
        return self._start(
            lambda now: self._core.describe_transactions(ids, now=now), lambda op: _value_or_error(op, True)
        )

    def describe_producers(self, partitions: Any, broker_id: int | None = None) -> Any:
        """Active producers per partition (KIP-664): ``{TopicPartition: [{"producer_id",
        "producer_epoch", "last_sequence", "last_timestamp", "coordinator_epoch",
        "current_txn_start_offset"}]}``. ``broker_id`` is accepted and unused (the leader answers)."""
        tps = _partitions(partitions, "partitions")
        return self._start(
            lambda now: self._core.describe_producers(tps, now=now), lambda op: _value_or_error(op, True)
        )

    def fence_producers(self, transactional_ids: Any, timeout_ms: int | None = None) -> Any:
        """Fence the producers of each transactional id (KIP-618): ``{transactional_id:
        {"producer_id", "producer_epoch"}}``."""
        ids = _names(transactional_ids, "transactional_ids")
        t = _timeout(timeout_ms)
        return self._start(
            lambda now: self._core.fence_producers(ids, now=now, timeout_ms=t), lambda op: _value_or_error(op, True)
        )

    # --- kafka-python 3.0's names for the group and offset calls ------------------
    # kafka-python 3.0 renamed the 2.x group calls and changed their shapes; both
    # sets are here, each with its own release's shape.

    def list_groups(self, broker_ids: Any = None, states_filter: Any = None, types_filter: Any = None) -> Any:
        """kafka-python 3.0: ``[{"group_id", "protocol_type", "group_state"}]`` over every broker."""
        given = [] if states_filter is None else _names(states_filter, "states_filter", (str, enum.Enum))
        states = [str(getattr(s, "value", s)) for s in given]
        if types_filter is not None:
            raise IllegalArgumentError("types_filter is not supported (ListGroups v5, KIP-848): pass None")
        wanted = None if broker_ids is None else set(_typed(broker_ids, "broker_ids", int))

        def shape(op: AdminOp) -> Any:
            _raise_first(op)
            return [
                {"group_id": g, "protocol_type": p, "group_state": st}
                for bid in sorted(op.results)
                if wanted is None or bid in wanted
                for g, p, st in op.results[bid]
            ]

        return self._start(lambda now: self._core.list_consumer_groups(now=now, states=states), shape)

    def describe_groups(
        self, group_ids: Any, group_coordinator_id: int | None = None, include_authorized_operations: bool = False
    ) -> Any:
        """kafka-python 3.0: ``{group_id: {..., "error": None | message}}``."""
        ids = _names(group_ids, "group_ids")

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            return {
                g: {**op.results[g], "error": None} if g in op.results else {"group_id": g, "error": str(op.errors[g])}
                for g in ids
            }

        return self._start(
            lambda now: self._core.describe_consumer_groups(
                ids, now=now, include_authorized_operations=bool(include_authorized_operations)
            ),
            shape,
        )

    def list_group_offsets(self, group_specs: Any) -> Any:
        """kafka-python 3.0: ``{group_id: {TopicPartition: OffsetAndMetadata}}``; ``group_specs``
        maps a group to its partitions (None: all), or is a group id or a list of them."""
        if isinstance(group_specs, str):
            group_specs = {group_specs: None}
        elif not isinstance(group_specs, Mapping):
            group_specs = dict.fromkeys(_names(group_specs, "group_specs"))
        specs = {
            _names([g], "group_specs")[0]: None if tps is None else _partitions(tps, f"group_specs[{g!r}]")
            for g, tps in group_specs.items()
        }
        if not specs:
            raise IllegalArgumentError("group_specs must name at least one group")

        def make(g: str, tps: list[TopicPartition] | None) -> Callable[[float], AdminOp]:
            return lambda now: self._core.list_consumer_group_offsets(g, tps, now=now)

        def shape(group: OpGroup) -> Any:
            for op in group.ops:
                _raise_first(op)
            return {g: dict(op.results[g]) for g, op in zip(specs, group.ops, strict=True)}

        return self._start_each([make(g, tps) for g, tps in specs.items()], shape)

    def delete_groups(self, group_ids: Any, group_coordinator_id: int | None = None) -> Any:
        """kafka-python 3.0: ``{group_id: "OK" | error class name}``."""
        ids = _names(group_ids, "group_ids")

        def shape(op: AdminOp) -> Any:
            if op.error is not None:
                raise op.error
            return {g: type(op.errors[g]).__name__ if g in op.errors else "OK" for g in ids}

        return self._start(lambda now: self._core.delete_consumer_groups(ids, now=now), shape)

    def alter_group_offsets(
        self, group_id: str, offsets: Mapping[Any, Any], group_coordinator_id: int | None = None
    ) -> Any:
        """kafka-python 3.0: ``{TopicPartition: error class}`` (``NoError`` on success)."""
        return _error_classes(self.alter_consumer_group_offsets(group_id, offsets))

    def delete_group_offsets(self, group_id: str, partitions: Any, group_coordinator_id: int | None = None) -> Any:
        """kafka-python 3.0: ``{TopicPartition: error class}`` (``NoError`` on success)."""
        return _error_classes(self.delete_consumer_group_offsets(group_id, partitions))

    def list_partition_offsets(
        self, topic_partition_specs: Mapping[Any, Any], isolation_level: int | str = 0, timeout_ms: int | None = None
    ) -> Any:
        """kafka-python 3.0's name of :meth:`list_offsets`."""
        return self.list_offsets(topic_partition_specs, isolation_level, timeout_ms)


def _error_classes(result: Any) -> Any:
    """Turn ``{tp: None | KafkaError}`` into kafka-python 3.0's ``{tp: error class}``,
    on a result or on the coroutine an async facade returns."""

    def convert(d: dict[Any, Any]) -> dict[Any, Any]:
        return {k: NoError if v is None else type(v) for k, v in d.items()}

    if inspect.isawaitable(result):

        async def later() -> Any:
            return convert(await result)

        return later()
    return convert(result)


def _describe_all(op: AdminOp) -> Any:
    rows = _single(op)
    return [r if "error" not in r else {**r, "error_code": _code(r["error"])} for r in rows]


def _by_config_type(op: AdminOp) -> Any:
    if op.error is not None:
        raise op.error
    out: dict[str, dict[str, Any]] = {}
    for key in list(op.results) + list(op.errors):
        rtype, name = key
        out.setdefault(ConfigResourceType(rtype).name.lower(), {})[name] = op.errors.get(key)
    return out


"""The sans-I/O admin core: routes admin requests, retries, reports per resource.

Theory of operation
-------------------

:class:`AdminCore` is a :class:`kproto.driving.Driven` core wrapping a
:class:`kproto.client.Client`; a driver runs it exactly like the producer
and consumer cores. Each admin method (``create_topics``, ``describe_configs``,
...) returns an :class:`AdminOp` at once; the driver keeps driving until
``op.done``, then reads ``op.results`` (resource -> value) and ``op.errors``
(resource -> :class:`~kproto.errors.KafkaError`). One bad resource fails its
own entry only.

Every op is a set of *units* (a topic, a partition, a group, a config
resource, a broker). Each unit is routed as the Java ``Admin`` client routes
it (``KafkaAdminClient`` and its ``AdminApiDriver`` strategies):

- ``any``: the least-loaded broker (Metadata for list/describe topics and
  describe_cluster, DescribeConfigs/AlterConfigs of non-broker resources,
  ACLs, SCRAM credentials);
- ``controller``: the ``controller_id`` from Metadata (CreateTopics,
  DeleteTopics, CreatePartitions, ElectLeaders). A KRaft broker forwards
  these to the active controller itself and names a random broker as
  "controller" (KIP-590); like Java we still send there, and on
  NOT_CONTROLLER forget it, refresh metadata and retry;
- ``coordinator``: the coordinator FindCoordinator names for a group (group
  calls) or a transactional id (DescribeTransactions, fencing);
  NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE look it up again,
  COORDINATOR_LOAD_IN_PROGRESS retries the same one after the backoff; a
  lookup that fails for good fails that key's entries;
- ``leader``: the partition's leader from Metadata (DeleteRecords,
  ListOffsets, DescribeProducers), units grouped into one request per
  leader; a topic or partition the fresh metadata does not know fails its
  entries;
- ``broker``: a named broker (DescribeConfigs/AlterConfigs of a BROKER or
  BROKER_LOGGER resource), or every broker in the metadata, one unit each
  (ListGroups, DescribeLogDirs, ListTransactions: Java's AllBrokersStrategy).

Units bound for the same node go in one request. An answer settles each
unit: a value, a final error, or a retriable error (the unit waits
``retry_backoff_ms`` and is routed again, after the refresh that error calls
for). Each op has a deadline, ``default_api_timeout_ms`` unless the call
gives ``timeout_ms`` (Java's ``default.api.timeout.ms``); each request
waits at most ``min(request_timeout_ms, time left)``. At the deadline every
unit still open fails with :class:`~kproto.errors.KafkaTimeoutError`, its
``__cause__`` the last retriable error seen.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from kproto.admin.types import (
    ACL,
    ACLFilter,
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    ListOffsetsResultInfo,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourcePattern,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kproto.client import COORDINATOR_GROUP, COORDINATOR_TRANSACTION, Client, ClientConfig, _non_negative
from kproto.connection import ConnectionState
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.driving import Command
from kproto.errors import (
    AuthenticationFailedError,
    Cancelled,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    IllegalArgumentError,
    IllegalStateError,
    KafkaError,
    KafkaProtocolError,
    KafkaTimeoutError,
    NotControllerError,
    NotCoordinatorError,
    ThrottlingQuotaExceededError,
    UnknownTopicOrPartitionError,
    UnstableOffsetCommitError,
    UnsupportedVersionError,
    error_from_code,
)
from kproto.events import BootstrapFailed, CoordinatorLookupFailed
from kproto.protocol.messages import REQUEST_TYPES
from kproto.protocol.messages import alter_configs as _ac
from kproto.protocol.messages import alter_user_scram_credentials as _aus
from kproto.protocol.messages import create_acls as _cra
from kproto.protocol.messages import create_partitions as _cp
from kproto.protocol.messages import create_topics as _ct
from kproto.protocol.messages import delete_acls as _dla
from kproto.protocol.messages import delete_records as _dr
from kproto.protocol.messages import delete_topics as _dt
from kproto.protocol.messages import describe_acls as _dsa
from kproto.protocol.messages import describe_configs as _dc
from kproto.protocol.messages import describe_log_dirs as _dld
from kproto.protocol.messages import describe_producers as _dp
from kproto.protocol.messages import describe_transactions as _dtx
from kproto.protocol.messages import describe_user_scram_credentials as _dus
from kproto.protocol.messages import elect_leaders as _el
from kproto.protocol.messages import incremental_alter_configs as _iac
from kproto.protocol.messages import list_offsets as _lo
from kproto.protocol.messages import list_transactions as _lt
from kproto.protocol.messages import offset_commit as _oc
from kproto.protocol.messages import offset_delete as _od
from kproto.protocol.messages import offset_fetch as _of
from kproto.protocol.messages.delete_groups import DeleteGroupsRequest
from kproto.protocol.messages.describe_cluster import DescribeClusterRequest
from kproto.protocol.messages.describe_groups import DescribeGroupsRequest
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest
from kproto.protocol.messages.list_groups import ListGroupsRequest
from kproto.protocol.messages.metadata import MetadataRequest, MetadataRequestTopic

__all__ = ["AdminConfig", "AdminCore", "AdminOp"]

_INF = float("inf")


@attrs.frozen(kw_only=True)
class AdminConfig(ClientConfig):
    """Settings of the admin core: the client's, plus the per-call deadline.

    ``allow_auto_create_topics`` is ignored: admin Metadata requests never
    create topics (Java's admin client sends ``allowAutoTopicCreation=false``).
    """

    #: Deadline of an admin call that gives no ``timeout_ms`` (Java: default.api.timeout.ms).
    default_api_timeout_ms: int = attrs.field(default=60000, validator=_non_negative)


class AdminOp:
    """One admin call under way; drive the core until :attr:`done`.

    ``results`` maps each resource that succeeded to its value,
    ``errors`` each one that failed to its error; together they cover
    every resource the call named. ``error`` is set when the call as a
    whole could not be made (its resources then all carry it too).
    """

    __slots__ = ("name", "deadline", "results", "errors", "error", "_open")

    def __init__(self, name: str, deadline: float) -> None:
        #: The method that made it (``"create_topics"``...).
        self.name = name
        #: When unfinished resources fail with ``KafkaTimeoutError`` (driver clock).
        self.deadline = deadline
        #: Resource -> value, for the resources that succeeded.
        self.results: dict[Any, Any] = {}
        #: Resource -> error, for the resources that failed.
        self.errors: dict[Any, KafkaError] = {}
        #: A failure of the whole call (no resources, or closed), else None.
        self.error: KafkaError | None = None
        self._open = 0

    @property
    def done(self) -> bool:
        """True once every resource has a result or an error."""
        return self._open == 0

    def __repr__(self) -> str:
        state = "done" if self.done else f"{self._open} open"
        return f"<AdminOp {self.name} {state} ok={len(self.results)} failed={len(self.errors)}>"


class _Retry:
    """A unit's answer asks for another attempt (a retriable error)."""

    __slots__ = ("error",)

    def __init__(self, error: KafkaError) -> None:
        self.error = error


class _Unit:
    __slots__ = ("key", "not_before", "in_flight", "last_error")

    def __init__(self, key: Any, now: float) -> None:
        self.key = key
        self.not_before = now
        self.in_flight = False
        self.last_error: KafkaError | None = None


_Build = Callable[[list[Any], int], Any]
_Parse = Callable[[Any, list[Any]], Mapping[Any, Any]]

#: Routes (see the module docstring).
_ANY, _CONTROLLER, _COORDINATOR, _LEADER, _BROKER = "any", "controller", "coordinator", "leader", "broker"


class _Call:
    """The core's side of an :class:`AdminOp`: open units and how to serve them."""

    __slots__ = (
        "op",
        "key_type",
        "units",
        "route",
        "target",
        "build",
        "parse",
        "batch",
        "started_version",
        "needs_version",
        "fallback",
    )

    def __init__(
        self,
        op: AdminOp,
        route: str,
        target: Callable[[Any], Any],
        build: Callable[[list[Any], int], Any],
        parse: Callable[[Any, list[Any]], Mapping[Any, Any]],
        *,
        batch: bool,
        started_version: int,
        needs_version: tuple[int, int] | None,
        key_type: int = COORDINATOR_GROUP,
        fallback: tuple[_Build, _Parse] | None = None,
    ) -> None:
        self.op = op
        #: FindCoordinator KeyType for the coordinator route (group or transactional id).
        self.key_type = key_type
        self.units: dict[Any, _Unit] = {}
        self.route = route
        #: unit key -> what the route needs: a group id, a TopicPartition, a broker id.
        self.target = target
        #: ``build(keys, timeout_ms)`` -> the request for these units (one node).
        self.build = build
        #: ``parse(response, keys)`` -> key -> value | KafkaError | _Retry.
        self.parse = parse
        self.batch = batch
        #: Cluster metadata version when the call began: topic errors older than this are not trusted.
        self.started_version = started_version
        #: ``(api_key, lowest version)`` when older versions would mean something else.
        self.needs_version = needs_version
        #: ``(build, parse)`` to use instead on a node without that version (None: fail).
        self.fallback = fallback


def _error(code: int, message: str | None = None, what: str = "") -> KafkaError:
    return error_from_code(code, message or what or None)


def _retry_or_fail(code: int, message: str | None, what: str) -> Any:
    """A unit's answer for a nonzero code: retry when retriable (Java's
    ``RetriableException`` rule), else the final error."""
    err = _error(code, message, what)
    return _Retry(err) if err.retriable else err


def _controller_answer(code: int, message: str | None, what: str) -> Any:
    """CreateTopics/DeleteTopics/CreatePartitions per-topic errors: final, except
    NOT_CONTROLLER (Java's ``handleNotControllerError`` retries the call at the
    new controller) and THROTTLING_QUOTA_EXCEEDED (KIP-599: Java retries it by
    default, ``retry.on.quota.violation``)."""
    err = _error(code, message, what)
    if isinstance(err, NotControllerError | ThrottlingQuotaExceededError):
        return _Retry(err)
    return err


class AdminCore:
    """The admin core (see the module docstring): a :class:`~kproto.driving.Driven`.

    Args:
        config: Settings.
        now: The driver's clock now, in seconds.
        rng: Randomness of the client (reconnect jitter, least-loaded start); seed it to replay.
        client: A client to use instead of a new one (tests, simulations).
    """

    def __init__(
        self,
        config: AdminConfig | None = None,
        *,
        now: float,
        rng: random.Random | None = None,
        client: Client | None = None,
    ) -> None:
        cfg = config if config is not None else AdminConfig()
        if cfg.allow_auto_create_topics:
            cfg = attrs.evolve(cfg, allow_auto_create_topics=False)
        self.config = cfg
        #: Draws SCRAM salts left unset (and feeds the client's jitter when it builds one).
        self._rng = rng if rng is not None else random.Random()
        self._client = client if client is not None else Client(cfg, now=now, rng=self._rng)
        self._now = now
        self._calls: list[_Call] = []
        self._events: list[object] = []
        #: Metadata version whose controller_id answered NOT_CONTROLLER (not used again).
        self._stale_controller_version = -1
        #: Topics the leader-routed calls made the client track: topic -> open units.
        self._topic_refs: dict[str, int] = {}
        #: Ops sent to every broker, waiting for the broker list: (op, build, parse).
        self._pending_brokers_ops: list[tuple[AdminOp, _Build, _Parse]] = []

    # --- the driving surface (delegated to the client, then settled here) -------------

    def connection_made(self, node_id: int, now: float) -> None:
        """A connection the core asked for is open."""
        self._now = now
        self._client.connection_made(node_id, now)
        self._after_input(now)

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        """A connection failed or closed."""
        self._now = now
        self._client.connection_lost(node_id, exc, now)
        self._after_input(now)

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        """Bytes arrived from ``node_id``."""
        self._now = now
        self._client.receive_data(node_id, data, now)
        self._after_input(now)

    def handle_timer(self, now: float) -> None:
        """Run what is due: the client's timers, retries, op deadlines."""
        self._now = now
        self._client.handle_timer(now)
        self._after_input(now)

    def commands(self) -> list[Command]:
        """Connections to open or close, oldest first (drains)."""
        return self._client.commands()

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """Bytes to write per node (drains)."""
        return self._client.data_to_send()

    def get_timer(self) -> float | None:
        """The earliest of the client's deadline, a unit's retry time and an op's deadline."""
        t = self._client.get_timer()
        best = _INF if t is None else t
        now = self._now
        for call in self._calls:
            if call.op.deadline < best:
                best = call.op.deadline
            for unit in call.units.values():
                # A unit due but waiting for a lookup needs no timer: the
                # lookup's answer is an input, and every input routes again.
                if not unit.in_flight and now < unit.not_before < best:
                    best = unit.not_before
        for op, _build, _parse in self._pending_brokers_ops:
            if op.deadline < best:
                best = op.deadline
        return None if best == _INF else max(best, now)

    def events(self) -> list[object]:
        """The client's events (:mod:`kproto.events`), oldest first (drains)."""
        evs, self._events = self._events, []
        return evs

    @property
    def client(self) -> Client:
        """The cluster client underneath (metadata, connection state)."""
        return self._client

    def close(self, now: float) -> None:
        """Fail every open resource with ``Cancelled`` and close the client (and its connections)."""
        self._now = now
        self._fail_all(Cancelled("the admin client is closing"))
        self._calls.clear()
        self._client.close(now)

    # --- topics ---------------------------------------------------------------------

    def create_topics(
        self,
        new_topics: Sequence[NewTopic | str] | Mapping[str, Mapping[str, Any]],
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
        as the broker reports them (v5+; -1/None before).
        """
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
                    out[r.name] = _controller_answer(
                        r.error_code, r.error_message, f"create topic {r.name!r}"
                    )
                else:
                    out[r.name] = {
                        "name": r.name,
                        "topic_id": r.topic_id if r.topic_id != uuid.UUID(int=0) else None,
                        "num_partitions": r.num_partitions,
                        "replication_factor": r.replication_factor,
                        "configs": {c.name: c.value for c in (r.configs or [])},
                    }
            return out

        return self._start("create_topics", list(by_name), _CONTROLLER, build, parse, now, timeout_ms)

    def delete_topics(
        self, topics: Iterable[str | uuid.UUID], *, now: float, timeout_ms: int | None = None
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
                    out[key] = _controller_answer(r.error_code, r.error_message, f"delete topic {key!s}")
                else:
                    out[key] = {"name": r.name, "topic_id": r.topic_id}
            return out

        return self._start(
            "delete_topics",
            keys,
            _CONTROLLER,
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
        self,
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
                            _cp.CreatePartitionsAssignment(broker_ids=a)
                            for a in wanted[k].new_assignments or []
                        ],
                    )
                    for k in keys
                ],
                timeout_ms=t_ms,
                validate_only=validate_only,
            )

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            return {
                r.name: _controller_answer(r.error_code, r.error_message, f"create partitions of {r.name!r}")
                if r.error_code
                else None
                for r in resp.results
            }

        return self._start("create_partitions", list(wanted), _CONTROLLER, build, parse, now, timeout_ms)

    def list_topics(self, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """All topic names (internal ones too, as kafka-python): result ``{None: [names]}``."""

        def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
            return {None: sorted(t.name for t in resp.topics if not t.error_code)}

        return self._metadata_call("list_topics", [None], None, parse, now, timeout_ms)

    def describe_topics(
        self, topics: Iterable[str] | None = None, *, now: float, timeout_ms: int | None = None
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
                    out[t.name] = _error(t.error_code, None, f"describe topic {t.name!r}")
                else:
                    out[t.name] = _topic_dict(t)
            if names is None:  # the one "all topics" unit: every topic described, errors included
                return {None: [v if isinstance(v, dict) else {"name": k, "error": v} for k, v in out.items()]}
            return out

        keys: list[Any] = [None] if names is None else names
        return self._metadata_call("describe_topics", keys, names, parse, now, timeout_ms)

    def describe_cluster(self, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """DescribeCluster (KIP-700) at any broker, or Metadata without topics where
        the broker lacks it (Java and kafka-python 3 do the same). Result ``{None:
        {"cluster_id", "controller_id", "brokers": [{"broker_id", "host", "port",
        "rack", "is_fenced"}]}}``."""

        def build(_keys: list[Any], _t: int) -> Any:
            return DescribeClusterRequest()

        def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
            if resp.error_code:
                return {None: _retry_or_fail(resp.error_code, resp.error_message, "describe cluster")}
            brokers = [(b.broker_id, b.host, b.port, b.rack, b.is_fenced) for b in resp.brokers]
            return {None: _cluster_dict(resp.cluster_id, resp.controller_id, brokers)}

        def metadata_parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
            brokers = [(b.node_id, b.host, b.port, b.rack, False) for b in resp.brokers]
            return {None: _cluster_dict(resp.cluster_id, resp.controller_id, brokers)}

        op = self._new_op("describe_cluster", now, timeout_ms)
        self._add_call(
            op,
            [None],
            _ANY,
            build,
            parse,
            now,
            needs_version=(DescribeClusterRequest.API_KEY, 0),
            fallback=(_metadata_build([]), _metadata_checked("describe_cluster", metadata_parse)),
        )
        return self._finish_start(op, now)

    def _metadata_call(
        self,
        name: str,
        keys: list[Any],
        topics: list[str] | None,
        parse: Callable[[Any, list[Any]], Mapping[Any, Any]],
        now: float,
        timeout_ms: int | None,
    ) -> AdminOp:
        return self._start(
            name, keys, _ANY, _metadata_build(topics), _metadata_checked(name, parse), now, timeout_ms
        )

    # --- configs --------------------------------------------------------------------

    def describe_configs(
        self,
        config_resources: Iterable[ConfigResource],
        *,
        now: float,
        include_synonyms: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """DescribeConfigs; a BROKER/BROKER_LOGGER resource goes to that broker
        (Java: only it knows its static configs), others to any broker. Result per
        ``(type, name)``: ``{key: {value, read_only, config_source, is_sensitive, synonyms}}``."""
        resources = {r.key: r for r in config_resources}

        def build(keys: list[Any], _t: int) -> Any:
            return _dc.DescribeConfigsRequest(
                resources=[
                    _dc.DescribeConfigsResource(
                        resource_type=int(t),
                        resource_name=n,
                        configuration_keys=_config_keys(resources[(t, n)].configs),
                    )
                    for t, n in keys
                ],
                include_synonyms=include_synonyms,
            )

        def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for r in resp.results:
                key = (ConfigResourceType(r.resource_type), r.resource_name)
                if r.error_code:
                    # Final, as Java's describeConfigs: a resource error completes
                    # that resource (only call-level failures are retried).
                    out[key] = _error(r.error_code, r.error_message, f"describe configs of {key[1]!r}")
                    continue
                out[key] = {
                    c.name: {
                        "value": c.value,
                        "read_only": c.read_only,
                        "config_source": c.config_source,
                        "is_sensitive": c.is_sensitive,
                        "synonyms": [(s.name, s.value, s.source) for s in c.synonyms],
                    }
                    for c in r.configs
                }
            return out

        return self._config_call("describe_configs", resources, build, parse, now, timeout_ms)

    def alter_configs(
        self,
        config_resources: Iterable[ConfigResource],
        *,
        now: float,
        validate_only: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """AlterConfigs (replaces every dynamic config of each resource); value None per success."""
        resources = {r.key: r for r in config_resources}
        items = {k: _config_items(r) for k, r in resources.items()}  # bad input fails here, not mid-send

        def build(keys: list[Any], _t: int) -> Any:
            return _ac.AlterConfigsRequest(
                resources=[
                    _ac.AlterConfigsResource(
                        resource_type=int(t),
                        resource_name=n,
                        configs=[
                            _ac.AlterableConfig(name=k, value=None if v is None else str(v))
                            for k, v in items[(t, n)]
                        ],
                    )
                    for t, n in keys
                ],
                validate_only=validate_only,
            )

        return self._config_call("alter_configs", resources, build, _parse_alter_configs, now, timeout_ms)

    def incremental_alter_configs(
        self,
        config_resources: Iterable[ConfigResource],
        *,
        now: float,
        validate_only: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """IncrementalAlterConfigs (KIP-339); each resource's ``configs`` maps a key
        to ``(AlterConfigOp, value)`` or to a value (SET). Value None per success."""
        resources = {r.key: r for r in config_resources}
        items = {k: _config_items(r) for k, r in resources.items()}

        def build(keys: list[Any], _t: int) -> Any:
            out = []
            for t, n in keys:
                configs = []
                for k, v in items[(t, n)]:
                    op, value = v if isinstance(v, tuple) else (AlterConfigOp.SET, v)
                    configs.append(
                        _iac.AlterableConfig(
                            name=k, config_operation=int(op), value=None if value is None else str(value)
                        )
                    )
                out.append(_iac.AlterConfigsResource(resource_type=int(t), resource_name=n, configs=configs))
            return _iac.IncrementalAlterConfigsRequest(resources=out, validate_only=validate_only)

        return self._config_call(
            "incremental_alter_configs", resources, build, _parse_alter_configs, now, timeout_ms
        )

    def _config_call(
        self,
        name: str,
        resources: dict[Any, ConfigResource],
        build: Callable[[list[Any], int], Any],
        parse: Callable[[Any, list[Any]], Mapping[Any, Any]],
        now: float,
        timeout_ms: int | None,
    ) -> AdminOp:
        broker_keys = [
            k for k in resources if k[0] in (ConfigResourceType.BROKER, ConfigResourceType.BROKER_LOGGER)
        ]
        for t, n in broker_keys:
            if not n.isdigit():
                raise IllegalArgumentError(f"a {t.name} config resource is named by a broker id, got {n!r}")
        other = [k for k in resources if k not in broker_keys]
        # One op, two routes: broker resources to their broker, others anywhere
        # (Java's describeConfigs/incrementalAlterConfigs split the same way).
        op = self._new_op(name, now, timeout_ms)
        if broker_keys:
            self._add_call(op, broker_keys, _BROKER, build, parse, now, target=lambda k: int(k[1]))
        if other:
            self._add_call(op, other, _ANY, build, parse, now)
        return self._finish_start(op, now)

    # --- consumer groups ------------------------------------------------------------

    def list_consumer_groups(
        self, *, now: float, states: Iterable[str] = (), timeout_ms: int | None = None
    ) -> AdminOp:
        """ListGroups on every broker, as Java does (each broker lists the groups it
        coordinates). One entry per broker id: ``[(group_id, protocol_type, state)]``."""
        states_filter = list(states)

        def build(keys: list[int], _t: int) -> Any:
            return ListGroupsRequest(states_filter=states_filter)

        def parse(resp: Any, keys: list[int]) -> dict[int, Any]:
            if resp.error_code:
                return {keys[0]: _retry_or_fail(resp.error_code, None, f"list groups on broker {keys[0]}")}
            return {keys[0]: [(g.group_id, g.protocol_type, g.group_state) for g in resp.groups]}

        return self._every_broker("list_consumer_groups", build, parse, now, timeout_ms)

    def _every_broker(
        self, name: str, build: _Build, parse: _Parse, now: float, timeout_ms: int | None
    ) -> AdminOp:
        """An op with one unit per broker (Java's AllBrokersStrategy); the units
        are added in :meth:`_pump` once metadata names the brokers."""
        op = self._new_op(name, now, timeout_ms)
        op._open += 1  # "brokers not known yet"
        self._pending_brokers_ops.append((op, build, parse))
        self._client.request_metadata_update(now)
        self._after_input(now)
        return op

    def describe_consumer_groups(
        self,
        group_ids: Iterable[str],
        *,
        now: float,
        include_authorized_operations: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """DescribeGroups at each group's coordinator; one entry per group, a dict
        (``group_id``, ``state``, ``protocol_type``, ``protocol``, ``members``)."""

        def build(keys: list[str], _t: int) -> Any:
            return DescribeGroupsRequest(
                groups=keys, include_authorized_operations=include_authorized_operations
            )

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for g in resp.groups:
                if g.error_code:
                    out[g.group_id] = _retry_or_fail(
                        g.error_code, g.error_message, f"describe group {g.group_id!r}"
                    )
                    continue
                out[g.group_id] = {
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
            return out

        keys = list(dict.fromkeys(group_ids))
        return self._start(
            "describe_consumer_groups", keys, _COORDINATOR, build, parse, now, timeout_ms, target=lambda k: k
        )

    def list_consumer_group_offsets(
        self,
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
                    _of.OffsetFetchRequestTopic(name=t, partition_indexes=p)
                    for t, p in _by_topic(parts).items()
                ]
            return _of.OffsetFetchRequest(group_id=keys[0], topics=topics, require_stable=require_stable)

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            g = keys[0]
            if resp.error_code:
                return {g: _retry_or_fail(resp.error_code, None, f"fetch offsets of group {g!r}")}
            offsets: dict[TopicPartition, OffsetAndMetadata] = {}
            for t in resp.topics:
                for p in t.partitions:
                    if p.error_code:
                        if p.error_code in _OFFSET_FETCH_RETRY:  # pending transactional offsets, a move
                            return {g: _Retry(_error(p.error_code, None, f"offsets of group {g!r}"))}
                        continue  # Java's ListConsumerGroupOffsetsHandler leaves such a partition out
                    if p.committed_offset >= 0:
                        offsets[TopicPartition(t.name, p.partition_index)] = OffsetAndMetadata(
                            p.committed_offset, p.metadata or "", p.committed_leader_epoch
                        )
            return {g: offsets}

        return self._start(
            "list_consumer_group_offsets",
            [group_id],
            _COORDINATOR,
            build,
            parse,
            now,
            timeout_ms,
            target=lambda k: k,
        )

    def alter_consumer_group_offsets(
        self,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata | int],
        *,
        now: float,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """OffsetCommit as a simple (non-member) commit at the coordinator; the group
        must be empty. Result ``{group_id: {TopicPartition: None | KafkaError}}``."""
        wanted = {
            tp: o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(int(o))
            for tp, o in offsets.items()
        }

        def build(keys: list[str], _t: int) -> Any:
            by_topic = _by_topic(
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
                topics=[_oc.OffsetCommitRequestTopic(name=t, partitions=p) for t, p in by_topic.items()],
            )

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            return {keys[0]: _partition_results(resp.topics, keys[0])}

        return self._start(
            "alter_consumer_group_offsets",
            [group_id],
            _COORDINATOR,
            build,
            parse,
            now,
            timeout_ms,
            target=lambda k: k,
        )

    def delete_consumer_group_offsets(
        self,
        group_id: str,
        partitions: Iterable[TopicPartition],
        *,
        now: float,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """OffsetDelete (KIP-496) at the coordinator: ``{group_id: {TopicPartition: None | KafkaError}}``."""
        parts = list(partitions)

        def build(keys: list[str], _t: int) -> Any:
            by_topic = _by_topic(
                parts, lambda tp: _od.OffsetDeleteRequestPartition(partition_index=tp.partition)
            )
            return _od.OffsetDeleteRequest(
                group_id=keys[0],
                topics=[_od.OffsetDeleteRequestTopic(name=t, partitions=p) for t, p in by_topic.items()],
            )

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            g = keys[0]
            if resp.error_code:
                return {g: _retry_or_fail(resp.error_code, None, f"delete offsets of group {g!r}")}
            return {g: _partition_results(resp.topics, g)}

        return self._start(
            "delete_consumer_group_offsets",
            [group_id],
            _COORDINATOR,
            build,
            parse,
            now,
            timeout_ms,
            target=lambda k: k,
        )

    def delete_consumer_groups(
        self, group_ids: Iterable[str], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DeleteGroups at each group's coordinator; value None per deleted group."""

        def build(keys: list[str], _t: int) -> Any:
            return DeleteGroupsRequest(groups_names=keys)

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            return {
                r.group_id: _retry_or_fail(r.error_code, None, f"delete group {r.group_id!r}")
                if r.error_code
                else None
                for r in resp.results
            }

        keys = list(dict.fromkeys(group_ids))
        return self._start(
            "delete_consumer_groups", keys, _COORDINATOR, build, parse, now, timeout_ms, target=lambda k: k
        )

    # --- partitions -----------------------------------------------------------------

    def delete_records(
        self, offsets: Mapping[TopicPartition, int], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DeleteRecords at each partition's leader (one request per leader); value
        ``{"low_watermark": n}`` per partition. Offset -1 deletes up to the high watermark."""
        before = dict(offsets)

        def build(keys: list[TopicPartition], t_ms: int) -> Any:
            by_topic = _by_topic(
                keys, lambda tp: _dr.DeleteRecordsPartition(partition_index=tp.partition, offset=before[tp])
            )
            return _dr.DeleteRecordsRequest(
                topics=[_dr.DeleteRecordsTopic(name=t, partitions=p) for t, p in by_topic.items()],
                timeout_ms=t_ms,
            )

        def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
            return _per_partition(resp.topics, "delete records", lambda p: {"low_watermark": p.low_watermark})

        return self._start(
            "delete_records", list(before), _LEADER, build, parse, now, timeout_ms, target=lambda k: k
        )

    def list_offsets(
        self,
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
            by_topic = _by_topic(
                keys, lambda tp: _lo.ListOffsetsPartition(partition_index=tp.partition, timestamp=wanted[tp])
            )
            return _lo.ListOffsetsRequest(
                replica_id=-1,
                isolation_level=isolation_level,
                topics=[_lo.ListOffsetsTopic(name=t, partitions=p) for t, p in by_topic.items()],
                timeout_ms=t_ms,
            )

        def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
            return _per_partition(
                resp.topics,
                "list offsets",
                lambda p: ListOffsetsResultInfo(p.offset, p.timestamp, p.leader_epoch),
            )

        # MAX_TIMESTAMP (KIP-734) exists from ListOffsets v7; an older broker would
        # read -3 as a timestamp. Java fails such a call with UnsupportedVersionException.
        needs = (_lo.ListOffsetsRequest.API_KEY, 7) if OffsetSpec.MAX_TIMESTAMP in wanted.values() else None
        return self._start(
            "list_offsets", list(wanted), _LEADER, build, parse, now, timeout_ms, needs_version=needs
        )

    def elect_leaders(
        self,
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
                topic_partitions=[
                    _el.TopicPartitions(topic=t, partitions=p) for t, p in _by_topic(keys).items()
                ],
                timeout_ms=t_ms,
            )

        def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
            if resp.error_code:
                return {k: _controller_answer(resp.error_code, None, "elect leaders") for k in keys}
            out: dict[TopicPartition, Any] = {}
            for r in resp.replica_election_results:
                for p in r.partition_result:
                    tp = TopicPartition(r.topic, p.partition_id)
                    out[tp] = (
                        _controller_answer(
                            p.error_code, p.error_message, f"elect leader of {r.topic}-{p.partition_id}"
                        )
                        if p.error_code
                        else None
                    )
            return out

        return self._start("elect_leaders", parts, _CONTROLLER, build, parse, now, timeout_ms)

    # --- ACLs -----------------------------------------------------------------------

    def describe_acls(self, acl_filter: ACLFilter, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """DescribeAcls at any broker: result ``{acl_filter: [ACL]}`` (an error entry
        such as SecurityDisabledError when the cluster has no authorizer)."""
        f = acl_filter

        def build(_keys: list[Any], _t: int) -> Any:
            return _dsa.DescribeAclsRequest(**_acl_filter_fields(f))

        def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
            if resp.error_code:
                return {f: _error(resp.error_code, resp.error_message, "describe ACLs")}
            return {
                f: [
                    _acl(a, r.resource_type, r.resource_name, r.pattern_type)
                    for r in resp.resources
                    for a in r.acls
                ]
            }

        return self._start("describe_acls", [f], _ANY, build, parse, now, timeout_ms)

    def create_acls(self, acls: Iterable[ACL], *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """CreateAcls at any broker; value None per ACL created (results come back in request order)."""
        wanted = list(dict.fromkeys(acls))
        for acl in wanted:
            if not isinstance(acl, ACL):
                raise IllegalArgumentError(f"create_acls takes ACL objects, got {acl!r}")

        def build(keys: list[ACL], _t: int) -> Any:
            return _cra.CreateAclsRequest(
                creations=[
                    _cra.AclCreation(
                        resource_type=int(a.resource_pattern.resource_type),
                        resource_name=a.resource_pattern.resource_name,
                        resource_pattern_type=int(a.resource_pattern.pattern_type),
                        principal=a.principal,
                        host=a.host,
                        operation=int(a.operation),
                        permission_type=int(a.permission_type),
                    )
                    for a in keys
                ]
            )

        def parse(resp: Any, keys: list[ACL]) -> dict[ACL, Any]:
            return {
                k: _error(r.error_code, r.error_message, f"create ACL {k}") if r.error_code else None
                for k, r in zip(keys, resp.results, strict=False)
            }

        return self._start("create_acls", wanted, _ANY, build, parse, now, timeout_ms)

    def delete_acls(
        self, acl_filters: Iterable[ACLFilter], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DeleteAcls at any broker; per filter, the ACLs it deleted (``[ACL]``) or its error."""
        filters = list(dict.fromkeys(acl_filters))

        def build(keys: list[ACLFilter], _t: int) -> Any:
            return _dla.DeleteAclsRequest(
                filters=[_dla.DeleteAclsFilter(**_acl_filter_fields(f)) for f in keys]
            )

        def parse(resp: Any, keys: list[ACLFilter]) -> dict[ACLFilter, Any]:
            out: dict[ACLFilter, Any] = {}
            for k, r in zip(keys, resp.filter_results, strict=False):
                if r.error_code:
                    out[k] = _error(r.error_code, r.error_message, "delete ACLs")
                    continue
                out[k] = [
                    _acl(m, m.resource_type, m.resource_name, m.pattern_type)
                    for m in r.matching_acls
                    if not m.error_code
                ]
            return out

        return self._start("delete_acls", filters, _ANY, build, parse, now, timeout_ms)

    # --- brokers, transactions, producers ---------------------------------------------

    def describe_log_dirs(self, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """DescribeLogDirs (all topics) on every broker; per broker id,
        ``{log_dir: {"total_bytes", "usable_bytes", "partitions": {TopicPartition:
        {"size", "offset_lag", "is_future"}}}}``; a failed log dir maps to its error."""

        def build(_keys: list[int], _t: int) -> Any:
            return _dld.DescribeLogDirsRequest(topics=None)

        def parse(resp: Any, keys: list[int]) -> dict[int, Any]:
            if resp.error_code:
                return {
                    keys[0]: _retry_or_fail(resp.error_code, None, f"describe log dirs of broker {keys[0]}")
                }
            dirs: dict[str, Any] = {}
            for d in resp.results:
                if d.error_code:
                    dirs[d.log_dir] = _error(d.error_code, None, d.log_dir)
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

        return self._every_broker("describe_log_dirs", build, parse, now, timeout_ms)

    def list_transactions(
        self,
        *,
        now: float,
        state_filters: Iterable[str] = (),
        producer_id_filters: Iterable[int] = (),
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """ListTransactions (KIP-664) on every broker; per broker id,
        ``[(transactional_id, producer_id, state)]``."""
        states, pids = list(state_filters), list(producer_id_filters)

        def build(_keys: list[int], _t: int) -> Any:
            return _lt.ListTransactionsRequest(state_filters=states, producer_id_filters=pids)

        def parse(resp: Any, keys: list[int]) -> dict[int, Any]:
            if resp.error_code:
                return {
                    keys[0]: _retry_or_fail(resp.error_code, None, f"list transactions on broker {keys[0]}")
                }
            return {
                keys[0]: [
                    (t.transactional_id, t.producer_id, t.transaction_state) for t in resp.transaction_states
                ]
            }

        return self._every_broker("list_transactions", build, parse, now, timeout_ms)

    def describe_transactions(
        self, transactional_ids: Iterable[str], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DescribeTransactions (KIP-664) at each id's transaction coordinator; a dict per id."""

        def build(keys: list[str], _t: int) -> Any:
            return _dtx.DescribeTransactionsRequest(transactional_ids=keys)

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for t in resp.transaction_states:
                if t.error_code:
                    out[t.transactional_id] = _retry_or_fail(
                        t.error_code, None, f"describe {t.transactional_id!r}"
                    )
                    continue
                out[t.transactional_id] = {
                    "state": t.transaction_state,
                    "timeout_ms": t.transaction_timeout_ms,
                    "start_time_ms": t.transaction_start_time_ms,
                    "producer_id": t.producer_id,
                    "producer_epoch": t.producer_epoch,
                    "partitions": sorted(TopicPartition(d.topic, p) for d in t.topics for p in d.partitions),
                }
            return out

        keys = list(dict.fromkeys(transactional_ids))
        return self._start(
            "describe_transactions",
            keys,
            _COORDINATOR,
            build,
            parse,
            now,
            timeout_ms,
            key_type=COORDINATOR_TRANSACTION,
        )

    def fence_producers(
        self,
        transactional_ids: Iterable[str],
        *,
        now: float,
        transaction_timeout_ms: int = 60000,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """Fence each transactional id's producers (KIP-618): InitProducerId at its
        coordinator bumps the epoch, as Java's ``fenceProducers``. Value per id:
        ``{"producer_id", "producer_epoch"}``."""

        def build(keys: list[str], _t: int) -> Any:
            return InitProducerIdRequest(
                transactional_id=keys[0],
                transaction_timeout_ms=transaction_timeout_ms,
                producer_id=-1,
                producer_epoch=-1,
            )

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            if resp.error_code:
                return {keys[0]: _retry_or_fail(resp.error_code, None, f"fence {keys[0]!r}")}
            return {keys[0]: {"producer_id": resp.producer_id, "producer_epoch": resp.producer_epoch}}

        keys = list(dict.fromkeys(transactional_ids))
        return self._start(
            "fence_producers",
            keys,
            _COORDINATOR,
            build,
            parse,
            now,
            timeout_ms,
            key_type=COORDINATOR_TRANSACTION,
            batch=False,
        )

    def describe_producers(
        self, partitions: Iterable[TopicPartition], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DescribeProducers (KIP-664) at each partition's leader; per partition, a list
        of ``{"producer_id", "producer_epoch", "last_sequence", "last_timestamp",
        "coordinator_epoch", "current_txn_start_offset"}``."""
        parts = list(dict.fromkeys(partitions))

        def build(keys: list[TopicPartition], _t: int) -> Any:
            return _dp.DescribeProducersRequest(
                topics=[_dp.TopicRequest(name=t, partition_indexes=p) for t, p in _by_topic(keys).items()]
            )

        def producers(p: Any) -> list[dict[str, int]]:
            return [
                {
                    "producer_id": s.producer_id,
                    "producer_epoch": s.producer_epoch,
                    "last_sequence": s.last_sequence,
                    "last_timestamp": s.last_timestamp,
                    "coordinator_epoch": s.coordinator_epoch,
                    "current_txn_start_offset": s.current_txn_start_offset,
                }
                for s in p.active_producers
            ]

        def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
            return _per_partition(resp.topics, "describe producers", producers)

        return self._start("describe_producers", parts, _LEADER, build, parse, now, timeout_ms)

    # --- SCRAM credentials (KIP-554) ---------------------------------------------------

    def describe_user_scram_credentials(
        self, users: Iterable[str] | None = None, *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DescribeUserScramCredentials at any broker; per user, ``[(ScramMechanism,
        iterations)]``. With ``users=None`` one entry ``None: {user: [...]}`` for all."""
        names = None if users is None else list(dict.fromkeys(users))

        def build(keys: list[Any], _t: int) -> Any:
            return _dus.DescribeUserScramCredentialsRequest(
                users=None if names is None else [_dus.UserName(name=k) for k in keys]
            )

        def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
            if resp.error_code:
                err = _error(resp.error_code, resp.error_message, "describe SCRAM credentials")
                return dict.fromkeys(keys, err)
            found: dict[Any, Any] = {}
            for r in resp.results:
                found[r.user] = (
                    _error(r.error_code, r.error_message, f"SCRAM credentials of {r.user!r}")
                    if r.error_code
                    else [(ScramMechanism(c.mechanism), c.iterations) for c in r.credential_infos]
                )
            if names is None:
                return {None: {u: v for u, v in found.items() if not isinstance(v, KafkaError)}}
            return found

        keys: list[Any] = [None] if names is None else names
        return self._start("describe_user_scram_credentials", keys, _ANY, build, parse, now, timeout_ms)

    def alter_user_scram_credentials(
        self,
        alterations: Iterable[UserScramCredentialUpsertion | UserScramCredentialDeletion],
        *,
        now: float,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """AlterUserScramCredentials at any broker (it forwards to the controller,
        KIP-590); value None per user altered."""
        deletions: list[Any] = []
        upsertions: list[Any] = []
        users: list[str] = []
        for alt in alterations:
            if isinstance(alt, UserScramCredentialDeletion):
                deletions.append(_aus.ScramCredentialDeletion(name=alt.user, mechanism=int(alt.mechanism)))
            elif isinstance(alt, UserScramCredentialUpsertion):
                salt = alt.salt if alt.salt is not None else self._rng.randbytes(24)
                upsertions.append(
                    _aus.ScramCredentialUpsertion(
                        name=alt.user,
                        mechanism=int(alt.mechanism),
                        iterations=alt.iterations,
                        salt=salt,
                        salted_password=alt.salted_password(salt),
                    )
                )
            else:
                raise IllegalArgumentError(
                    f"alterations take UserScramCredentialUpsertion/Deletion objects, got {alt!r}"
                )
            users.append(alt.user)

        def build(keys: list[str], _t: int) -> Any:
            return _aus.AlterUserScramCredentialsRequest(
                deletions=[d for d in deletions if d.name in keys],
                upsertions=[u for u in upsertions if u.name in keys],
            )

        def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
            return {
                r.user: _error(r.error_code, r.error_message, f"alter SCRAM credentials of {r.user!r}")
                if r.error_code
                else None
                for r in resp.results
            }

        return self._start(
            "alter_user_scram_credentials", list(dict.fromkeys(users)), _ANY, build, parse, now, timeout_ms
        )

    # --- the machinery --------------------------------------------------------------

    def _new_op(self, name: str, now: float, timeout_ms: int | None) -> AdminOp:
        if self._client.closed:
            raise IllegalStateError("the admin client is closed")
        if timeout_ms is not None and timeout_ms < 0:
            raise IllegalArgumentError(f"timeout_ms must be >= 0, got {timeout_ms}")
        self._now = now
        t = self.config.default_api_timeout_ms if timeout_ms is None else timeout_ms
        return AdminOp(name, now + t / 1000)

    def _start(
        self,
        name: str,
        keys: list[Any],
        route: str,
        build: Callable[[list[Any], int], Any],
        parse: Callable[[Any, list[Any]], Mapping[Any, Any]],
        now: float,
        timeout_ms: int | None,
        *,
        target: Callable[[Any], Any] = lambda k: k,
        needs_version: tuple[int, int] | None = None,
        key_type: int = COORDINATOR_GROUP,
        batch: bool = True,
    ) -> AdminOp:
        op = self._new_op(name, now, timeout_ms)
        self._add_call(
            op,
            keys,
            route,
            build,
            parse,
            now,
            target=target,
            needs_version=needs_version,
            key_type=key_type,
            batch=batch,
        )
        return self._finish_start(op, now)

    def _add_call(
        self,
        op: AdminOp,
        keys: list[Any],
        route: str,
        build: Callable[[list[Any], int], Any],
        parse: Callable[[Any, list[Any]], Mapping[Any, Any]],
        now: float,
        *,
        target: Callable[[Any], Any] = lambda k: k,
        batch: bool = True,
        needs_version: tuple[int, int] | None = None,
        key_type: int = COORDINATOR_GROUP,
        fallback: tuple[_Build, _Parse] | None = None,
    ) -> None:
        call = _Call(
            op,
            route,
            target,
            build,
            parse,
            batch=batch,
            started_version=self._client.cluster.version,
            needs_version=needs_version,
            key_type=key_type,
            fallback=fallback,
        )
        for key in keys:
            if key in call.units:
                continue
            call.units[key] = _Unit(key, now)
            op._open += 1
            if route == _LEADER:
                topic = target(key).topic
                self._topic_refs[topic] = self._topic_refs.get(topic, 0) + 1
        if route == _LEADER and call.units:
            # Fresh leaders for these topics, as Java's admin fetches metadata per call.
            self._client.add_topics({target(k).topic for k in call.units}, now)
            self._client.request_metadata_update(now)
        if call.units:
            self._calls.append(call)

    def _finish_start(self, op: AdminOp, now: float) -> AdminOp:
        if op._open == 0 and not op.results and not op.errors:
            op.error = IllegalArgumentError(f"{op.name}: no resources given")
        self._after_input(now)
        return op

    def _after_input(self, now: float) -> None:
        self._now = now
        for ev in self._client.events():
            if isinstance(ev, CoordinatorLookupFailed):
                self._fail_coordinator_key(ev.key_type, ev.key, ev.error)
            elif isinstance(ev, BootstrapFailed) and isinstance(ev.error, AuthenticationFailedError):
                # Wrong credentials will not fix themselves: fail every open call now
                # (Java's admin fails its calls with the AuthenticationException).
                self._fail_all(ev.error)
            self._events.append(ev)
        # Callbacks from the client may have settled units; route what is open.
        self._pump(now)

    def _fail_all(self, error: KafkaError) -> None:
        for call in list(self._calls):
            for key in list(call.units):
                self._settle(call, key, error)
        for op, _build, _parse in self._pending_brokers_ops:
            op._open -= 1
            op.error = error
        self._pending_brokers_ops.clear()

    def _fail_coordinator_key(self, key_type: int, coordinator_key: str, error: KafkaError) -> None:
        """A lookup failed for good (e.g. GROUP_AUTHORIZATION_FAILED): fail the units waiting on it."""
        for call in list(self._calls):
            if call.route != _COORDINATOR or call.key_type != key_type:
                continue
            for key in [
                k for k, u in call.units.items() if call.target(k) == coordinator_key and not u.in_flight
            ]:
                self._settle(call, key, error)

    def _pump(self, now: float) -> bool:
        """Expire ops, then send every unit that is due and routable. True if anything was sent."""
        if self._client.closed:
            return False
        pending = self._pending_brokers_ops
        brokers = sorted(self._client.cluster.brokers)
        for entry in list(pending):
            op, build, parse = entry
            if now >= op.deadline:
                pending.remove(entry)
                op._open -= 1
                op.error = KafkaTimeoutError(f"{op.name}: no broker list within the deadline")
            elif brokers:
                pending.remove(entry)
                op._open -= 1
                self._add_call(op, brokers, _BROKER, build, parse, now, batch=False)
        sent = False
        for call in list(self._calls):
            op = call.op
            if now >= op.deadline:
                for key, unit in list(call.units.items()):
                    # The cause: this unit's last retriable error, else why the client
                    # could not reach a broker at all (a refused connection...).
                    cause = unit.last_error or self._client.last_error
                    err = KafkaTimeoutError(
                        f"{op.name}: {key!r} not done within the deadline"
                        + (f" (last error: {cause})" if cause is not None else "")
                    )
                    err.__cause__ = cause
                    self._settle(call, key, err)
                continue
            groups: dict[int, list[Any]] = {}
            for key, unit in list(call.units.items()):
                if unit.in_flight or unit.not_before > now:
                    continue
                node = self._route(call, key, now)
                if isinstance(node, KafkaError):
                    self._settle(call, key, node)
                elif node is not None:
                    groups.setdefault(node, []).append(key)
            for node_id, keys in groups.items():
                if call.needs_version is not None and not self._version_ok(call, node_id, keys, now):
                    continue
                chunks = [keys] if call.batch else [[k] for k in keys]
                for chunk in chunks:
                    self._send(call, node_id, chunk, now)
                    sent = True
        self._calls = [c for c in self._calls if c.units]
        return sent

    def _route(self, call: _Call, key: Any, now: float) -> int | KafkaError | None:
        """The node for ``key`` now, an error that settles it, or None (wait for a lookup)."""
        client = self._client
        route = call.route
        if route == _ANY:
            return client.least_loaded_node(now)
        cluster = client.cluster
        if route == _CONTROLLER:
            cid = cluster.controller_id
            if cid < 0 or cluster.version <= self._stale_controller_version or cluster.broker(cid) is None:
                client.request_metadata_update(now)
                return None
            return cid
        target = call.target(key)
        if route == _COORDINATOR:
            return client.coordinator(target, call.key_type, now)
        if route == _BROKER:
            if cluster.broker(target) is None:
                client.request_metadata_update(now)
                return None
            return int(target)
        # _LEADER
        leader = cluster.leader_for(target.topic, target.partition)
        if leader is not None and leader >= 0:
            return leader
        if cluster.version > call.started_version:
            # Metadata answered after the call began: an unknown topic or
            # partition fails its own entry (Java's deleteRecords/listOffsets
            # complete that partition's future with the metadata error).
            err = cluster.topic_error(target.topic)
            parts = cluster.partitions_for(target.topic)
            if isinstance(err, UnknownTopicOrPartitionError) or (
                parts is not None and target.partition not in parts
            ):
                return UnknownTopicOrPartitionError(f"{target.topic}-{target.partition}")
            if err is not None and not err.retriable:
                return err
        client.request_metadata_update(now)
        return None

    def _version_ok(self, call: _Call, node_id: int, keys: list[Any], now: float) -> bool:
        """True when ``node_id`` speaks the version ``call`` needs. Before its
        handshake: connect and wait (the handshake's end is an input that routes
        again); a broker below the version fails the units (Java: an
        UnsupportedVersionException for that call)."""
        assert call.needs_version is not None
        api_key, lowest = call.needs_version
        client = self._client
        if client.connection_state(node_id) is not ConnectionState.READY:
            try:
                client.ensure_connected(node_id, now)
            except IllegalArgumentError:  # gone from the metadata meanwhile: route again later
                client.request_metadata_update(now)
            return False
        version = client.api_version(node_id, api_key)
        if (version is None or version < lowest) and call.fallback is not None:
            call.build, call.parse = call.fallback  # e.g. Metadata for DescribeCluster (pre-2.8 brokers)
            call.needs_version = call.fallback = None
            return True
        if version is None or version < lowest:
            err = UnsupportedVersionError(
                f"{call.op.name} needs {REQUEST_TYPES[api_key].__name__} v{lowest}+; "
                f"node {node_id} speaks {'none' if version is None else f'up to v{version}'}"
            )
            for key in keys:
                self._settle(call, key, err)
            return False
        return True

    def _send(self, call: _Call, node_id: int, keys: list[Any], now: float) -> None:
        left_ms = max(0, int((call.op.deadline - now) * 1000))
        req_ms = min(self.config.request_timeout_ms, left_ms)
        for k in keys:
            call.units[k].in_flight = True
        self._client.send(
            call.build(keys, req_ms),
            now=now,
            node_id=node_id,
            callback=functools.partial(self._on_response, call, keys, node_id),
            timeout_ms=req_ms,
        )

    def _on_response(
        self, call: _Call, keys: list[Any], node_id: int, response: Any, error: KafkaError | None
    ) -> None:
        now = self._now  # callbacks run inside a driving call, which set it
        if error is not None:
            answers: Mapping[Any, Any] = {k: _Retry(error) if error.retriable else error for k in keys}
        else:
            try:
                answers = call.parse(response, keys)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a response we cannot read
                answers = {k: KafkaProtocolError(f"unreadable {call.op.name} answer: {exc}") for k in keys}
        for key in keys:
            unit = call.units.get(key)
            if unit is None:
                continue  # settled meanwhile (deadline)
            unit.in_flight = False
            if key not in answers:
                # Java: a resource the response leaves out fails ("did not
                # include a result"), rather than waiting for the deadline.
                self._settle(
                    call, key, KafkaProtocolError(f"{call.op.name}: the broker did not answer for {key!r}")
                )
                continue
            answer = answers[key]
            if isinstance(answer, _Retry):
                self._retry(call, unit, answer.error, node_id, now)
            else:
                self._settle(call, key, answer)

    def _retry(self, call: _Call, unit: _Unit, error: KafkaError, node_id: int, now: float) -> None:
        """Back off and invalidate what the error says is stale (Java's handleRetriableError)."""
        unit.last_error = error
        unit.not_before = now + self.config.retry_backoff_ms / 1000
        client = self._client
        if isinstance(error, NotControllerError):
            self._stale_controller_version = client.cluster.version
            client.request_metadata_update(now)
        elif call.route == _COORDINATOR and isinstance(
            error, NotCoordinatorError | CoordinatorNotAvailableError
        ):
            client.mark_coordinator_dead(call.target(unit.key), call.key_type, now)
        elif error.refresh_metadata:
            client.request_metadata_update(now)

    def _settle(self, call: _Call, key: Any, answer: Any) -> None:
        unit = call.units.pop(key, None)
        if unit is None:
            return
        op = call.op
        op._open -= 1
        if isinstance(answer, KafkaError):
            op.errors[key] = answer
        else:
            op.results[key] = answer
        if call.route == _LEADER:
            topic = call.target(key).topic
            n = self._topic_refs.get(topic, 0) - 1
            if n <= 0:
                self._topic_refs.pop(topic, None)
                self._client.remove_topics([topic], self._now)
            else:
                self._topic_refs[topic] = n


def _metadata_build(topics: list[str] | None) -> _Build:
    """A Metadata request for ``topics`` (None: all), never creating them."""

    def build(_keys: list[Any], _t: int) -> Any:
        return MetadataRequest(
            topics=None if topics is None else [MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=False,
        )

    return build


def _metadata_checked(name: str, parse: _Parse) -> _Parse:
    """``parse`` behind the Metadata v13+ top-level error (KIP-1102), which fails every unit."""

    def checked(resp: Any, keys: list[Any]) -> Mapping[Any, Any]:
        code = getattr(resp, "error_code", 0)
        if code:
            return dict.fromkeys(keys, _retry_or_fail(code, None, name))
        return parse(resp, keys)

    return checked


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


def _by_topic(
    partitions: Iterable[TopicPartition], entry: Callable[[TopicPartition], Any] = lambda tp: tp.partition
) -> dict[str, list[Any]]:
    """``{topic: [entry(tp)...]}`` in first-seen order: the per-topic layout of most requests."""
    out: dict[str, list[Any]] = {}
    for tp in partitions:
        out.setdefault(tp.topic, []).append(entry(tp))
    return out


def _per_partition(topics: Any, what: str, value: Callable[[Any], Any]) -> dict[TopicPartition, Any]:
    """Per partition of a leader's answer: ``value(p)``, or its error (retried when retriable)."""
    out: dict[TopicPartition, Any] = {}
    for t in topics:
        for p in t.partitions:
            tp = TopicPartition(t.name, p.partition_index)
            code = p.error_code
            out[tp] = (
                _retry_or_fail(
                    code, getattr(p, "error_message", None), f"{what} of {tp.topic}-{tp.partition}"
                )
                if code
                else value(p)
            )
    return out


def _acl_filter_fields(f: ACLFilter) -> dict[str, Any]:
    """An ACL filter as the fields DescribeAcls and DeleteAcls share."""
    pattern = f.resource_pattern
    return {
        "resource_type_filter": int(pattern.resource_type),
        "resource_name_filter": pattern.resource_name,
        "pattern_type_filter": int(pattern.pattern_type),
        "principal_filter": f.principal,
        "host_filter": f.host,
        "operation": int(f.operation),
        "permission_type": int(f.permission_type),
    }


def _acl(entry: Any, resource_type: int, resource_name: str, pattern_type: int) -> ACL:
    """An :class:`ACL` from a DescribeAcls/DeleteAcls answer (unknown enum values raise ValueError)."""
    return ACL(
        entry.principal,
        entry.host,
        entry.operation,
        entry.permission_type,
        ResourcePattern(resource_type, resource_name, pattern_type),
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


def _config_keys(configs: Mapping[str, object] | Sequence[str] | None) -> list[str] | None:
    if configs is None:
        return None
    return list(configs.keys()) if isinstance(configs, Mapping) else list(configs)


def _config_items(resource: ConfigResource) -> list[tuple[str, Any]]:
    configs = resource.configs
    if not isinstance(configs, Mapping):
        raise IllegalArgumentError(f"{resource!r}: altering configs needs configs={{key: value}}")
    return list(configs.items())


def _parse_alter_configs(resp: Any, keys: list[Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for r in resp.responses:
        key = (ConfigResourceType(r.resource_type), r.resource_name)
        out[key] = (
            _error(r.error_code, r.error_message, f"alter configs of {key[1]!r}") if r.error_code else None
        )
    return out


_COORDINATOR_CODES = (
    NotCoordinatorError.errno,
    CoordinatorNotAvailableError.errno,
    CoordinatorLoadInProgressError.errno,
)


#: OffsetFetch partition errors that retry the group: UNSTABLE_OFFSET_COMMIT (KIP-447) and
#: the coordinator moving; any other leaves that partition out of the answer.
_OFFSET_FETCH_RETRY = (*_COORDINATOR_CODES, UnstableOffsetCommitError.errno)


def _partition_results(topics: Any, group: str) -> Any:
    """Per-partition outcome of a group offsets call; a coordinator error on any
    partition retries the whole group (Java's AlterConsumerGroupOffsetsHandler)."""
    out: dict[TopicPartition, KafkaError | None] = {}
    for t in topics:
        for p in t.partitions:
            if p.error_code in _COORDINATOR_CODES:
                return _Retry(_error(p.error_code, None, f"offsets of group {group!r}"))
            out[TopicPartition(t.name, p.partition_index)] = _error(p.error_code) if p.error_code else None
    return out

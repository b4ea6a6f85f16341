"""The sans-I/O admin core: routes admin requests, retries, reports per resource.

Theory of operation
-------------------

:class:`AdminEngine` runs the admin calls over a :class:`kproto.client.Client`;
:class:`~kproto.admin.core.AdminCore` (the :class:`kproto.driving.Driven` core a
driver runs) delegates its driving calls here and builds each call with the
per-area modules (:mod:`kproto.admin.topics`, ``configs``, ``groups``,
``records``, ``acls``, ``scram``, ``transactions``, ``cluster``). Each admin
method (``create_topics``, ``describe_configs``, ...) returns an :class:`AdminOp` at once; the driver keeps driving until
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
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from kproto.admin.answers import Retry
from kproto.client import COORDINATOR_GROUP, Client, ClientConfig
from kproto.connection import ConnectionState
from kproto.driving import ClientDriven
from kproto.errors import (
    AuthenticationFailedError,
    Cancelled,
    CoordinatorNotAvailableError,
    IllegalArgumentError,
    IllegalStateError,
    KafkaConfigurationError,
    KafkaError,
    KafkaProtocolError,
    KafkaTimeoutError,
    NotControllerError,
    NotCoordinatorError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)
from kproto.events import BootstrapFailed, ClientEvent, CoordinatorLookupFailed
from kproto.protocol.messages import REQUEST_TYPES

if TYPE_CHECKING:
    from kproto.protocol.message import Request, Response

__all__ = [
    "ANY",
    "BROKER",
    "CONTROLLER",
    "COORDINATOR",
    "LEADER",
    "AdminConfig",
    "AdminEngine",
    "AdminEvent",
    "AdminOp",
    "Build",
    "Parse",
    "non_negative",
]

_INF = float("inf")

#: The events an admin core hands its driver: the client's (the admin adds none).
AdminEvent = ClientEvent


def non_negative(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    """attrs validator: ``value >= 0``, else a configuration error naming the option."""
    if value < 0:
        raise KafkaConfigurationError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class AdminConfig(ClientConfig):
    """Settings of the admin core: the client's, plus the per-call deadline.

    ``allow_auto_create_topics`` is ignored: admin Metadata requests never
    create topics (Java's admin client sends ``allowAutoTopicCreation=false``).
    """

    #: Deadline of an admin call that gives no ``timeout_ms`` (Java: default.api.timeout.ms).
    default_api_timeout_ms: int = attrs.field(default=60000, validator=non_negative)


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

    def expect(self) -> None:
        """One more resource (or the pending broker list) is open (the engine's side)."""
        self._open += 1

    def settle(self, key: Hashable, answer: object) -> None:
        """Close ``key`` with its value or :class:`~kproto.errors.KafkaError` (the engine's side)."""
        self._open -= 1
        if isinstance(answer, KafkaError):
            self.errors[key] = answer
        else:
            self.results[key] = answer

    def resolve_pending(self, error: KafkaError | None = None) -> None:
        """The broker list arrived (None) or will not (the whole call fails with ``error``)."""
        self._open -= 1
        if error is not None:
            self.error = error

    def __repr__(self) -> str:
        state = "done" if self.done else f"{self._open} open"
        return f"<AdminOp {self.name} {state} ok={len(self.results)} failed={len(self.errors)}>"


class Unit:
    __slots__ = ("key", "not_before", "in_flight", "last_error")

    def __init__(self, key: Hashable, now: float) -> None:
        self.key = key
        self.not_before = now
        self.in_flight = False
        self.last_error: KafkaError | None = None


#: A unit key: a topic name, a TopicPartition, a group id, a broker id, a resource...
_K = TypeVar("_K", bound=Hashable)
#: ``build(keys, timeout_ms)`` -> the request for these units (one node).
Build = Callable[[list[_K], int], "Request[Response]"]
#: ``parse(response, keys)`` -> key -> value | KafkaError | Retry. The response is
#: the one its build's request asked for (a parser reads it by its own type).
Parse = Callable[["Response", list[_K]], Mapping[_K, object]]

#: Routes (see the module docstring).
ANY, CONTROLLER, COORDINATOR, LEADER, BROKER = "any", "controller", "coordinator", "leader", "broker"


class Call:
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
        target: Callable[[_K], Hashable],
        build: Build[_K],
        parse: Parse[_K],
        *,
        batch: bool,
        started_version: int,
        needs_version: tuple[int, int] | None,
        key_type: int = COORDINATOR_GROUP,
        fallback: tuple[Build[_K], Parse[_K]] | None = None,
    ) -> None:
        self.op = op
        #: FindCoordinator KeyType for the coordinator route (group or transactional id).
        self.key_type = key_type
        self.units: dict[Any, Unit] = {}
        self.route = route
        # The engine keeps the calls of every key type in one list: their
        # callables are stored with the key type erased (the ``__init__``
        # signature pairs them with one key type).
        #: unit key -> what the route needs: a group id, a TopicPartition, a broker id.
        self.target: Callable[[Any], Any] = target
        #: ``build(keys, timeout_ms)`` -> the request for these units (one node).
        self.build: Build[Any] = build
        #: ``parse(response, keys)`` -> key -> value | KafkaError | Retry.
        self.parse: Parse[Any] = parse
        self.batch = batch
        #: Cluster metadata version when the call began: topic errors older than this are not trusted.
        self.started_version = started_version
        #: ``(api_key, lowest version)`` when older versions would mean something else.
        self.needs_version = needs_version
        #: ``(build, parse)`` to use instead on a node without that version (None: fail).
        self.fallback: tuple[Build[Any], Parse[Any]] | None = fallback


class AdminEngine(ClientDriven):
    """Routes, sends, retries and settles the units of every open admin call.

    Args:
        config: Settings.
        client: The cluster client the calls go through.
        now: The driver's clock now, in seconds.
    """

    def __init__(self, config: AdminConfig, client: Client, now: float) -> None:
        self.config = config
        self._client: Client = client
        self._now = now
        self._calls: list[Call] = []
        self._events: list[AdminEvent] = []
        #: Metadata version whose controller_id answered NOT_CONTROLLER (not used again).
        self._stale_controller_version = -1
        #: Topics the leader-routed calls made the client track: topic -> open units.
        self._topic_refs: dict[str, int] = {}
        #: Ops sent to every broker, waiting for the broker list: (op, build, parse).
        self._pending_brokers_ops: list[tuple[AdminOp, Build[int], Parse[int]]] = []

    # --- the driving surface (delegated to the client, then settled here) -------------

    def _input(self, now: float) -> bool:
        self._now = now
        return True

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

    def events(self) -> list[AdminEvent]:
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

    # --- starting calls (used by the per-area modules) -----------------------------

    def every_broker(
        self, name: str, build: Build[int], parse: Parse[int], now: float, timeout_ms: int | None
    ) -> AdminOp:
        """An op with one unit per broker (Java's AllBrokersStrategy); the units
        are added by the first input that finds the metadata naming the brokers."""
        op = self.new_op(name, now, timeout_ms)
        op.expect()  # "brokers not known yet"
        self._pending_brokers_ops.append((op, build, parse))
        self._client.request_metadata_update(now)
        self._after_input(now)
        return op

    # --- the machinery --------------------------------------------------------------

    def new_op(self, name: str, now: float, timeout_ms: int | None) -> AdminOp:
        if self._client.closed:
            raise IllegalStateError("the admin client is closed")
        if timeout_ms is not None and timeout_ms < 0:
            raise IllegalArgumentError(f"timeout_ms must be >= 0, got {timeout_ms}")
        self._now = now
        t = self.config.default_api_timeout_ms if timeout_ms is None else timeout_ms
        return AdminOp(name, now + t / 1000)

    def start(
        self,
        name: str,
        keys: list[_K],
        route: str,
        build: Build[_K],
        parse: Parse[_K],
        now: float,
        timeout_ms: int | None,
        *,
        target: Callable[[_K], Hashable] = lambda k: k,
        needs_version: tuple[int, int] | None = None,
        key_type: int = COORDINATOR_GROUP,
        batch: bool = True,
    ) -> AdminOp:
        op = self.new_op(name, now, timeout_ms)
        self.add_call(
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
        return self.finish_start(op, now)

    def add_call(
        self,
        op: AdminOp,
        keys: list[_K],
        route: str,
        build: Build[_K],
        parse: Parse[_K],
        now: float,
        *,
        target: Callable[[_K], Hashable] = lambda k: k,
        batch: bool = True,
        needs_version: tuple[int, int] | None = None,
        key_type: int = COORDINATOR_GROUP,
        fallback: tuple[Build[_K], Parse[_K]] | None = None,
    ) -> None:
        call = Call(
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
            call.units[key] = Unit(key, now)
            op.expect()
            if route == LEADER:
                topic = call.target(key).topic
                self._topic_refs[topic] = self._topic_refs.get(topic, 0) + 1
        if route == LEADER and call.units:
            # Fresh leaders for these topics, as Java's admin fetches metadata per call.
            self._client.add_topics({call.target(k).topic for k in call.units}, now)
            self._client.request_metadata_update(now)
        if call.units:
            self._calls.append(call)

    def finish_start(self, op: AdminOp, now: float) -> AdminOp:
        if op.done and not op.results and not op.errors:
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
            op.resolve_pending(error)
        self._pending_brokers_ops.clear()

    def _fail_coordinator_key(self, key_type: int, coordinator_key: str, error: KafkaError) -> None:
        """A lookup failed for good (e.g. GROUP_AUTHORIZATION_FAILED): fail the units waiting on it."""
        for call in list(self._calls):
            if call.route != COORDINATOR or call.key_type != key_type:
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
                op.resolve_pending(KafkaTimeoutError(f"{op.name}: no broker list within the deadline"))
            elif brokers:
                pending.remove(entry)
                op.resolve_pending()
                self.add_call(op, brokers, BROKER, build, parse, now, batch=False)
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

    def _route(self, call: Call, key: Any, now: float) -> int | KafkaError | None:
        """The node for ``key`` now, an error that settles it, or None (wait for a lookup)."""
        client = self._client
        route = call.route
        if route == ANY:
            return client.least_loaded_node(now)
        cluster = client.cluster
        if route == CONTROLLER:
            cid = cluster.controller_id
            if cid < 0 or cluster.version <= self._stale_controller_version or cluster.broker(cid) is None:
                client.request_metadata_update(now)
                return None
            return cid
        target = call.target(key)
        if route == COORDINATOR:
            return client.coordinator(target, call.key_type, now)
        if route == BROKER:
            if cluster.broker(target) is None:
                client.request_metadata_update(now)
                return None
            return int(target)
        # LEADER
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

    def _version_ok(self, call: Call, node_id: int, keys: list[Any], now: float) -> bool:
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

    def _send(self, call: Call, node_id: int, keys: list[Any], now: float) -> None:
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
        self, call: Call, keys: list[Any], node_id: int, response: Any, error: KafkaError | None
    ) -> None:
        now = self._now  # callbacks run inside a driving call, which set it
        if error is not None:
            answers: Mapping[Any, Any] = {k: Retry(error) if error.retriable else error for k in keys}
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
            if isinstance(answer, Retry):
                self._retry(call, unit, answer.error, node_id, now)
            else:
                self._settle(call, key, answer)

    def _retry(self, call: Call, unit: Unit, error: KafkaError, node_id: int, now: float) -> None:
        """Back off and invalidate what the error says is stale (Java's handleRetriableError)."""
        unit.last_error = error
        unit.not_before = now + self.config.retry_backoff_ms / 1000
        client = self._client
        if isinstance(error, NotControllerError):
            self._stale_controller_version = client.cluster.version
            client.request_metadata_update(now)
        elif call.route == COORDINATOR and isinstance(
            error, NotCoordinatorError | CoordinatorNotAvailableError
        ):
            client.mark_coordinator_dead(call.target(unit.key), call.key_type, now)
        elif error.refresh_metadata:
            client.request_metadata_update(now)

    def _settle(self, call: Call, key: Any, answer: Any) -> None:
        unit = call.units.pop(key, None)
        if unit is None:
            return
        call.op.settle(key, answer)
        if call.route == LEADER:
            topic = call.target(key).topic
            n = self._topic_refs.get(topic, 0) - 1
            if n <= 0:
                self._topic_refs.pop(topic, None)
                self._client.remove_topics([topic], self._now)
            else:
                self._topic_refs[topic] = n

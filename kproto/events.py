"""Typed events the kproto cores hand to their driver.

Every event is a frozen, slotted, keyword-only attrs class derived from
:class:`Event`, with one docstring line per field. Drain them with
``core.events()`` on every turn; they are information, never requests for
action (actions are :mod:`kproto.driving` commands). Dispatch with
``isinstance`` (or ``match``) on the classes, never on their names.

The client core's events are here (:data:`ClientEvent`); the producer
(:data:`kproto.producer.events.ProducerEvent`) and the consumer
(:data:`kproto.consumer.types.AnyConsumerEvent`) add theirs and forward the
client's. The transports turn them into log records, hook calls and metrics
(``transports/_observe.py``, docs/observability.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from kproto.errors import AuthenticationFailedError, KafkaError, NoBrokersAvailable

__all__ = [
    "BootstrapFailed",
    "ClientEvent",
    "Event",
    "RequestCompleted",
    "RequestWritten",
    "CoordinatorFound",
    "CoordinatorLookupFailed",
    "MetadataUpdated",
    "NodeDisconnected",
    "NodeReady",
    "RebootstrapRejected",
    "Rebootstrapped",
]


@attrs.frozen(kw_only=True, slots=True)
class Event:
    """Base of every event a kproto core hands out (client, producer, consumer, admin)."""


@attrs.frozen(kw_only=True, slots=True)
class NodeReady(Event):
    """A connection finished its handshake (ApiVersions, authentication)."""

    #: The node's id (bootstrap entries and coordinators have synthetic ids).
    node_id: int
    #: Host the connection went to.
    host: str
    #: Port the connection went to.
    port: int
    #: ``api_key -> version`` this client will use with the node (the highest both support).
    api_versions: Mapping[int, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True, slots=True)
class NodeDisconnected(Event):
    """A connection closed or could not be opened; its requests failed."""

    #: The node's id.
    node_id: int
    #: Why, or None when the client closed it on purpose (idle bootstrap connection, close()).
    error: KafkaError | None
    #: Earliest time (driver clock) the client will try this node again.
    reconnect_at: float
    #: Host the connection went to ("" if unknown).
    host: str = ""
    #: Port the connection went to (0 if unknown).
    port: int = 0


@attrs.frozen(kw_only=True, slots=True)
class MetadataUpdated(Event):
    """New cluster metadata was applied; ``client.cluster`` reflects it."""

    #: ``ClusterMetadata.version`` after the update.
    version: int
    #: Topics the response described (including ones with an error).
    topics: frozenset[str]
    #: ``(topic, partition, old leader, new leader)`` for each known partition whose leader changed.
    leaders_moved: tuple[tuple[str, int, int, int], ...] = ()
    #: ``topic -> (old count, new count)`` for each known topic that gained partitions.
    partitions_added: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True, slots=True)
class BootstrapFailed(Event):
    """Bootstrap failed: no server answered before the deadline given to
    ``set_bootstrap_deadline`` (``NoBrokersAvailable``), or authentication
    failed (``AuthenticationFailedError``, not retried)."""

    #: The error to raise to the user.
    error: NoBrokersAvailable | AuthenticationFailedError


@attrs.frozen(kw_only=True, slots=True)
class CoordinatorFound(Event):
    """A FindCoordinator lookup resolved."""

    #: Group id or transactional id.
    key: str
    #: 0 for a consumer group, 1 for a transaction (the wire KeyType).
    key_type: int
    #: The node id to send coordinator requests to (a dedicated connection).
    node_id: int
    #: The coordinator broker's real id.
    broker_id: int


@attrs.frozen(kw_only=True, slots=True)
class CoordinatorLookupFailed(Event):
    """A FindCoordinator lookup failed with an error that retrying will not fix."""

    #: Group id or transactional id.
    key: str
    #: 0 for a consumer group, 1 for a transaction.
    key_type: int
    #: The broker's error (e.g. GroupAuthorizationFailedError).
    error: KafkaError


@attrs.frozen(kw_only=True, slots=True)
class Rebootstrapped(Event):
    """The client forgot the metadata brokers and went back to ``bootstrap_servers``
    (KIP-899, ``metadata_recovery_strategy='rebootstrap'``); fresh metadata follows."""

    #: Why: no broker from the metadata could be reached, or no metadata for
    #: ``metadata_recovery_rebootstrap_trigger_ms`` (KIP-1102).
    reason: str
    #: The bootstrap servers, ``"host:port"``, that the client connects to again.
    servers: tuple[str, ...]


@attrs.frozen(kw_only=True, slots=True)
class RebootstrapRejected(Event):
    """After a re-bootstrap, a Metadata response came from another cluster (KIP-899);
    it was not applied and the client keeps asking."""

    #: The cluster id the client knew before re-bootstrapping.
    expected_cluster_id: str
    #: The cluster id the bootstrap servers reported.
    cluster_id: str


@attrs.frozen(kw_only=True, slots=True)
class RequestCompleted(Event):
    """A response was read (only while ``Client.observe_requests`` is on: one per request).

    What the broker-level hooks and the latency metrics are made of.
    """

    #: The node that answered.
    node_id: int
    #: The request's API key (0 Produce, 1 Fetch, ...).
    api_key: int
    #: The version it was written at.
    api_version: int
    #: Size of the request as written, bytes (with its size prefix).
    request_bytes: int
    #: Size of the response frame, bytes.
    response_bytes: int
    #: From the request being handed to ``data_to_send`` to its response, seconds.
    latency: float
    #: ``throttle_time_ms`` the broker asked for (KIP-219), 0 if none.
    throttle_ms: int


@attrs.frozen(kw_only=True, slots=True)
class RequestWritten(Event):
    """A request was encoded for the wire (only while ``Client.observe_requests`` is on)."""

    #: The node it goes to.
    node_id: int
    #: The request's API key.
    api_key: int
    #: The version it was written at.
    api_version: int
    #: Its size, bytes (with its size prefix).
    request_bytes: int


#: Every event :meth:`kproto.client.Client.events` gives; the producer,
#: consumer and admin cores forward these with their own.
ClientEvent = (
    NodeReady
    | NodeDisconnected
    | MetadataUpdated
    | BootstrapFailed
    | CoordinatorFound
    | CoordinatorLookupFailed
    | Rebootstrapped
    | RebootstrapRejected
    | RequestWritten
    | RequestCompleted
)

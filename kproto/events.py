"""Typed events the kproto cores hand to their driver.

Every event is a frozen, slotted, keyword-only attrs class with one
docstring line per field. Drain them with ``core.events()``; they are
information, never requests for action (actions are
:mod:`kproto.driving` commands).

The client core's events are here; the producer and consumer add theirs.
"""

from __future__ import annotations

import attrs

from kproto.errors import AuthenticationFailedError, KafkaError, NoBrokersAvailable

__all__ = [
    "BootstrapFailed",
    "CoordinatorFound",
    "CoordinatorLookupFailed",
    "MetadataUpdated",
    "NodeDisconnected",
    "NodeReady",
    "RebootstrapRejected",
    "Rebootstrapped",
]


@attrs.frozen(kw_only=True, slots=True)
class NodeReady:
    """A connection finished its handshake (ApiVersions, authentication)."""

    #: The node's id (bootstrap entries and coordinators have synthetic ids).
    node_id: int
    #: Host the connection went to.
    host: str
    #: Port the connection went to.
    port: int


@attrs.frozen(kw_only=True, slots=True)
class NodeDisconnected:
    """A connection closed or could not be opened; its requests failed."""

    #: The node's id.
    node_id: int
    #: Why, or None when the client closed it on purpose (idle bootstrap connection, close()).
    error: KafkaError | None
    #: Earliest time (driver clock) the client will try this node again.
    reconnect_at: float


@attrs.frozen(kw_only=True, slots=True)
class MetadataUpdated:
    """New cluster metadata was applied; ``client.cluster`` reflects it."""

    #: ``ClusterMetadata.version`` after the update.
    version: int
    #: Topics the response described (including ones with an error).
    topics: frozenset[str]


@attrs.frozen(kw_only=True, slots=True)
class BootstrapFailed:
    """Bootstrap failed: no server answered before the deadline given to
    ``set_bootstrap_deadline`` (``NoBrokersAvailable``), or authentication
    failed (``AuthenticationFailedError``, not retried)."""

    #: The error to raise to the user.
    error: NoBrokersAvailable | AuthenticationFailedError


@attrs.frozen(kw_only=True, slots=True)
class CoordinatorFound:
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
class CoordinatorLookupFailed:
    """A FindCoordinator lookup failed with an error that retrying will not fix."""

    #: Group id or transactional id.
    key: str
    #: 0 for a consumer group, 1 for a transaction.
    key_type: int
    #: The broker's error (e.g. GroupAuthorizationFailedError).
    error: KafkaError


@attrs.frozen(kw_only=True, slots=True)
class Rebootstrapped:
    """The client forgot the metadata brokers and went back to ``bootstrap_servers``
    (KIP-899, ``metadata_recovery_strategy='rebootstrap'``); fresh metadata follows."""

    #: Why: no broker from the metadata could be reached, or no metadata for
    #: ``metadata_recovery_rebootstrap_trigger_ms`` (KIP-1102).
    reason: str
    #: The bootstrap servers, ``"host:port"``, that the client connects to again.
    servers: tuple[str, ...]


@attrs.frozen(kw_only=True, slots=True)
class RebootstrapRejected:
    """After a re-bootstrap, a Metadata response came from another cluster (KIP-899);
    it was not applied and the client keeps asking."""

    #: The cluster id the client knew before re-bootstrapping.
    expected_cluster_id: str
    #: The cluster id the bootstrap servers reported.
    cluster_id: str

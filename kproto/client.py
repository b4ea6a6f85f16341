"""The cluster client core: connections by node id, metadata, routing, retries.

Theory of operation
-------------------

A :class:`Client` is a :class:`kproto.driving.Driven` core. It keeps one
:class:`~kproto.connection.BrokerConnection` per node it talks to and knows
three kinds of node ids:

- bootstrap entries from ``bootstrap_servers``: -1, -2, ... in list order;
- brokers from Metadata responses: their broker ids;
- coordinators from FindCoordinator: ``COORDINATOR_NODE_BASE - broker_id``,
  a second connection to that broker reserved for group and transaction
  requests, so a JoinGroup that blocks for the rebalance timeout never
  holds up a Fetch or Produce (the Java client does the same).

Requests. :meth:`send` queues a request on its node's connection and asks
for a ``Connect`` if there is none. A node whose last connection failed is
in reconnect backoff (exponential from ``reconnect_backoff_ms`` to
``reconnect_backoff_max_ms``, times a jitter in [0.8, 1.2) drawn from the
injected ``random.Random``, as in KIP-144); requests wait for it. When a
connection closes, every request on it fails with
:class:`~kproto.errors.KafkaConnectionError` and the client asks for a
metadata refresh: leadership may have moved.

Callbacks run only inside the driving inputs (``connection_made``,
``connection_lost``, ``receive_data``, ``handle_timer``) and ``close()``,
after the client's own state is updated; never inside ``send``. If some are
due, :meth:`get_timer` returns the latest ``now`` seen.

Metadata. One Metadata request at a time, for the tracked topics (none: the
brokers only), to the least-loaded node. A refresh is due
``metadata_max_age_ms`` after the last success, or at once when asked
(:meth:`request_metadata_update`, a new topic, a lost connection, a
transient error in the response), but never sooner than ``retry_backoff_ms``
after the previous attempt ended. Once brokers are known, bootstrap
connections are closed when idle.

Metadata recovery (KIP-899, KIP-1102). With ``metadata_recovery_strategy=
'rebootstrap'`` (the default), when a metadata fetch is due and no broker
from the metadata is available (none has a connection, ready or being set
up, and all are in reconnect backoff), or the fetches have failed for
``metadata_recovery_rebootstrap_trigger_ms``, the client forgets the
metadata brokers (:meth:`ClusterMetadata.forget_brokers`) and fetches from
the bootstrap entries again; a ``Connect`` to a bootstrap address lets the
driver resolve the name again. Topics, partitions and leader epochs stay,
so the next answer is still checked against them (KIP-320). A response
from another cluster id is refused (:class:`RebootstrapRejected`). While
the metadata names no broker there is nothing to go back to, so an
unreachable bootstrap list backs off as usual instead of looping.

Connection setup (KIP-601): an attempt must be ready (TCP, ApiVersions,
authentication) within ``socket_connection_setup_timeout_ms``, doubled per
consecutive failure of that node up to ``socket_connection_setup_timeout_max_ms``.

Least-loaded node (as the Java client): start at a random broker, take the
first ready one with nothing pending, else the ready one with least pending,
else one that is connecting, else one that may connect now, else the one
whose backoff ends first. Before the first metadata the bootstrap entries
are the candidates.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kproto.cluster import ClusterMetadata
from kproto.config import DEFAULT_PORT, METADATA_RECOVERY_STRATEGIES, ClientConfig, parse_bootstrap
from kproto.connection import (
    BrokerConnection,
    Completion,
    ConnectionConfig,
    ConnectionState,
    R,
    ResponseCallback,
)
from kproto.coordinators import CoordinatorAddress, CoordinatorKey, Coordinators
from kproto.driving import Close, Command, Connect
from kproto.errors import (
    AuthenticationFailedError,
    Cancelled,
    IllegalArgumentError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    NoBrokersAvailable,
    RebootstrapRequiredError,
)
from kproto.events import (
    BootstrapFailed,
    ClientEvent,
    CoordinatorFound,
    CoordinatorLookupFailed,
    MetadataUpdated,
    NodeDisconnected,
    NodeReady,
    Rebootstrapped,
    RebootstrapRejected,
)
from kproto.metadata_schedule import MetadataSchedule
from kproto.protocol.message import Request
from kproto.protocol.messages import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kproto.protocol.messages.metadata import MetadataRequestTopic
from kproto.protocol.release_versions import release_caps
from kproto.reconnect import ReconnectPolicy, rebootstrap_reason
from kproto.settled_versions import BrokerKey, SettledVersions, broker_keys
from kproto.socks5 import Socks5Handshake

if TYPE_CHECKING:
    from kproto.sasl import SaslAuthenticator

__all__ = [
    "COORDINATOR_GROUP",
    "COORDINATOR_NODE_BASE",
    "COORDINATOR_TRANSACTION",
    "DEFAULT_PORT",
    "METADATA_RECOVERY_STRATEGIES",
    "Client",
    "ClientConfig",
    "parse_bootstrap",
]


def _config_authenticator(config: ClientConfig, host: str, rng: random.Random) -> SaslAuthenticator | None:
    """:func:`kproto.sasl.config_authenticator`, loading that module (and hashlib, hmac,
    stringprep) only for a ``SASL_*`` protocol: a plaintext or TLS client never needs it."""
    if not config.security_protocol.upper().startswith("SASL_"):
        return None
    from kproto.sasl import config_authenticator

    return config_authenticator(config, host, rng)


#: Coordinator connections use node id ``COORDINATOR_NODE_BASE - broker_id``
#: (Java: ``Integer.MAX_VALUE - id``), so they never clash with broker ids.
COORDINATOR_NODE_BASE = 2**31 - 1

#: FindCoordinator KeyType of a consumer group.
COORDINATOR_GROUP = 0
#: FindCoordinator KeyType of a transactional id.
COORDINATOR_TRANSACTION = 1
_INF = float("inf")
#: A connection being set up.
_OPENING = frozenset({ConnectionState.CONNECTING, ConnectionState.TUNNEL, ConnectionState.API_VERSIONS,
                      ConnectionState.AUTHENTICATING})


class _Node:
    """A node id's address, its current connection and its backoff state."""

    __slots__ = (
        "node_id",
        "host",
        "port",
        "kind",
        "conn",
        "active_at",
        "failures",
        "reconnect_at",
        "connects",
        "ready_seen",
    )

    def __init__(self, node_id: int, host: str, port: int, kind: str) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.kind = kind  # "bootstrap" | "broker" | "coordinator"
        self.conn: BrokerConnection | None = None
        #: When bytes last went either way on ``conn`` (connections_max_idle_ms).
        self.active_at = 0.0
        self.failures = 0
        self.reconnect_at = -_INF
        self.connects = 0
        self.ready_seen = False

    def load(self, now: float) -> int | None:
        """Requests in flight and queued on a ready, unthrottled connection (None: not usable now)."""
        conn = self.conn
        if conn is None or conn.state is not ConnectionState.READY or now < conn.throttled_until:
            return None
        return conn.in_flight_count + conn.queued_count

    def opening(self) -> bool:
        """Whether a connection is being set up (TCP, ApiVersions or authentication)."""
        return self.conn is not None and self.conn.state in _OPENING

    def available(self, now: float) -> bool:
        """KIP-899: connected or being set up, or allowed to connect (backoff over)."""
        conn = self.conn
        if conn is not None and conn.state not in (ConnectionState.WAITING, ConnectionState.CLOSED):
            return True
        return self.reconnect_at <= now


class Client:
    """The cluster client core; see the module docstring.

    Args:
        config: Settings.
        now: Current time on the driver's clock.
        rng: Source of reconnect jitter and least-loaded start offsets; seed it for
            reproducible runs.
    """

    def __init__(self, config: ClientConfig, *, now: float, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()
        setup_ms = (
            config.connection_setup_timeout_ms
            if config.connection_setup_timeout_ms is not None
            else config.socket_connection_setup_timeout_ms
        )
        self._reconnect = ReconnectPolicy(
            backoff_ms=config.reconnect_backoff_ms,
            backoff_max_ms=config.reconnect_backoff_max_ms,
            setup_timeout_ms=setup_ms,
            setup_timeout_max_ms=config.socket_connection_setup_timeout_max_ms,
            rng=self._rng,
        )
        self._conn_config = ConnectionConfig(
            client_id=config.client_id,
            request_timeout_ms=config.request_timeout_ms,
            max_in_flight_requests_per_connection=config.max_in_flight_requests_per_connection,
            max_response_size=config.max_response_size,
            connection_setup_timeout_ms=setup_ms,
            version_caps=None if config.api_version is None else dict(release_caps(config.api_version)),
        )
        self._idle_s = config.connections_max_idle_ms / 1000 if config.connections_max_idle_ms >= 0 else _INF
        self._nodes: dict[int, _Node] = {}
        self._bootstrap_ids: list[int] = []
        for i, (host, port) in enumerate(parse_bootstrap(config.bootstrap_servers)):
            node_id = -(i + 1)
            self._nodes[node_id] = _Node(node_id, host, port, "bootstrap")
            self._bootstrap_ids.append(node_id)
        self._cluster = ClusterMetadata()
        self._commands: list[Command] = []
        self._events: list[ClientEvent] = []
        #: Per-request events of new connections (``BrokerConnection.observe``; set before the first input).
        self.observe_requests = 0
        self._completions: deque[Completion] = deque()
        self._now = now
        self._closed = False
        self._answered = False
        self._bootstrap_deadline: float | None = None
        self._bootstrap_error: NoBrokersAvailable | AuthenticationFailedError | None = None
        self._auth_error: AuthenticationFailedError | None = None
        # Why the latest connection or metadata attempt failed (None since metadata last came back).
        self._last_error: KafkaError | None = None
        # Metadata (see the module docstring). -inf = never.
        self._topics: set[str] = set()
        self._metadata = MetadataSchedule(config.retry_backoff_ms / 1000, config.metadata_max_age_ms / 1000)
        # KIP-899/KIP-1102: how many re-bootstraps so far, and the cluster id a
        # re-bootstrapped client expects (None: any).
        self._rebootstraps = 0
        self._expected_cluster_id: str | None = None
        # A broker answered REBOOTSTRAP_REQUIRED (Metadata v13, KIP-1102).
        self._rebootstrap_required = False
        if config.bootstrap_timeout_ms is not None:
            self._bootstrap_deadline = now + config.bootstrap_timeout_ms / 1000
        # Responses with trailing bytes, and versions sent, on connections that are gone.
        self._trailing_bytes_closed = 0
        self._versions_closed: dict[int, int] = {}
        # The ApiVersions version connections settled on, by broker id and by address.
        self._settled_versions = SettledVersions()
        # Coordinators: (key_type, key) -> node id; lookups: due time, None = in flight.
        self._coordinators = Coordinators(config.retry_backoff_ms / 1000)
        self._proxy = config.proxy

    # --- the driving surface -------------------------------------------------------

    def connection_made(self, node_id: int, now: float) -> None:
        """The connection asked for by ``Connect(node_id)`` is open.

        Raises:
            IllegalStateError: the client is closed, no ``Connect`` was issued for
                ``node_id``, or the connection was already reported open.
        """
        node = self._input_node(node_id, now)
        conn = node.conn
        if conn is None or conn.state in (ConnectionState.CLOSED, ConnectionState.WAITING):
            # We gave up on this attempt (timeout, close) before it completed.
            self._commands.append(Close(node_id=node_id))
            return
        if conn.state is not ConnectionState.CONNECTING:
            raise IllegalStateError(
                f"connection_made for node {node_id}, which is already {conn.state.value}"
            )
        node.active_at = now
        conn.connection_made(now)
        self._after_input(now)

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        """The connection to ``node_id`` failed to open or was closed.

        Raises:
            IllegalStateError: the client is closed or no ``Connect`` was issued for ``node_id``.
        """
        node = self._input_node(node_id, now)
        conn = node.conn
        if conn is None or conn.state in (ConnectionState.CLOSED, ConnectionState.WAITING):
            return  # an attempt we already closed
        if isinstance(exc, AuthenticationFailedError):
            # The transport's own authentication failed (a TLS certificate that
            # does not verify): not retriable, the requests fail with it.
            conn.close(exc, now)
            conn.needs_close_command = False  # the transport is already gone
        else:
            conn.connection_lost(exc, now)
        self._after_input(now)

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        """Bytes arrived from ``node_id``.

        Raises:
            IllegalStateError: the client is closed, no ``Connect`` was issued for
                ``node_id``, or data came before ``connection_made``.
        """
        node = self._input_node(node_id, now)
        conn = node.conn
        if conn is None or conn.state in (ConnectionState.CLOSED, ConnectionState.WAITING):
            return  # bytes racing a Close we issued
        if conn.state is ConnectionState.CONNECTING:
            if node.connects > 1:
                return  # late bytes from the previous connection, closed by our Close
            raise IllegalStateError(f"data from node {node_id} before connection_made")
        node.active_at = now
        conn.receive_data(data, now)
        self._after_input(now)

    def handle_timer(self, now: float) -> None:
        """Expire requests, retry connections, start due metadata and coordinator lookups."""
        self._check_open()
        self._now = now
        for node in list(self._nodes.values()):
            if node.conn is not None:
                node.conn.handle_timer(now)
        self._after_input(now)

    def commands(self) -> list[Command]:
        """``Connect``/``Close`` commands, oldest first; drains them."""
        cmds, self._commands = self._commands, []
        return cmds

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """Bytes to write per node, drained; at most one entry per node."""
        out: list[tuple[int, bytes]] = []
        for node_id, node in self._nodes.items():
            conn = node.conn
            if conn is None:
                continue
            data = conn.data_to_send()
            if data:
                node.active_at = self._now
                out.append((node_id, data))
                if conn.completions:  # requests that expect no response are done
                    self._completions.extend(conn.completions)
                    conn.completions.clear()
        return out

    def get_timer(self) -> float | None:
        """The earliest time :meth:`handle_timer` must be called; None if nothing is pending."""
        if self._closed:
            return None
        now = self._now
        if self._completions:
            return now
        timer = _INF
        for node in self._nodes.values():
            conn = node.conn
            if conn is None:
                continue
            if conn.completions:
                return now
            t = conn.get_timer()
            if t is not None and t < timer:
                timer = t
            if conn.state is ConnectionState.WAITING and node.reconnect_at < timer:
                timer = node.reconnect_at
            elif conn.state is ConnectionState.READY and node.active_at + self._idle_s < timer:
                timer = node.active_at + self._idle_s
        due = self._metadata_due()
        if due < timer:
            timer = due
        t = self._coordinators.next_due()
        if t is not None and t < timer:
            timer = t
        if self._bootstrap_deadline is not None and self._bootstrap_deadline < timer:
            timer = self._bootstrap_deadline
        if timer == _INF:
            return None
        return max(timer, now)

    def events(self) -> list[ClientEvent]:
        """Typed events (see :mod:`kproto.events`), oldest first; drains them."""
        evs, self._events = self._events, []
        return evs

    # --- requests ------------------------------------------------------------------

    def send(
        self,
        request: Request[R],
        *,
        now: float,
        callback: ResponseCallback[R],
        node_id: int | None = None,
        max_version: int | None = None,
        expect_response: bool = True,
        timeout_ms: int | None = None,
    ) -> None:
        """Send ``request`` to ``node_id`` (None: the least-loaded node).

        Connects on demand and queues while connecting, handshaking, in
        reconnect backoff, throttled or at the in-flight limit. The version is
        ``min(type(request).MAX_VERSION, max_version, broker's max)``.
        ``callback(response, None)`` or ``callback(None, error)`` runs exactly
        once, inside a later driving call (never inside ``send``).

        Args:
            request: A generated request object.
            now: Current time.
            callback: Receives the decoded response or a :class:`KafkaError`.
            node_id: Target node; a broker id, a coordinator id, a bootstrap id, or None.
            max_version: Highest version the caller can build/read.
            expect_response: False for Produce with acks=0: completes once written.
            timeout_ms: Deadline from now (default ``request_timeout_ms``).

        Raises:
            IllegalStateError: the client is closed.
            IllegalArgumentError: ``timeout_ms`` is negative.
        """
        self._check_open()
        if timeout_ms is not None and timeout_ms < 0:
            raise IllegalArgumentError(f"timeout_ms must be >= 0, got {timeout_ms}")
        self._now = now
        if node_id is None:
            node_id = self.least_loaded_node(now)
        node = self._node(node_id)
        if node is None:
            err = KafkaConnectionError(f"node {node_id} is not in the cluster metadata")
            self._completions.append((callback, None, err))
            return
        conn = self._conn_for(node)
        conn.send(
            request,
            callback=callback,
            now=now,
            max_version=max_version,
            expect_response=expect_response,
            timeout_ms=timeout_ms,
        )
        self._pump(now)
        self._collect(now)

    @property
    def responses_with_trailing_bytes(self) -> int:
        """Responses accepted with bytes after the fields kproto knows (ignored, as Java does)."""
        live = sum(n.conn.responses_with_trailing_bytes for n in self._nodes.values() if n.conn is not None)
        return self._trailing_bytes_closed + live

    def versions_sent(self) -> dict[int, int]:
        """``api_key -> version`` of the latest request of each API written to any node (diagnostics)."""
        out = dict(self._versions_closed)
        for node in self._nodes.values():
            if node.conn is not None:
                out.update(node.conn.versions_sent)
        return out

    def is_ready(self, node_id: int) -> bool:
        """Connected, handshake done, not throttled and below the in-flight limit."""
        node = self._nodes.get(node_id)
        return node is not None and node.conn is not None and node.conn.is_ready(self._now)

    def in_flight_count(self, node_id: int) -> int:
        """Requests written to ``node_id`` and awaiting a response."""
        node = self._nodes.get(node_id)
        return node.conn.in_flight_count if node is not None and node.conn is not None else 0

    def api_version(self, node_id: int, api_key: int) -> int | None:
        """The version ``send`` would use for ``api_key`` on ``node_id``; None before the handshake."""
        node = self._nodes.get(node_id)
        if node is None or node.conn is None or not node.conn.broker_versions:
            return None
        return node.conn.api_version(api_key)

    def connection_state(self, node_id: int) -> ConnectionState | None:
        """The state of ``node_id``'s connection; None when there is none."""
        node = self._nodes.get(node_id)
        return node.conn.state if node is not None and node.conn is not None else None

    def throttled_until(self, node_id: int) -> float:
        """Until when the broker asked us to hold back (KIP-219); 0 if not throttled."""
        node = self._nodes.get(node_id)
        return node.conn.throttled_until if node is not None and node.conn is not None else 0.0

    def ensure_connected(self, node_id: int, now: float) -> None:
        """Start connecting to ``node_id`` if it has no connection (respecting backoff).

        Raises:
            IllegalStateError: the client is closed.
            IllegalArgumentError: ``node_id`` is not a known node.
        """
        self._check_open()
        self._now = now
        node = self._node(node_id)
        if node is None:
            raise IllegalArgumentError(f"node {node_id} is not in the cluster metadata")
        self._conn_for(node)
        self._pump(now)

    def least_loaded_node(self, now: float) -> int:
        """The node a request without a target should go to (see the module docstring)."""
        ids = list(self._cluster.brokers) or self._bootstrap_ids
        n = len(ids)
        start = self._rng.randrange(n) if n > 1 else 0
        best_ready: int | None = None
        best_load = 0
        connecting: int | None = None
        idle: int | None = None
        soonest: int | None = None
        soonest_at = _INF
        for i in range(n):
            node = self._node(ids[(start + i) % n])
            assert node is not None
            load = node.load(now)
            if load is not None:
                if load == 0:
                    return node.node_id
                if best_ready is None or load < best_load:
                    best_ready, best_load = node.node_id, load
            elif node.opening():
                if connecting is None:
                    connecting = node.node_id
            elif node.reconnect_at <= now:
                if idle is None:
                    idle = node.node_id
            elif node.reconnect_at < soonest_at:
                soonest, soonest_at = node.node_id, node.reconnect_at
        for choice in (best_ready, connecting, idle, soonest):
            if choice is not None:
                return choice
        return ids[start]

    # --- cluster metadata -------------------------------------------------------------

    @property
    def cluster(self) -> ClusterMetadata:
        """The current cluster metadata."""
        return self._cluster

    @property
    def tracked_topics(self) -> frozenset[str]:
        """Topics whose metadata is fetched."""
        return frozenset(self._topics)

    def add_topics(self, topics: Iterable[str], now: float) -> None:
        """Track ``topics``; new ones trigger a metadata fetch soon."""
        self._check_open()
        self._now = now
        new = set(topics) - self._topics
        if new:
            self._topics |= new
            self._metadata.requested = True
            self._pump(now)

    def remove_topics(self, topics: Iterable[str], now: float) -> None:
        """Stop tracking ``topics`` and forget their metadata."""
        self._check_open()
        self._now = now
        self._topics -= set(topics)
        self._cluster.retain_topics(self._topics)

    def request_metadata_update(self, now: float) -> None:
        """Refresh metadata soon: at once, or ``retry_backoff_ms`` after the last attempt."""
        self._check_open()
        self._now = now
        self._metadata.requested = True
        self._pump(now)

    def _metadata_due(self) -> float:
        return _INF if self._closed else self._metadata.due()

    def _maybe_fetch_metadata(self, now: float) -> None:
        if self._metadata_due() > now:
            return
        cfg = self.config
        reason = rebootstrap_reason(
            cfg.metadata_recovery_strategy, cfg.metadata_recovery_rebootstrap_trigger_ms, self._rebootstrap_required,
            self._cluster.brokers, lambda b: self._node_available(b, now), self._metadata.attempt_start, now,
        )  # fmt: skip
        if reason is not None:
            self._rebootstrap(reason)
        topics = sorted(self._topics)
        request = MetadataRequest(
            topics=[MetadataRequestTopic(name=t) for t in topics],
            allow_auto_topic_creation=self.config.allow_auto_create_topics,
        )
        self._metadata.start(now)
        node = self._node(self.least_loaded_node(now))
        assert node is not None
        self._conn_for(node).send(request, callback=self._on_metadata, now=now)

    def _on_metadata(self, response: MetadataResponse | None, error: KafkaError | None) -> None:
        now = self._now
        self._metadata.answered(now)
        if self._closed:
            return
        if error is not None:
            self._metadata.requested = True
            if self._last_error is None:  # a connection's own error says more than its request's
                self._last_error = error
            return
        assert response is not None  # no error: the answer came
        expected, got = self._expected_cluster_id, getattr(response, "cluster_id", None)
        if expected is not None and got is not None and got != expected:
            # KIP-899: a re-bootstrap must not move the client to another
            # cluster (the bootstrap name now pointing elsewhere). Keep
            # asking, at the pace of reconnects, until the right one answers.
            self._metadata.requested = True
            self._metadata.last_attempt = (
                now + max(0, self.config.reconnect_backoff_max_ms - self.config.retry_backoff_ms) / 1000
            )
            self._events.append(RebootstrapRejected(expected_cluster_id=expected, cluster_id=got))
            return
        self._expected_cluster_id = None
        code = getattr(response, "error_code", 0)  # Metadata v13+: a top-level error (KIP-1102)
        if code:
            self._metadata.requested = True
            self._rebootstrap_required = code == RebootstrapRequiredError.errno
            return
        self._rebootstrap_required = False
        described, transient = self._cluster.update(response)
        self._metadata.succeeded(now)
        self._last_error = None
        if transient:
            self._metadata.requested = True
        for broker_id, (host, port, _rack) in self._cluster.brokers.items():
            node = self._nodes.get(broker_id)
            if node is None:
                self._nodes[broker_id] = _Node(broker_id, host, port, "broker")
            elif (node.host, node.port) != (host, port):
                node.host, node.port = host, port  # used by the next connection
        self._events.append(MetadataUpdated(version=self._cluster.version, topics=described,
                                            leaders_moved=self._cluster.moved, partitions_added=self._cluster.grown))

    # --- metadata recovery (KIP-899, KIP-1102) ----------------------------------------------

    @property
    def rebootstrap_count(self) -> int:
        """How many times the client went back to ``bootstrap_servers`` (KIP-899)."""
        return self._rebootstraps

    def _node_available(self, node_id: int, now: float) -> bool:
        node = self._node(node_id)
        return node is not None and node.available(now)

    def _rebootstrap(self, reason: str) -> None:
        """Forget the metadata brokers and go back to ``bootstrap_servers`` (KIP-899).

        Topics, partitions and their leader epochs stay: the next response is
        still checked against them (KIP-320), so a lagging broker reached
        through the bootstrap address cannot move a leader back. Connections
        to the old brokers are left to fail on their own; their nodes keep
        their ids, and fresh metadata gives them new addresses if they moved.
        """
        self._rebootstraps += 1
        if self._cluster.cluster_id is not None:
            self._expected_cluster_id = self._cluster.cluster_id
        # Bootstrap nodes keep their reconnect backoff: one that failed a
        # moment ago is not hammered (an idle one closed long ago may connect now).
        self._cluster.forget_brokers()
        self._metadata.attempt_start = None
        self._rebootstrap_required = False
        self._events.append(
            Rebootstrapped(
                reason=reason,
                servers=tuple(f"{self._nodes[i].host}:{self._nodes[i].port}" for i in self._bootstrap_ids),
            )
        )

    # --- coordinators --------------------------------------------------------------------

    def coordinator(self, key: str, key_type: int, now: float) -> int | None:
        """The node id for ``key``'s coordinator, or None while a lookup is pending.

        Args:
            key: Group id (``key_type`` 0) or transactional id (``key_type`` 1).
            key_type: The wire KeyType.
            now: Current time.
        """
        self._check_open()
        self._now = now
        k = (key_type, key)
        node_id = self._coordinators.known(k)
        if node_id is not None:
            return node_id
        if self._coordinators.want(k, now):
            self._pump(now)
        return None

    def mark_coordinator_dead(self, key: str, key_type: int, now: float) -> None:
        """Forget ``key``'s coordinator (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) and look it up again."""
        self._check_open()
        self._now = now
        k = (key_type, key)
        self._coordinators.forget(k)
        if self._coordinators.want(k, now):
            self._pump(now)

    def _maybe_find_coordinators(self, now: float) -> None:
        for k in self._coordinators.take_due(now):
            key_type, key = k
            node = self._node(self.least_loaded_node(now))
            assert node is not None
            self._conn_for(node).send(
                FindCoordinatorRequest(key=key, key_type=key_type),
                callback=functools.partial(self._on_find_coordinator, k),
                now=now,
            )

    def _on_find_coordinator(
        self, k: CoordinatorKey, response: FindCoordinatorResponse | None, error: KafkaError | None
    ) -> None:
        if self._closed:
            return
        key_type, key = k
        answer = self._coordinators.read_answer(k, response, error, self._now)
        if isinstance(answer, CoordinatorAddress):
            node_id = COORDINATOR_NODE_BASE - answer.broker_id
            node = self._nodes.get(node_id)
            if node is None:
                self._nodes[node_id] = _Node(node_id, answer.host, answer.port, "coordinator")
            elif (node.host, node.port) != (answer.host, answer.port):
                node.host, node.port = answer.host, answer.port
            self._coordinators.found(k, node_id)
            self._events.append(
                CoordinatorFound(key=key, key_type=key_type, node_id=node_id, broker_id=answer.broker_id)
            )
        elif answer.retriable:
            self._coordinators.retry(k)
            if answer.refresh_metadata:
                self._metadata.requested = True
        else:
            self._coordinators.give_up(k)
            self._events.append(CoordinatorLookupFailed(key=key, key_type=key_type, error=answer))

    # --- bootstrap -----------------------------------------------------------------------

    def bootstrap_connected(self) -> bool:
        """True once some node has answered (finished its handshake)."""
        return self._answered

    def set_bootstrap_deadline(self, deadline: float) -> None:
        """If no node has answered by ``deadline``, emit :class:`BootstrapFailed`."""
        self._check_open()
        if not self._answered:
            self._bootstrap_deadline = deadline
            self._bootstrap_error = None

    @property
    def bootstrap_error(self) -> NoBrokersAvailable | AuthenticationFailedError | None:
        """Why bootstrap failed: ``NoBrokersAvailable`` when the deadline passed
        with no node answering, or the ``AuthenticationFailedError`` that ended
        the first attempts."""
        return self._bootstrap_error

    @property
    def last_error(self) -> KafkaError | None:
        """Why the latest connection or metadata attempt failed; None once metadata comes back.

        Drivers name it (and chain it as ``__cause__``) when a wait for
        metadata runs out, instead of a bare "no metadata".
        """
        return self._last_error

    @property
    def auth_error(self) -> AuthenticationFailedError | None:
        """The latest authentication failure (SASL or TLS), None if none yet.

        Cleared when a connection to any node becomes ready.
        """
        return self._auth_error

    # --- closing -------------------------------------------------------------------------

    def close(self, now: float) -> None:
        """Fail every pending request with :class:`Cancelled` and close every connection."""
        if self._closed:
            return
        self._now = now
        self._closed = True
        for node in self._nodes.values():
            conn = node.conn
            if conn is None:
                continue
            conn.close(Cancelled("the client is closing"), now)
            if conn.needs_close_command:
                self._commands.append(Close(node_id=node.node_id))
            self._completions.extend(conn.completions)
            conn.completions.clear()
            node.conn = None
        self._coordinators.clear_lookups()
        self._run_callbacks()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    # --- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise IllegalStateError("the client is closed")

    def _input_node(self, node_id: int, now: float) -> _Node:
        self._check_open()
        node = self._nodes.get(node_id)
        if node is None or node.connects == 0:
            raise IllegalStateError(f"no connection to node {node_id} was requested (no Connect issued)")
        self._now = now
        return node

    def _node(self, node_id: int) -> _Node | None:
        node = self._nodes.get(node_id)
        if node is None:
            info = self._cluster.broker(node_id)
            if info is None:
                return None
            node = self._nodes[node_id] = _Node(node_id, info.host, info.port, "broker")
        return node

    def _conn_for(self, node: _Node) -> BrokerConnection:
        conn = node.conn
        if conn is None:
            auth = self.config.authenticator
            proxy = self._proxy
            conn = node.conn = BrokerConnection(
                node.node_id,
                node.host,
                node.port,
                config=self._conn_config,
                now=self._now,
                api_versions_version=self._settled_versions.start(self._broker_keys(node)),
                authenticator=auth(node.node_id, node.host, node.port)
                if auth is not None
                else _config_authenticator(self.config, node.host, self._rng),
                tunnel=None if proxy is None else Socks5Handshake(proxy, node.host, node.port),
            )
            conn.observe = self.observe_requests
        return conn

    def _broker_keys(self, node: _Node) -> list[BrokerKey]:
        """What names ``node``'s broker (a coordinator connection shares its broker's)."""
        if node.kind == "broker":
            return broker_keys(node.node_id, node.host, node.port, None)
        if node.kind == "coordinator":
            broker_id = COORDINATOR_NODE_BASE - node.node_id
            info = self._cluster.broker(broker_id)
            return broker_keys(broker_id, node.host, node.port, None if info is None else (info.host, info.port))
        return broker_keys(None, node.host, node.port, None)

    def _after_input(self, now: float) -> None:
        """Settle state after an input: closed connections, due work, callbacks."""
        while True:
            self._collect(now)
            self._pump(now)
            self._collect(now)
            if not self._completions:
                return
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        completions = self._completions
        while completions:
            callback, response, error = completions.popleft()
            callback(response, error)

    def _collect(self, now: float) -> None:
        """Move finished requests to the callback queue; handle READY and CLOSED connections."""
        for node in self._nodes.values():  # _on_closed does not add or remove nodes
            conn = node.conn
            if conn is None:
                continue
            conn.hand_over(self._completions, self._events)
            if conn.state is ConnectionState.READY and not node.ready_seen:
                node.ready_seen = True
                self._settled_versions.note(self._broker_keys(node), conn.api_versions_version)
                node.failures = 0
                self._auth_error = None
                self._answered = True
                self._bootstrap_deadline = None
                self._events.append(NodeReady(node_id=node.node_id, host=node.host, port=node.port,
                                              api_versions=conn.negotiated_versions()))
            elif conn.state is ConnectionState.CLOSED:
                self._on_closed(node, conn, now)

    def _on_closed(self, node: _Node, conn: BrokerConnection, now: float) -> None:
        node.conn = None
        node.ready_seen = False
        self._settled_versions.note(self._broker_keys(node), conn.api_versions_version)
        self._trailing_bytes_closed += conn.responses_with_trailing_bytes
        self._versions_closed.update(conn.versions_sent)
        conn.hand_over(self._completions, self._events)
        if conn.needs_close_command:
            self._commands.append(Close(node_id=node.node_id))
        error = conn.error
        if error is not None:
            self._last_error = error
        if isinstance(error, AuthenticationFailedError):
            # Wrong credentials or a certificate that does not verify will not
            # fix themselves: no retry storm. The node waits the longest
            # backoff; before any node answered, bootstrap fails at once with
            # this error (the upper layers surface it to the user).
            node.failures += 1
            node.reconnect_at = now + self._reconnect.longest_backoff()
            self._auth_error = error
            if not self._answered and not self._closed and self._bootstrap_error is None:
                self._bootstrap_deadline = None
                self._bootstrap_error = error
                self._events.append(BootstrapFailed(error=error))
        elif error is not None:
            node.failures += 1
            node.reconnect_at = now + self._reconnect.backoff(node.failures)
            if not self._closed:
                self._metadata.requested = True  # leadership may have moved (Java does the same)
        else:
            node.reconnect_at = now
        if error is not None:
            self._coordinators.forget_node(node.node_id)
        self._events.append(
            NodeDisconnected(node_id=node.node_id, error=error, reconnect_at=node.reconnect_at, host=node.host,
                             port=node.port)
        )

    def _pump(self, now: float) -> None:
        """Start what is due: connections, metadata, coordinator lookups; check the bootstrap bound."""
        if self._closed:
            return
        self._maybe_fetch_metadata(now)
        if self._coordinators.pending():
            self._maybe_find_coordinators(now)
        for node in self._nodes.values():
            conn = node.conn
            if conn is None:
                continue
            if conn.state is ConnectionState.WAITING and node.reconnect_at <= now:
                conn.start_connect(now, setup_timeout_ms=self._reconnect.setup_timeout(node.failures))
                node.connects += 1
                proxy = self._proxy  # the driver dials the proxy; the tunnel names the broker
                host, port = (node.host, node.port) if proxy is None else (proxy.host, proxy.port)
                self._commands.append(Connect(node_id=node.node_id, host=host, port=port))
            elif (
                conn.state is ConnectionState.READY
                and now >= node.active_at + self._idle_s
                and conn.in_flight_count == 0
                and conn.queued_count == 0
            ):
                # connections.max.idle.ms: an idle connection is closed as the
                # broker would close it (its own connections.max.idle.ms, 10
                # minutes by default) before a request finds it dead. The next
                # request to the node reconnects at once (no backoff).
                conn.close(None, now)
                self._on_closed(node, conn, now)
        if self._bootstrap_deadline is not None and now >= self._bootstrap_deadline:
            self._bootstrap_deadline = None
            if not self._answered:
                self._bootstrap_error = NoBrokersAvailable(
                    "no bootstrap server answered: "
                    + ", ".join(f"{self._nodes[i].host}:{self._nodes[i].port}" for i in self._bootstrap_ids)
                )
                self._events.append(BootstrapFailed(error=self._bootstrap_error))
        if self._cluster.brokers:
            self._close_idle_bootstrap(now)

    def _close_idle_bootstrap(self, now: float) -> None:
        for node_id in self._bootstrap_ids:
            node = self._nodes[node_id]
            conn = node.conn
            if (
                conn is not None
                and conn.in_flight_count == 0
                and conn.queued_count == 0
                and conn.state is ConnectionState.READY
            ):
                conn.close(None, now)
                self._on_closed(node, conn, now)

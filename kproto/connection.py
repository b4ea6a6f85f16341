"""One broker connection as a pure state machine.

Theory of operation
-------------------

A :class:`BrokerConnection` is one TCP connection's worth of Kafka protocol:
size-prefixed frames, correlation ids, the in-flight queue, the ApiVersions
handshake, an optional authentication step, per-request deadlines and
broker throttling. It owns no socket: the :class:`kproto.client.Client`
issues the ``Connect``/``Close`` commands and feeds it bytes and time.

Lifecycle (``state``), one object per connection attempt::

    WAITING --start_connect--> CONNECTING --connection_made--> API_VERSIONS
    CONNECTING --connection_made (with a tunnel)--> TUNNEL --tunnel_open--> API_VERSIONS
    API_VERSIONS --versions_ok--> AUTHENTICATING --auth_done--> READY
    any state except CLOSED --fail / close--> CLOSED            (terminal)

The table :data:`_TRANSITIONS` is the whole of it; a transition that is not
listed is a bug and raises :class:`~kproto.errors.IllegalStateError`.
``WAITING`` holds requests while the node is in reconnect backoff.
Without an authenticator, ``AUTHENTICATING`` is left at once. ``TUNNEL``
runs a proxy handshake (:class:`kproto.socks5.Socks5Handshake`, with
``proxy_url``) on the new transport before the first Kafka byte; its
errors close the connection like any other setup failure.

Requests. :meth:`send` appends to ``_queue``. Whenever the state is
``READY``, the node is not throttled and fewer than
``max_in_flight_requests_per_connection`` requests await a response, the
head of the queue is encoded at the negotiated version (``min(our max,
caller's max, broker max)``, an :class:`UnsupportedVersionError` if that is
below both minimums) straight into the output buffer and moved to
``_in_flight``. A request that expects no response (Produce with acks=0)
never enters ``_in_flight``; it completes when :meth:`data_to_send` hands
its bytes out.

Responses. Kafka answers the requests on one connection in order, so the
next response must carry the correlation id of the oldest request in flight
(the broker processes one request per connection at a time). Anything else
— an unknown id, a frame with nothing in flight, a frame whose declared size
is negative or over ``max_response_size``, bytes that do not decode — is a
protocol error: the connection goes to ``CLOSED`` and every request on it
fails. Correlation ids count up from 0 and wrap to 0 at 2**31 (they are
int32 on the wire and Kafka only compares them for equality).

Time. Each request has a deadline (``request_timeout_ms`` or the caller's
``timeout_ms``, from the call). A queued request that expires fails alone;
an in-flight one that expires fails and closes the connection, because its
response may still arrive and would then be matched to the wrong request
(the Java client's NetworkClient does the same). Until ``READY`` the whole
setup (TCP connect, ApiVersions, authentication) must finish by the setup
deadline. After a response with ``throttle_time_ms > 0`` nothing more is
written until the throttle ends: since KIP-219 (Kafka 2.0) brokers answer
at once and expect the client to hold back. The throttle is a broker-supplied
number, so it is capped at :data:`MAX_THROTTLE_MS` (one answer with
``2**31-1`` must not mute the connection for 24 days); a queued request
that expires while the connection is throttled fails with a timeout and
closes the connection, so its owner replaces it with a fresh, unthrottled
one (the Java client caps nothing but recycles idle connections after
``connections.max.idle.ms``).

Completions. Callbacks are never called from inside this class: finished
requests are appended to ``completions`` as ``(callback, response, error)``
and the owner runs them, so that it can update its own state first.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import attrs

from kproto import __version__
from kproto.errors import (
    Cancelled,
    IllegalArgumentError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaProtocolError,
    KafkaTimeoutError,
    UnsupportedVersionError,
    error_from_code,
    fresh_error,
)
from kproto.events import ClientEvent, RequestCompleted, RequestWritten
from kproto.protocol.headers import decode_response_header, read_frame, write_request
from kproto.protocol.message import Request, Response
from kproto.protocol.messages import REQUEST_TYPES, RESPONSE_TYPES, ApiVersionsRequest, ApiVersionsResponse
from kproto.protocol.versions import max_version

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "MAX_THROTTLE_MS",
    "Authenticator",
    "BrokerConnection",
    "Callback",
    "ResponseCallback",
    "ConnectionConfig",
    "ConnectionState",
]

#: Bound on a response frame's declared size, checked before buffering it.
#: 100 MiB: twice the largest response the default settings ask for (a Fetch
#: is bounded by ``fetch_max_bytes`` = 50 MiB, plus a little framing), and
#: small enough that a peer that is not a Kafka broker (a TLS alert, "HTTP"
#: read as a size is 1.2 GB) is caught at once instead of buffering forever.
DEFAULT_MAX_RESPONSE_SIZE = 100 * 1024 * 1024

#: Bound on one broker-requested throttle (KIP-219), in ms. Kafka measures quota
#: use over ``quota.window.num`` x ``quota.window.size.seconds`` (11 x 1 s by
#: default), so a real throttle is seconds long; 30 s (the default
#: ``request_timeout_ms``) leaves room for large quota windows while a broken or
#: hostile broker cannot mute a connection for longer. It is not capped at the
#: request timeout: Kafka mutes the channel on its side for the throttle too, so
#: writing earlier gains nothing; a request whose deadline falls inside the
#: throttle times out and the connection is replaced instead.
MAX_THROTTLE_MS = 30_000

#: Correlation ids are int32 on the wire; we count 0..2**31-1 and wrap to 0.
CORRELATION_ID_LIMIT = 2**31

#: Frames at least this large are handed over in the receive buffer instead of
#: copied out of it (below it, a copy is cheaper than a new buffer per frame).
_DETACH_MIN = 256 * 1024

_UNSUPPORTED_VERSION = UnsupportedVersionError.errno
_API_VERSIONS_KEY = ApiVersionsRequest.API_KEY
#: The error code that starts every ApiVersions response body.
_ERROR_CODE = struct.Struct(">h")

#: DEBUG records of tolerated oddities (trailing bytes). Logging is the one side
#: effect the core allows itself, as aioquic's connection does; nothing above DEBUG.
logger = logging.getLogger(__name__)

R = TypeVar("R", bound=Response)
#: ``callback(response, None)`` or ``callback(None, error)``, called exactly once;
#: ``R`` is the response type of the request sent (``ResponseCallback[FetchResponse]``).
ResponseCallback = Callable[[R | None, "KafkaError | None"], None]
#: A callback as stored with its request, whatever its response type. ``Any``
#: because a ``Callable[[FetchResponse | None, ...]]`` is not a
#: ``Callable[[Response | None, ...]]`` (parameters are contravariant); the
#: generic ``send`` signatures pair each callback with its own request's response.
Callback = Callable[[Any, "KafkaError | None"], None]
#: A finished request: the callback and what to call it with.
Completion = tuple[Callback, "Response | None", "KafkaError | None"]


class ConnectionState(enum.Enum):
    """Where a connection is in its lifecycle (see the module docstring)."""

    WAITING = "waiting"
    CONNECTING = "connecting"
    TUNNEL = "tunnel"
    API_VERSIONS = "api_versions"
    AUTHENTICATING = "authenticating"
    READY = "ready"
    CLOSED = "closed"


class _Input(enum.Enum):
    START_CONNECT = "start_connect"
    CONNECTION_MADE = "connection_made"
    TUNNEL_START = "tunnel_start"
    TUNNEL_OPEN = "tunnel_open"
    VERSIONS_OK = "versions_ok"
    AUTH_DONE = "auth_done"
    CLOSE = "close"


_S = ConnectionState
_I = _Input
#: (state, input) -> next state. Anything not listed is illegal.
_TRANSITIONS: dict[tuple[ConnectionState, _Input], ConnectionState] = {
    (_S.WAITING, _I.START_CONNECT): _S.CONNECTING,
    (_S.CONNECTING, _I.CONNECTION_MADE): _S.API_VERSIONS,
    (_S.CONNECTING, _I.TUNNEL_START): _S.TUNNEL,
    (_S.TUNNEL, _I.TUNNEL_OPEN): _S.API_VERSIONS,
    (_S.API_VERSIONS, _I.VERSIONS_OK): _S.AUTHENTICATING,
    (_S.AUTHENTICATING, _I.AUTH_DONE): _S.READY,
    # Every state but CLOSED may close.
    **{(s, _I.CLOSE): _S.CLOSED for s in _S if s is not _S.CLOSED},
}

#: States in which the transport is open (bytes may flow).
_OPEN_STATES = frozenset({_S.TUNNEL, _S.API_VERSIONS, _S.AUTHENTICATING, _S.READY})


@attrs.frozen(kw_only=True)
class ConnectionConfig:
    """Settings of one broker connection (the client builds it from ClientConfig)."""

    #: Sent in every request header.
    client_id: str | None = "kproto"
    #: Deadline of a request, counted from the ``send`` call.
    request_timeout_ms: int = 30000
    #: Requests awaiting a response at once (the Java default, 5).
    max_in_flight_requests_per_connection: int = 5
    #: Bound on a response frame's declared size.
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE
    #: TCP connect + ApiVersions + authentication must finish within this.
    connection_setup_timeout_ms: int = 10000
    #: ``api_key -> highest version`` of the broker release the user named
    #: (``api_version``); applied on top of the negotiated range. None: no caps.
    version_caps: Mapping[int, int] | None = None
    #: KIP-511 client software name (``[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?``).
    client_software_name: str = "kproto"
    #: KIP-511 client software version (same pattern).
    client_software_version: str = __version__


class Authenticator(Protocol):
    """The authentication step between ApiVersions and READY (SASL plugs in here).

    :meth:`start` is called once the broker's API versions are known. The
    authenticator sends its requests with
    :meth:`BrokerConnection.send_handshake_request` and finishes with
    :meth:`BrokerConnection.authentication_done`.
    """

    def start(self, connection: BrokerConnection, now: float) -> None:
        """Begin authenticating on ``connection``."""


class Tunnel(Protocol):
    """A handshake with a proxy on a new transport, before any Kafka byte (``TUNNEL``)."""

    @property
    def done(self) -> bool:
        """The tunnel is open."""

    def data_to_send(self) -> bytes:
        """Bytes to write to the proxy, drained."""

    def receive_data(self, data: bytes) -> None:
        """The proxy's bytes; raises a KafkaError when the handshake fails."""


@attrs.define(eq=False, weakref_slot=False)
class _Request:
    """A request from ``send`` until it completes (hot path: slotted, no validators)."""

    request: Request[Response]
    callback: Callback
    deadline: float
    max_version: int | None
    expect_response: bool
    handshake: bool
    correlation_id: int = -1
    version: int = -1
    written_at: float = 0.0
    size: int = 0


class BrokerConnection:
    """The protocol state of one connection to one broker; see the module docstring.

    Args:
        node_id: The owner's name for this connection.
        host: Where it goes (for messages and events).
        port: Where it goes.
        config: Connection settings.
        now: Current time; the setup deadline starts at :meth:`start_connect`.
        authenticator: Run between ApiVersions and READY, or None.
        first_correlation_id: Where correlation ids start (tests use it to cross the wrap).
        api_versions_version: The ApiVersions version to ask first (None: the
            newest). The client passes what the last connection to the node
            settled on, so a broker that refuses newer ones is not asked again.
        tunnel: A proxy handshake to run once the transport is open (``TUNNEL``).
    """

    def __init__(
        self,
        node_id: int,
        host: str,
        port: int,
        *,
        config: ConnectionConfig,
        now: float,
        authenticator: Authenticator | None = None,
        first_correlation_id: int = 0,
        api_versions_version: int | None = None,
        tunnel: Tunnel | None = None,
    ) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.config = config
        self.state = ConnectionState.WAITING
        #: Why the connection closed (None while open or when closed on purpose).
        self.error: KafkaError | None = None
        #: True when the owner must tell the driver to close the transport.
        self.needs_close_command = False
        #: Finished requests for the owner to call back, oldest first.
        self.completions: list[Completion] = []
        #: ``api_key -> (min, max)`` as the broker advertised them.
        self.broker_versions: dict[int, tuple[int, int]] = {}
        #: ``api_key -> (lowest, highest)`` both sides support, filled on first use.
        self._ranges: dict[int, tuple[int, int]] = {}
        self._authenticator = authenticator
        self._tunnel = tunnel
        self._queue: deque[_Request] = deque()
        self._in_flight: deque[_Request] = deque()
        self._sent_no_response: list[_Request] = []
        self._out = bytearray()
        self._rbuf = bytearray()
        self._next_correlation_id = first_correlation_id % CORRELATION_ID_LIMIT
        self._setup_deadline: float | None = None
        self._setup_timeout_ms = config.connection_setup_timeout_ms
        self._throttle_until = 0.0
        #: The ApiVersions version asked (lowered when the broker refuses one, KIP-511).
        top = ApiVersionsRequest.MAX_VERSION
        if config.version_caps is not None:
            top = min(top, config.version_caps.get(_API_VERSIONS_KEY, top))
        self.api_versions_version = top if api_versions_version is None else max(0, min(api_versions_version, top))
        #: Responses accepted with bytes after the fields this client knows.
        self.responses_with_trailing_bytes = 0
        #: ``api_key -> version`` of the latest request of each API written here.
        self.versions_sent: dict[int, int] = {}
        #: 0 (default): nothing measured; 1: every response read adds a ``RequestCompleted``
        #: event to :attr:`observed`; 2: every request written a ``RequestWritten`` too.
        self.observe = 0
        #: Those events, for the owner to drain (:meth:`hand_over`).
        self.observed: list[RequestWritten | RequestCompleted] = []
        self._now = now

    # --- introspection ------------------------------------------------------

    def __repr__(self) -> str:
        return f"<BrokerConnection node={self.node_id} {self.host}:{self.port} {self.state.value}>"

    @property
    def is_open(self) -> bool:
        """The transport is open: the driver may exchange bytes on it."""
        return self.state in _OPEN_STATES

    @property
    def now(self) -> float:
        """The ``now`` of the latest driving input (callbacks run inside it carry none of their own)."""
        return self._now

    @property
    def in_flight_count(self) -> int:
        """Requests written and awaiting a response."""
        return len(self._in_flight)

    @property
    def queued_count(self) -> int:
        """Requests waiting to be written."""
        return len(self._queue)

    @property
    def throttled_until(self) -> float:
        """Time before which nothing is written (KIP-219); 0 when not throttled."""
        return self._throttle_until

    def is_ready(self, now: float) -> bool:
        """READY, not throttled, and below the in-flight limit."""
        return (
            self.state is ConnectionState.READY
            and now >= self._throttle_until
            and len(self._in_flight) < self.config.max_in_flight_requests_per_connection
        )

    def api_version(self, api_key: int, max_version: int | None = None) -> int | None:
        """The version to use for ``api_key``: None if unknown yet or no overlap.

        The highest version both sides support: the broker's range from
        ApiVersions and kproto's (the generated range, lowered by
        :data:`kproto.protocol.versions.VERSION_CAPS`), at most ``max_version``.
        """
        rng = self._ranges.get(api_key)
        if rng is None:
            rng = self._ranges[api_key] = self._common_range(api_key)
        lo, hi = rng
        if max_version is not None and max_version < hi:
            hi = max_version
        return hi if hi >= lo else None

    def hand_over(self, completions: deque[Completion], events: list[ClientEvent]) -> None:
        """Move the finished requests and the per-request events (:attr:`observe`) to the owner's queues."""
        if self.completions:
            completions.extend(self.completions)
            self.completions.clear()
        if self.observed:
            events.extend(self.observed)
            self.observed.clear()

    def negotiated_versions(self) -> Mapping[int, int]:
        """``api_key -> version`` for every API both sides support (after ApiVersions).

        Worked out on first read (see :class:`_NegotiatedVersions`).
        """
        return _NegotiatedVersions(self)

    def _negotiated(self) -> dict[int, int]:
        return {k: v for k in self.broker_versions if (v := self.api_version(k)) is not None}

    def _common_range(self, api_key: int) -> tuple[int, int]:
        """``(lowest, highest)`` version both sides support; empty (-1, -2) when none."""
        cls = REQUEST_TYPES.get(api_key)
        theirs = self.broker_versions.get(api_key)
        if cls is None or theirs is None:
            return (-1, -2)
        hi = min(max_version(cls), theirs[1])
        caps = self.config.version_caps
        if caps is not None:
            # kafka-python's api_version: nothing above what that release has (-1: an API it lacks).
            hi = min(hi, caps.get(api_key, -1))
        return (max(cls.MIN_VERSION, theirs[0]), hi)

    # --- transitions ----------------------------------------------------------

    def _transition(self, event: _Input) -> None:
        try:
            self.state = _TRANSITIONS[self.state, event]
        except KeyError:
            raise IllegalStateError(
                f"node {self.node_id}: cannot {event.value} in state {self.state.value}"
            ) from None

    def start_connect(self, now: float, *, setup_timeout_ms: int | None = None) -> None:
        """The owner issued ``Connect``; the setup deadline starts now.

        Args:
            now: Current time.
            setup_timeout_ms: This attempt's setup timeout (the client grows it
                per failed attempt, KIP-601); None: ``connection_setup_timeout_ms``.
        """
        self._transition(_I.START_CONNECT)
        self._now = now
        if setup_timeout_ms is None:
            setup_timeout_ms = self.config.connection_setup_timeout_ms
        self._setup_timeout_ms = setup_timeout_ms
        self._setup_deadline = now + setup_timeout_ms / 1000

    def connection_made(self, now: float) -> None:
        """The transport is open: start the tunnel, or send ApiVersions (KIP-511 fields from v3)."""
        self._now = now
        if self._tunnel is not None:
            self._transition(_I.TUNNEL_START)
            self._out += self._tunnel.data_to_send()
            return
        self._transition(_I.CONNECTION_MADE)
        self._send_api_versions(now)

    def _tunnel_data(self, data: bytes, now: float) -> None:
        """The proxy's bytes while ``TUNNEL``: on to ApiVersions once it is open."""
        assert self._tunnel is not None
        try:
            self._tunnel.receive_data(data)
        except KafkaError as exc:
            self._fail(exc, now)
            return
        self._out += self._tunnel.data_to_send()
        if self._tunnel.done:
            self._transition(_I.TUNNEL_OPEN)
            self._send_api_versions(now)

    def connection_lost(self, exc: BaseException | None, now: float) -> None:
        """The transport closed under us; fail everything."""
        if self.state is ConnectionState.CLOSED:
            return
        detail = f": {exc}" if exc is not None else ""
        if self.state is ConnectionState.CONNECTING:
            msg = f"could not connect to node {self.node_id} ({self.host}:{self.port}){detail}"
        else:
            msg = f"connection to node {self.node_id} ({self.host}:{self.port}) lost{detail}"
        error = KafkaConnectionError(msg)
        if isinstance(exc, BaseException):
            error.__cause__ = exc
        self._fail(error, now, close_transport=False)

    def close(self, error: KafkaError | None, now: float) -> None:
        """Close on the owner's behalf; pending requests fail with ``error`` (Cancelled if None)."""
        if self.state is ConnectionState.CLOSED:
            return
        was_open = self.state in _OPEN_STATES or self.state is ConnectionState.CONNECTING
        self._fail_all(error if error is not None else Cancelled(f"connection to node {self.node_id} closed"))
        self._transition(_I.CLOSE)
        self.error = error
        self.needs_close_command = was_open
        self._now = now

    def _fail(
        self,
        error: KafkaError,
        now: float,
        *,
        close_transport: bool = True,
        culprit: _Request | None = None,
        culprit_error: KafkaError | None = None,
    ) -> None:
        """Go to CLOSED because of ``error``; every pending request fails."""
        if self.state is ConnectionState.CLOSED:
            return
        was_connected = self.state is not ConnectionState.WAITING
        if culprit is not None and culprit_error is not None:
            if culprit in self._in_flight:
                self._in_flight.remove(culprit)
            self._complete(culprit, None, culprit_error)
        self._fail_all(error)
        self._transition(_I.CLOSE)
        self.error = error
        self.needs_close_command = close_transport and was_connected
        self._now = now

    def _fail_all(self, error: KafkaError) -> None:
        pending = [*self._in_flight, *self._sent_no_response, *self._queue]
        self._in_flight.clear()
        self._sent_no_response.clear()
        self._queue.clear()
        self._out.clear()
        self._rbuf.clear()
        for req in pending:
            err = fresh_error(error)
            self._complete(req, None, err)

    def _complete(self, req: _Request, response: Response | None, error: KafkaError | None) -> None:
        self.completions.append((req.callback, response, error))

    # --- requests -----------------------------------------------------------

    def send(
        self,
        request: Request[R],
        *,
        callback: ResponseCallback[R],
        now: float,
        max_version: int | None = None,
        expect_response: bool = True,
        timeout_ms: int | None = None,
    ) -> None:
        """Queue ``request``; it is written as soon as the connection allows.

        Raises:
            IllegalStateError: the connection is closed.
            IllegalArgumentError: ``timeout_ms`` is negative.
        """
        if self.state is ConnectionState.CLOSED:
            raise IllegalStateError(f"node {self.node_id}: connection is closed")
        if timeout_ms is None:
            timeout_ms = self.config.request_timeout_ms
        elif timeout_ms < 0:
            raise IllegalArgumentError(f"timeout_ms must be >= 0, got {timeout_ms}")
        self._now = now
        req = _Request(request, callback, now + timeout_ms / 1000, max_version, expect_response, False)
        self._queue.append(req)
        self._pump(now)

    def send_handshake_request(
        self,
        request: Request[R],
        *,
        callback: ResponseCallback[R],
        now: float,
        max_version: int | None = None,
    ) -> None:
        """Write a request before READY (for an :class:`Authenticator`).

        The request bypasses the queue and the in-flight limit; the setup
        deadline bounds it.
        """
        if self.state is not ConnectionState.AUTHENTICATING:
            raise IllegalStateError(f"node {self.node_id}: handshake requests only while authenticating")
        req = _Request(request, callback, float("inf"), max_version, True, True)
        version = self.api_version(request.API_KEY, max_version)
        if version is None:
            self._complete(req, None, self._unsupported(request))
            return
        self._write(req, version)

    def authentication_done(self, error: KafkaError | None, now: float) -> None:
        """The authenticator finished: READY, or closed with ``error``."""
        if self.state is ConnectionState.CLOSED:
            return  # it failed meanwhile (timeout, lost); the authenticator saw the error
        if self.state is not ConnectionState.AUTHENTICATING:
            raise IllegalStateError(f"node {self.node_id}: not authenticating")
        if error is not None:
            self._fail(error, now)
            return
        self._transition(_I.AUTH_DONE)
        self._setup_deadline = None
        self._pump(now)

    def _unsupported(self, request: Request[Response]) -> UnsupportedVersionError:
        theirs = self.broker_versions.get(request.API_KEY)
        ours = f"{request.MIN_VERSION}-{max_version(type(request))}"
        where = f"{theirs[0]}-{theirs[1]}" if theirs else "none"
        return UnsupportedVersionError(
            f"node {self.node_id} supports {type(request).__name__} versions {where}; kproto supports {ours}"
        )

    def _pump(self, now: float) -> None:
        """Write queued requests while READY, unthrottled and under the in-flight limit."""
        if self.state is not ConnectionState.READY or not self._queue:
            return
        if now < self._throttle_until:
            return
        limit = self.config.max_in_flight_requests_per_connection
        queue = self._queue
        while queue and len(self._in_flight) < limit:
            req = queue.popleft()
            request = req.request
            version = self.api_version(request.API_KEY, req.max_version)
            if version is None:
                self._complete(req, None, self._unsupported(request))
                continue
            self._write(req, version)

    def _write(self, req: _Request, version: int) -> None:
        req.version = version
        req.correlation_id = cid = self._next_correlation_id
        out = self._out
        start = len(out)
        try:
            write_request(out, req.request, version, cid, self.config.client_id)
        except KafkaError as exc:
            del out[start:]
            self._complete(req, None, exc)
            return
        except Exception as exc:  # a field the caller set to a value the codec rejects
            del out[start:]
            err = IllegalArgumentError(f"cannot encode {type(req.request).__name__} v{version}: {exc}")
            err.__cause__ = exc
            self._complete(req, None, err)
            return
        self._next_correlation_id = (cid + 1) % CORRELATION_ID_LIMIT
        self.versions_sent[req.request.API_KEY] = version
        if self.observe:
            req.written_at = self._now
            req.size = size = len(out) - start
            if self.observe > 1:
                self.observed.append(RequestWritten(node_id=self.node_id, api_key=req.request.API_KEY,
                                                    api_version=version, request_bytes=size))
        if req.expect_response:
            self._in_flight.append(req)
        else:
            self._sent_no_response.append(req)

    def data_to_send(self) -> bytes:
        """Bytes to write, drained; requests that expect no response complete here."""
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        if self._sent_no_response:
            for req in self._sent_no_response:
                self._complete(req, None, None)
            self._sent_no_response.clear()
        return data

    # --- the handshake ----------------------------------------------------------

    def _send_api_versions(self, now: float) -> None:
        req = _Request(
            ApiVersionsRequest(
                client_software_name=self.config.client_software_name,
                client_software_version=self.config.client_software_version,
            ),
            self._on_api_versions,
            float("inf"),
            None,
            True,
            True,
        )
        self._write(req, self.api_versions_version)

    def _on_api_versions(self, response: ApiVersionsResponse | None, error: KafkaError | None) -> None:
        # Called synchronously from _handle_frame (handshake requests bypass `completions`).
        now = self._now
        if error is not None:  # the connection failed; _fail already reported it
            return
        assert isinstance(response, ApiVersionsResponse)
        if response.error_code != 0:
            self._fail(error_from_code(response.error_code, f"ApiVersions from node {self.node_id}"), now)
            return
        self.broker_versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        self._ranges.clear()
        self._note_throttle(response, now)
        self._transition(_I.VERSIONS_OK)
        if self._authenticator is not None:
            self._authenticator.start(self, now)
        else:
            self.authentication_done(None, now)

    # --- inputs ------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Parse whole frames out of ``data`` (any split) and match them to requests.

        Raises:
            IllegalStateError: the transport is not open (a driver bug).
        """
        if self.state not in _OPEN_STATES:
            raise IllegalStateError(f"node {self.node_id}: data received in state {self.state.value}")
        self._now = now
        if not data:
            return
        if self.state is ConnectionState.TUNNEL:
            self._tunnel_data(data, now)
            return
        max_size = self.config.max_response_size
        if self._rbuf or type(data) is not bytes:
            # A partial frame is pending, or ``data`` is a buffer the driver may
            # reuse: append (amortised O(len(data))) and parse.
            # Frames are copied out of the buffer because decoded ``records`` fields
            # are views of the frame and must outlive the buffer's next resize;
            # a large first frame takes the buffer itself instead (no second copy).
            self._rbuf += data
            first = self._detach_first_frame(max_size)
            buf = self._rbuf
            with memoryview(buf) as view:
                frames, pos, bad = _split(view, max_size, copy=True)
            if bad is None:
                del buf[:pos]
            if first is not None:
                frames.insert(0, first)
        else:
            # Nothing pending: frames are zero-copy views of the immutable ``data``.
            view = memoryview(data)
            frames, pos, bad = _split(view, max_size, copy=False)
            if bad is None and pos < len(data):
                self._rbuf += view[pos:]
        for frame in frames:
            self._handle_frame(frame, now)
            if self.state is ConnectionState.CLOSED:
                return
        if bad is not None:
            self._protocol_error(f"bad frame from node {self.node_id}: {bad}", now)
            return
        self._pump(now)

    def _detach_first_frame(self, max_size: int) -> memoryview | None:
        """Hand over the receive buffer as the frame it starts with, if that is whole and large.

        A frame just under the size cap would otherwise exist twice (the buffer
        and the frame copied out of it). The buffer is cut to the frame in place
        (dropping a bytearray's head is O(1)); what follows moves to a new buffer.
        """
        buf = self._rbuf
        if len(buf) < _DETACH_MIN:
            return None
        size = int.from_bytes(buf[:4], "big", signed=True)
        end = 4 + size
        if size < _DETACH_MIN or size > max_size or end > len(buf):
            return None  # small, bad (reported by _split) or not whole yet
        self._rbuf = buf[end:]
        del buf[end:]
        del buf[:4]
        return memoryview(buf)

    def _protocol_error(self, message: str, now: float, culprit: _Request | None = None) -> None:
        error = KafkaProtocolError(message)
        self._fail(
            error, now, culprit=culprit, culprit_error=KafkaProtocolError(message) if culprit else None
        )

    def _handle_frame(self, frame: memoryview, now: float) -> None:
        if not self._in_flight:
            self._protocol_error(f"node {self.node_id} sent a response with no request in flight", now)
            return
        req = self._in_flight[0]
        api_key = req.request.API_KEY
        try:
            correlation_id, pos = decode_response_header(frame, api_key, req.version)
        except KafkaError as exc:
            self._protocol_error(f"bad response header from node {self.node_id}: {exc}", now)
            return
        if correlation_id != req.correlation_id:
            self._protocol_error(
                f"node {self.node_id} answered correlation id {correlation_id}, "
                f"expected {req.correlation_id} (the oldest in flight)",
                now,
            )
            return
        self._in_flight.popleft()
        version = req.version
        if req.handshake and api_key == _API_VERSIONS_KEY:
            self._api_versions_frame(frame, pos, now)
            return
        response_type = RESPONSE_TYPES[api_key]
        try:
            response, end = response_type.read(frame, pos, version)
        except KafkaError as exc:
            self._protocol_error(
                f"bad {response_type.__name__} v{version} from node {self.node_id}: {exc}", now, culprit=req
            )
            return
        if end != len(frame):
            # Bytes after the fields this version defines: read what we know and
            # ignore the rest, as the Java client and librdkafka do (a broker may
            # write fields of a newer layout). Truncation is still an error above.
            self.responses_with_trailing_bytes += 1
            logger.debug("%s v%d from node %s: %d bytes after the known fields ignored",
                         response_type.__name__, version, self.node_id, len(frame) - end)
        self._note_throttle(response, now)
        if self.observe:
            self.observed.append(RequestCompleted(
                node_id=self.node_id, api_key=api_key, api_version=version, request_bytes=req.size,
                response_bytes=len(frame) + 4, latency=now - req.written_at,
                throttle_ms=getattr(response, "throttle_time_ms", 0),
            ))
        self._complete(req, response, None)

    def _read_api_versions(self, frame: memoryview, pos: int) -> ApiVersionsResponse | None:
        """The ApiVersions body read at the version asked, else as v0 (None if neither).

        Java's ``ApiVersionsResponse.parse`` does the same: a broker that does
        not know the version asked answers with a v0 body (KIP-511), whatever
        its error code.
        """
        for version in dict.fromkeys((self.api_versions_version, 0)):
            try:
                body, end = ApiVersionsResponse.read(frame, pos, version)
            except KafkaError:
                continue
            if end != len(frame):
                self.responses_with_trailing_bytes += 1
                logger.debug("ApiVersionsResponse v%d from node %s: %d bytes after the known fields ignored",
                             version, self.node_id, len(frame) - end)
            return body
        return None

    def _api_versions_frame(self, frame: memoryview, pos: int, now: float) -> None:
        """The handshake's ApiVersions answer: versions known, a retry lower, or a protocol error."""
        response = self._read_api_versions(frame, pos)
        refused = len(frame) - pos >= 2 and _ERROR_CODE.unpack_from(frame, pos)[0] == _UNSUPPORTED_VERSION
        if refused:
            offered = None
            if response is not None:
                offered = next((k.max_version for k in response.api_keys if k.api_key == _API_VERSIONS_KEY), None)
            self._api_versions_refused(offered, now)
        elif response is None:
            self._protocol_error(
                f"bad ApiVersionsResponse v{self.api_versions_version} (nor v0) from node {self.node_id}", now
            )
        else:
            self._on_api_versions(response, None)

    def _api_versions_refused(self, offered: int | None, now: float) -> None:
        """ApiVersions answered UNSUPPORTED_VERSION: ask again at a lower version.

        KIP-511: the broker answers a version it does not know with a v0 body
        that lists its own ApiVersions range, ``offered`` is its highest
        ApiVersions version (None: the body did not parse or did not say).
        A missing range, or one that does not go below what was asked, still
        means "lower": ask v0 (Java and librdkafka fall back to v0). Each retry
        asks a strictly lower version, so this ends; a refused v0 closes the
        connection.
        """
        asked = self.api_versions_version
        if asked == 0:
            self._fail(UnsupportedVersionError(f"node {self.node_id} rejected ApiVersions v0"), now)
            return
        self.api_versions_version = offered if offered is not None and 0 <= offered < asked else 0
        self._send_api_versions(now)

    def _note_throttle(self, response: Response, now: float) -> None:
        throttle_ms: int = getattr(response, "throttle_time_ms", 0)
        if throttle_ms > 0:
            throttle_ms = min(throttle_ms, MAX_THROTTLE_MS)
            self._throttle_until = max(self._throttle_until, now + throttle_ms / 1000)

    def handle_timer(self, now: float) -> None:
        """Expire requests and the setup deadline; resume after a throttle."""
        self._now = now
        if self.state is ConnectionState.CLOSED:
            return
        if self._setup_deadline is not None and now >= self._setup_deadline:
            self._fail(
                KafkaConnectionError(
                    f"node {self.node_id} ({self.host}:{self.port}): connection setup did not finish within "
                    f"{self._setup_timeout_ms} ms"
                ),
                now,
            )
            return
        for req in self._in_flight:
            if now >= req.deadline:
                # Java NetworkClient: a request timeout disconnects, since the late
                # response would otherwise be matched to the next request.
                self._fail(
                    KafkaConnectionError(f"node {self.node_id}: closed after a request timed out"),
                    now,
                    culprit=req,
                    culprit_error=KafkaTimeoutError(
                        f"{type(req.request).__name__} to node {self.node_id} timed out"
                    ),
                )
                return
        if self._queue:
            expired = [r for r in self._queue if now >= r.deadline]
            if expired:
                throttled = now < self._throttle_until
                self._queue = deque(r for r in self._queue if now < r.deadline)
                for req in expired:
                    self._complete(
                        req,
                        None,
                        KafkaTimeoutError(
                            f"{type(req.request).__name__} to node {self.node_id} was not sent within its timeout"
                            + (" (the broker throttled the connection)" if throttled else "")
                        ),
                    )
                if throttled:
                    # The broker's throttle outlasted a request: replace the connection
                    # (a new one starts unthrottled) instead of letting it hold back more.
                    self._fail(
                        KafkaConnectionError(
                            f"node {self.node_id}: closed after its throttle outlasted a request's timeout"
                        ),
                        now,
                    )
                    return
        if self._throttle_until and now >= self._throttle_until:
            self._throttle_until = 0.0
        self._pump(now)

    def get_timer(self) -> float | None:
        """The earliest deadline: setup, a request, or the end of a throttle."""
        if self.state is ConnectionState.CLOSED:
            return None
        timer = self._setup_deadline
        for req in self._in_flight:
            if timer is None or req.deadline < timer:
                timer = req.deadline
        for req in self._queue:
            if timer is None or req.deadline < timer:
                timer = req.deadline
        # The end of a throttle is a deadline even with nothing queued: an upper
        # layer waiting for is_ready() must be woken when it ends.
        if self._throttle_until and (timer is None or self._throttle_until < timer):
            timer = self._throttle_until
        return timer


def _split(view: memoryview, max_size: int, *, copy: bool) -> tuple[list[memoryview], int, str | None]:
    """Cut whole frames off ``view``: ``(frames, end of the last one, error or None)``."""
    frames: list[memoryview] = []
    pos = 0
    while True:
        try:
            got = read_frame(view, pos, max_size)
        except KafkaError as exc:
            return frames, pos, str(exc)
        if got is None:
            return frames, pos, None
        frame, pos = got
        frames.append(memoryview(bytes(frame)) if copy else frame)


class _NegotiatedVersions(Mapping[int, int]):
    """A connection's ``api_key -> version`` map, worked out when first read.

    Each API's version needs its request class: reading them all would import
    every message module kproto has (admin, consumer group, fetch...) into a
    process that may only produce, thousands of objects the garbage collector
    then traverses in every full collection. ``NodeReady`` carries this; only
    a DEBUG log line or a hook reads it.
    """

    __slots__ = ("_conn", "_map")

    def __init__(self, conn: BrokerConnection) -> None:
        self._conn: BrokerConnection | None = conn
        self._map: dict[int, int] = {}

    def _versions(self) -> dict[int, int]:
        if self._conn is not None:
            self._map, self._conn = self._conn._negotiated(), None
        return self._map

    def __getitem__(self, api_key: int) -> int:
        return self._versions()[api_key]

    def __iter__(self) -> Iterator[int]:
        return iter(self._versions())

    def __len__(self) -> int:
        return len(self._versions())

    def __repr__(self) -> str:
        return repr(self._versions())

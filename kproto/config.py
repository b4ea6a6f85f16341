"""The options the producer and the consumer share, declared once.

:class:`CommonConfig` holds every option that kafka-python 3's
``KafkaProducer`` and ``KafkaConsumer`` both take (connections, metadata,
security, sockets, metrics), so one config dict serves both classes.
:class:`~kproto.producer.ProducerConfig` and
:class:`~kproto.consumer.ConsumerConfig` extend it with their own options, and
:meth:`CommonConfig.client_config` builds the :class:`kproto.client.ClientConfig`
the cluster client runs on (the one place the two are mapped).

kafka-python's own defaults are accepted as values (``client_id=None``,
``api_version='auto'``...) while kproto's defaults stay those of the spec.
Options that have no meaning for kproto (:data:`IGNORED_OPTIONS`) are
accepted with a warning, once per option and process, that names them.

The core imports no socket module, so the socket options (``socket_options``,
``send_buffer_bytes``, ``receive_buffer_bytes``, ``selector``,
``client_dns_lookup``) are only checked for shape here; the transports apply
them (``transports/_sockopts.py``).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs

from kproto.connection import DEFAULT_MAX_RESPONSE_SIZE, Authenticator
from kproto.errors import KafkaConfigurationError
from kproto.socks5 import ProxyAddress, parse_proxy_url

if TYPE_CHECKING:
    from kproto.sasl import GssapiContextFactory, TokenProvider

__all__ = [
    "DEFAULT_PORT",
    "DNS_LOOKUPS",
    "IGNORED_OPTIONS",
    "METADATA_RECOVERY_STRATEGIES",
    "SECURITY_PROTOCOLS",
    "ClientConfig",
    "ClusterOptions",
    "CommonConfig",
    "bad_option",
    "check_int",
    "parse_api_version",
    "parse_bootstrap",
]

#: Java's ``Integer.MAX_VALUE``.
MAX_INT: Final = 2**31 - 1
#: Java's ``Long.MAX_VALUE``, the bound of the options Java keeps as longs.
MAX_LONG: Final = 2**63 - 1
#: ``client_dns_lookup`` values (KIP-235, KIP-302; Java's names).
DNS_LOOKUPS: Final = ("use_all_dns_ips", "resolve_canonical_bootstrap_servers_only")
#: ``metadata_recovery_strategy`` values (KIP-899; Java's names, any case).
METADATA_RECOVERY_STRATEGIES: Final = ("none", "rebootstrap")
#: ``security_protocol`` values (Kafka's names, any case).
SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_RECOVERY_STRATEGIES: Final = METADATA_RECOVERY_STRATEGIES
_PROTOCOLS: Final = SECURITY_PROTOCOLS

#: kafka-python options kproto accepts and ignores, with the reason the warning gives.
IGNORED_OPTIONS: Final[Mapping[str, str]] = {
    "kafka_client": "kproto drives its own sans-I/O client core; there is no client class to swap",
}
_warned: set[str] = set()


def bad_option(name: str, value: object, allowed: str) -> KafkaConfigurationError:
    """The error for ``name=value``: names the option and what is allowed."""
    return KafkaConfigurationError(f"{name}={value!r} is not allowed: {name} must be {allowed}")


def check_int(name: str, value: object, minimum: int = 0, maximum: int = MAX_INT) -> None:
    """Raise :func:`bad_option` unless ``value`` is an int (not a bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise bad_option(name, value, f"an int in [{minimum}, {maximum}]")


def _optional_int(name: str, value: object, minimum: int = 0, maximum: int = MAX_LONG) -> None:
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise bad_option(name, value, f"None or an int in [{minimum}, {maximum}]")


def parse_api_version(value: object) -> tuple[int, ...] | None:
    """``api_version`` as kafka-python takes it -> a tuple of ints, or None to negotiate.

    None and ``'auto'`` negotiate (ApiVersions); ``(2, 8)``, ``(2, 8, 1)``,
    ``[2, 8]`` and the older string form ``'2.8'`` name a broker release.

    Raises:
        KafkaConfigurationError: anything else.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    parts: Sequence[object]
    if isinstance(value, str):
        parts = [int(p) if p.strip().isdigit() else p for p in value.split(".")]
    elif isinstance(value, (tuple, list)):
        parts = value
    else:
        parts = ()
    if not 2 <= len(parts) <= 4 or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in parts):
        raise bad_option("api_version", value, "None, 'auto' or a broker release such as (2, 8) or (3, 9, 1)")
    return tuple(p for p in parts if isinstance(p, int))


def _check_socket_options(value: object) -> None:
    if value is None:
        return
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(opt, (list, tuple))
        and len(opt) == 3
        and all(isinstance(x, int) and not isinstance(x, bool) for x in opt[:2])
        and isinstance(opt[2], (int, bytes))
        and not isinstance(opt[2], bool)
        for opt in value
    )
    if not ok:
        raise bad_option("socket_options", value, "None or a list of (level, option, int-or-bytes value) tuples")


#: Kafka's default listener port.
DEFAULT_PORT = 9092

def parse_bootstrap(servers: str | Sequence[str]) -> list[tuple[str, int]]:
    """Split ``bootstrap_servers`` into ``(host, port)`` pairs.

    Accepts ``"host"``, ``"host:port"``, ``"[v6::addr]:port"``, ``"[v6::addr]"``,
    a bare IPv6 literal without port, a comma-separated string, or a list of
    any of these. The default port is 9092.

    Raises:
        KafkaConfigurationError: an entry is empty or its port is not a number in 1..65535.
    """
    entries = servers.split(",") if isinstance(servers, str) else [e for s in servers for e in s.split(",")]
    out: list[tuple[str, int]] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        port_text: str | None
        if entry.startswith("["):
            close = entry.find("]")
            if close < 0:
                raise KafkaConfigurationError(f"bootstrap_servers entry {raw!r}: unclosed '['")
            host, rest = entry[1:close], entry[close + 1 :]
            if rest and not rest.startswith(":"):
                raise KafkaConfigurationError(f"bootstrap_servers entry {raw!r}: junk after ']'")
            port_text = rest[1:] if rest else None
        elif entry.count(":") > 1:
            host, port_text = entry, None  # a bare IPv6 literal has no room for a port
        elif ":" in entry:
            host, port_text = entry.split(":", 1)
        else:
            host, port_text = entry, None
        if not host:
            raise KafkaConfigurationError(f"bootstrap_servers entry {raw!r}: empty host")
        port = DEFAULT_PORT
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise KafkaConfigurationError(
                    f"bootstrap_servers entry {raw!r}: port {port_text!r} is not allowed: "
                    "a port must be an int in 1..65535"
                )
            port = int(port_text)
        out.append((host, port))
    if not out:
        raise KafkaConfigurationError("bootstrap_servers is empty")
    return out


@attrs.frozen(kw_only=True)
class ClusterOptions:
    """The options the cluster client reads, declared once.

    :class:`kproto.client.ClientConfig` (the core's, for embedders) and
    :class:`CommonConfig` (every facade's) both extend it, so a name, its
    default and its check exist in one place.
    """

    # --- the cluster ------------------------------------------------------------
    #: ``host[:port]`` or a list of them; the first cluster contact.
    bootstrap_servers: str | Sequence[str] = "localhost:9092"
    #: Sent in every request header; shows in broker logs and quotas (None: 'kproto').
    client_id: str = "kproto"
    #: How long a request waits for its answer before it counts as failed.
    request_timeout_ms: int = 30000
    #: Metadata is refreshed at least this often.
    metadata_max_age_ms: int = 300000
    #: Pause before a failed request (or batch) is tried again.
    retry_backoff_ms: int = 100
    #: First pause before reconnecting to a broker.
    reconnect_backoff_ms: int = 50
    #: Largest pause before reconnecting (exponential backoff cap).
    reconnect_backoff_max_ms: int = 1000
    #: Requests in flight per broker connection.
    max_in_flight_requests_per_connection: int = 5
    #: TCP connect plus handshake must finish within this (Java:
    #: socket.connection.setup.timeout.ms); doubles per consecutive failed
    #: attempt to a broker, up to ``socket_connection_setup_timeout_max_ms``.
    socket_connection_setup_timeout_ms: int = 10000
    #: Cap of the growing connection setup timeout (Java: socket.connection.setup.timeout.max.ms).
    socket_connection_setup_timeout_max_ms: int = 30000
    #: What to do when no broker from the metadata can be reached (KIP-899):
    #: 'rebootstrap' forgets the metadata brokers and starts again from
    #: ``bootstrap_servers`` (which the driver resolves again on ``Connect``);
    #: 'none' keeps retrying the known brokers for ever. The default is
    #: 'rebootstrap', as in Java since 4.0: it only acts when the client would
    #: otherwise be stuck for good (every known broker unreachable, or no
    #: metadata for ``metadata_recovery_rebootstrap_trigger_ms``), and the
    #: bootstrap list is the user's own statement of where the cluster is. A
    #: rebootstrap that reaches a cluster with another cluster id is refused.
    metadata_recovery_strategy: str = "rebootstrap"
    #: With 'rebootstrap': also re-bootstrap after this long without metadata (KIP-1102).
    metadata_recovery_rebootstrap_trigger_ms: int = 300000
    #: Let a Metadata request create topics that do not exist (broker permitting).
    allow_auto_create_topics: bool = True
    #: Close a connection with nothing in flight after this long without
    #: traffic (Java: connections.max.idle.ms; negative: never).
    connections_max_idle_ms: int = 540000
    #: A broker release such as ``(2, 8)``: no API is used above the version
    #: that release supports (kafka-python's meaning); None or 'auto' negotiate.
    api_version: tuple[int, ...] | None = None
    #: If no broker has answered this long after construction, waiting calls
    #: fail with ``NoBrokersAvailable`` (None: they wait their own timeouts).
    bootstrap_timeout_ms: int | None = None
    #: 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'.
    security_protocol: str = "PLAINTEXT"
    #: SASL options, used by the client's authenticator.
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = attrs.field(default=None, repr=False)
    sasl_plain_password: str | None = attrs.field(default=None, repr=False)
    sasl_oauth_token_provider: TokenProvider | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        self.check_cluster()

    def check_cluster(self) -> None:
        """Check the cluster options; raise KafkaConfigurationError naming the first bad one."""
        servers = self.bootstrap_servers
        if isinstance(servers, str):
            servers = [s for s in servers.split(",") if s.strip()]
        if not servers or not all(isinstance(s, str) and s.strip() for s in servers):
            raise bad_option("bootstrap_servers", self.bootstrap_servers, "a non-empty 'host[:port]' string or list")
        parse_bootstrap(self.bootstrap_servers)  # ports in 1..65535, hosts present: named errors
        if not isinstance(self.client_id, str):
            raise bad_option("client_id", self.client_id, "a str (or None for 'kproto')")
        check_int("request_timeout_ms", self.request_timeout_ms, 1)
        for name in (
            "metadata_max_age_ms",
            "retry_backoff_ms",
            "reconnect_backoff_ms",
            "reconnect_backoff_max_ms",
            "socket_connection_setup_timeout_ms",
            "socket_connection_setup_timeout_max_ms",
            "metadata_recovery_rebootstrap_trigger_ms",
        ):
            check_int(name, getattr(self, name), 0, MAX_LONG)
        check_int("max_in_flight_requests_per_connection", self.max_in_flight_requests_per_connection, 1)
        strategy = self.metadata_recovery_strategy
        if not isinstance(strategy, str) or strategy.lower() not in _RECOVERY_STRATEGIES:
            raise bad_option("metadata_recovery_strategy", strategy, "'none' or 'rebootstrap'")
        if not isinstance(self.allow_auto_create_topics, bool):
            raise bad_option("allow_auto_create_topics", self.allow_auto_create_topics, "True or False")
        check_int("connections_max_idle_ms", self.connections_max_idle_ms, -1, MAX_LONG)
        if self.api_version is not None and parse_api_version(self.api_version) != self.api_version:
            raise bad_option("api_version", self.api_version, "None or a tuple of ints such as (2, 8)")
        if self.api_version is not None:
            from kproto.protocol.release_versions import release_caps

            release_caps(self.api_version)  # a release kproto knows: named error otherwise
        _optional_int("bootstrap_timeout_ms", self.bootstrap_timeout_ms)
        if not isinstance(self.security_protocol, str) or self.security_protocol.upper() not in _PROTOCOLS:
            raise bad_option("security_protocol", self.security_protocol, "'" + "', '".join(_PROTOCOLS) + "'")


def _positive(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise KafkaConfigurationError(f"{attribute.name} must be > 0, got {value}")


def _optional_non_negative(_inst: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and value < 0:
        raise KafkaConfigurationError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class ClientConfig(ClusterOptions):
    """Settings of the cluster client: :class:`~kproto.config.ClusterOptions`
    (names, defaults and checks shared with the facades' configs) plus what
    only an embedder sets."""

    #: Former name of ``socket_connection_setup_timeout_ms``, kept for embedders;
    #: when set it wins.
    connection_setup_timeout_ms: int | None = attrs.field(default=None, validator=_optional_non_negative)
    #: Bound on a response frame's declared size (see ``kproto.connection``);
    #: the facades set it from ``receive_message_max_bytes``.
    max_response_size: int = attrs.field(default=DEFAULT_MAX_RESPONSE_SIZE, validator=_positive)
    #: ``factory(node_id, host, port)`` for the authentication step (SASL), or None.
    #: When None and ``security_protocol`` is SASL_*, the client builds a
    #: :class:`kproto.sasl.SaslAuthenticator` from the ``sasl_*`` options.
    authenticator: Callable[[int, str, int], Authenticator] | None = None
    #: SCRAM client nonce factory; None draws from the client's ``rng``.
    sasl_nonce_factory: Callable[[], str] | None = attrs.field(default=None, repr=False)
    #: GSSAPI (Kerberos): the broker's service name; the target principal is
    #: ``service@host`` (host: ``sasl_kerberos_domain_name`` or the broker's own).
    sasl_kerberos_service_name: str = "kafka"
    #: GSSAPI: the broker's service principal as a whole, instead of the two above.
    sasl_kerberos_name: str | None = None
    #: GSSAPI: the host part of the service principal, for every broker.
    sasl_kerberos_domain_name: str | None = None
    #: GSSAPI: ``factory(target) -> kproto.sasl.GssapiContext``; None uses the
    #: ``gssapi`` package (:mod:`kproto._gssapi`, the ``kproto[gssapi]`` extra).
    sasl_gssapi_context_factory: GssapiContextFactory | None = attrs.field(default=None, repr=False)
    #: ``socks5://[user:password@]host[:port]`` (or ``socks5h://``): every connection goes
    #: through this SOCKS5 proxy (:mod:`kproto.socks5`); None connects directly.
    #: PLAINTEXT and SASL_PLAINTEXT only (TLS would have to start after the tunnel).
    proxy_url: str | None = attrs.field(default=None, repr=False)
    #: kafka-python's former name of ``proxy_url``, used when ``proxy_url`` is None.
    socks5_proxy: str | None = attrs.field(default=None, repr=False)

    @property
    def proxy(self) -> ProxyAddress | None:
        """The parsed ``proxy_url`` (or ``socks5_proxy``), or None."""
        url = self.proxy_url if self.proxy_url is not None else self.socks5_proxy
        return None if url is None else parse_proxy_url(url)

    def __attrs_post_init__(self) -> None:
        self.check_cluster()
        if self.proxy is not None and self.security_protocol.upper() in ("SSL", "SASL_SSL"):
            # The transport runs TLS before the core sees the connection open, so the
            # SOCKS5 handshake (which must come first) cannot run inside the core then.
            raise KafkaConfigurationError(
                f"proxy_url is not allowed with security_protocol={self.security_protocol!r}: "
                "SOCKS5 works with PLAINTEXT and SASL_PLAINTEXT"
            )
        if self.security_protocol.upper().startswith("SASL_") and self.authenticator is None:
            from kproto.sasl import make_mechanism

            try:
                make_mechanism(
                    self.sasl_mechanism or "",
                    username=self.sasl_plain_username,
                    password=self.sasl_plain_password,
                    token_provider=self.sasl_oauth_token_provider,
                    nonce=lambda: "x",
                    # GSSAPI with the caller's own contexts: nothing to check before a connection.
                    check_only=self.sasl_gssapi_context_factory is None,
                )
            except ValueError as exc:
                raise KafkaConfigurationError(str(exc)) from None


@attrs.frozen(kw_only=True)
class CommonConfig(ClusterOptions):
    """Options every producer and consumer takes (the cluster's and the facades'); see the module docstring."""

    #: How ``from_kwargs`` names this class in an unknown-option error.
    _WHAT: ClassVar[str] = "client"

    #: Largest response frame accepted; a larger one closes its connection
    #: with a protocol error (None: kproto's cap, see ``client_config``).
    receive_message_max_bytes: int | None = None

    # --- sockets (applied by the transports) ------------------------------------------
    #: 'use_all_dns_ips' (try every address a name resolves to, in turn) or
    #: 'resolve_canonical_bootstrap_servers_only' (KIP-235: bootstrap names are
    #: replaced by their canonical names first).
    client_dns_lookup: str = "use_all_dns_ips"
    #: SO_SNDBUF for every broker socket (None or -1: the OS default).
    send_buffer_bytes: int | None = None
    #: SO_RCVBUF for every broker socket (None or -1: the OS default).
    receive_buffer_bytes: int | None = None
    #: ``[(level, option, value), ...]`` set on every broker socket; None: kproto's (TCP_NODELAY).
    socket_options: Sequence[tuple[int, int, int | bytes]] | None = None
    #: The sync transport's ``selectors.BaseSelector`` class (None: ``selectors.DefaultSelector``);
    #: kept for the transport (the core may not import ``selectors``).
    selector: Callable[[], object] | None = None
    #: SOCKS5 proxy ``socks5://[user:pass@]host:port`` (implemented by the proxy work).
    socks5_proxy: str | None = None
    #: Proxy URL, kafka-python 3's spelling of ``socks5_proxy``.
    proxy_url: str | None = None

    # --- security ------------------------------------------------------------
    #: TLS options, used by the transports (``transports/_tls.py``); ``ssl_context`` is an
    #: ``ssl.SSLContext`` the core only keeps for them (it may not import ``ssl``).
    ssl_context: object = None
    ssl_check_hostname: bool = True
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = attrs.field(default=None, repr=False)
    ssl_crlfile: str | None = None
    ssl_ciphers: str | None = None
    #: GSSAPI (Kerberos) names (implemented by the GSSAPI work).
    sasl_kerberos_service_name: str = "kafka"
    sasl_kerberos_name: str | None = None
    sasl_kerberos_domain_name: str | None = None

    # --- metrics (implemented by the metrics work) ---------------------------
    #: Record metrics; ``metrics()`` answers either way.
    metrics_enabled: bool = True
    #: Samples kept per metric.
    metrics_num_samples: int = 2
    #: Window of one sample.
    metrics_sample_window_ms: int = 30000
    #: Reporter classes, called with the metrics.
    metric_reporters: Sequence[object] = ()

    # --- no meaning for kproto ----------------------------------------------------
    #: kafka-python's network client class; accepted and ignored (see :data:`IGNORED_OPTIONS`).
    kafka_client: object = None

    def __attrs_post_init__(self) -> None:
        self.check_common()

    def check_common(self) -> None:
        """Check the shared options; raise KafkaConfigurationError naming the first bad one."""
        self.check_cluster()
        for name in ("ssl_check_hostname", "metrics_enabled"):
            if not isinstance(getattr(self, name), bool):
                raise bad_option(name, getattr(self, name), "True or False")
        _optional_int("receive_message_max_bytes", self.receive_message_max_bytes, 1, MAX_INT)
        if self.client_dns_lookup not in DNS_LOOKUPS:
            raise bad_option("client_dns_lookup", self.client_dns_lookup, " or ".join(map(repr, DNS_LOOKUPS)))
        for name in ("send_buffer_bytes", "receive_buffer_bytes"):
            _optional_int(name, getattr(self, name), -1, MAX_INT)
        _check_socket_options(self.socket_options)
        if self.selector is not None and not callable(self.selector):
            raise bad_option("selector", self.selector, "None or a selectors.BaseSelector subclass")
        for name in ("socks5_proxy", "proxy_url", "sasl_kerberos_domain_name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise bad_option(name, value, "None or a str")
        if not isinstance(self.sasl_kerberos_service_name, str) or not self.sasl_kerberos_service_name:
            raise bad_option("sasl_kerberos_service_name", self.sasl_kerberos_service_name, "a non-empty str")
        check_int("metrics_num_samples", self.metrics_num_samples, 1)
        check_int("metrics_sample_window_ms", self.metrics_sample_window_ms, 1, MAX_LONG)
        reporters = self.metric_reporters
        if isinstance(reporters, (str, bytes)) or not isinstance(reporters, Sequence):
            raise bad_option("metric_reporters", reporters, "a list of reporter classes")

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Every option name this config accepts."""
        return tuple(a.name for a in attrs.fields(cls))

    @classmethod
    def accept(cls, kwargs: Mapping[str, object]) -> dict[str, object]:
        """Check the names in ``kwargs`` and turn kafka-python's spellings into kproto's.

        ``client_id=None`` takes kproto's default, ``api_version='auto'`` is
        None, a string ``api_version`` a tuple; an option of
        :data:`IGNORED_OPTIONS` warns once (``UserWarning``) and is dropped
        before validation.

        Raises:
            TypeError: an unknown option; the message names the closest valid one.
            KafkaConfigurationError: a bad ``api_version``.
        """
        names = cls.option_names()
        for name in kwargs:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"unknown {cls._WHAT} option {name!r}{hint}")
        out: dict[str, Any] = dict(kwargs)  # user values: the constructor checks them
        if "client_id" in out and out["client_id"] is None:
            del out["client_id"]
        if "api_version" in out:
            out["api_version"] = parse_api_version(out["api_version"])
        for name in ("send_buffer_bytes", "receive_buffer_bytes"):
            if out.get(name) == -1:  # Java's "OS default"
                out[name] = None
        if isinstance(out.get("metric_reporters"), list):
            out["metric_reporters"] = tuple(out["metric_reporters"])
        for name, why in IGNORED_OPTIONS.items():
            if out.get(name) is not None:
                if name not in _warned:
                    _warned.add(name)
                    warnings.warn(f"{name} is accepted for kafka-python compatibility and ignored: {why}", UserWarning, stacklevel=4)
                del out[name]
        return out

    def max_response_size(self) -> int:
        """Bound on a response frame: ``receive_message_max_bytes``, or kproto's default."""
        from kproto.connection import DEFAULT_MAX_RESPONSE_SIZE

        return DEFAULT_MAX_RESPONSE_SIZE if self.receive_message_max_bytes is None else self.receive_message_max_bytes

    def client_config(self, **extra: object) -> ClientConfig:
        """The cluster client's config: every shared option ``ClientConfig`` has, plus ``extra``."""
        kwargs = {a.name: getattr(self, a.name) for a in attrs.fields(ClientConfig) if hasattr(self, a.name)}
        kwargs["max_response_size"] = self.max_response_size()
        kwargs.update(extra)
        return ClientConfig(**kwargs)

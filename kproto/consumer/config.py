"""Consumer configuration: every option of the spec, its default and its checks.

Names and defaults follow the kafka-python ``KafkaConsumer`` (the spec in
``shared/seed/kafka-client-api.txt``) plus the Java options a user of that
API expects (``isolation_level``, ``max_poll_interval_ms``, ...). Options
about connections are handed to :class:`kproto.client.ClientConfig` by
:meth:`ConsumerConfig.client_kwargs`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from kproto.connection import DEFAULT_MAX_RESPONSE_SIZE
from kproto.errors import KafkaConfigurationError

__all__ = ["ConsumerConfig", "Deserializer"]

_MAX_INT: Final = 2**31 - 1

#: ``deserializer(raw: bytes | None) -> object``.
Deserializer = Callable[[Any], Any]

_RESETS: Final = ("earliest", "latest", "none")
_ISOLATION: Final = ("read_uncommitted", "read_committed")
#: ``metadata_recovery_strategy`` values (KIP-899), as ``kproto.client.METADATA_RECOVERY_STRATEGIES``.
_RECOVERY_STRATEGIES: Final = ("none", "rebootstrap")
_MAX_LONG: Final = 2**63 - 1


def _bad(name: str, value: object, allowed: str) -> KafkaConfigurationError:
    return KafkaConfigurationError(f"{name}={value!r} is not allowed: {name} must be {allowed}")


def _int(name: str, value: object, minimum: int = 0, maximum: int = _MAX_INT) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _bad(name, value, f"an int in [{minimum}, {maximum}]")


@attrs.frozen(kw_only=True)
class ConsumerConfig:
    """Validated consumer options; build it with :meth:`from_kwargs` from user keywords."""

    #: ``host[:port]`` or a list of them; the first cluster contact.
    bootstrap_servers: str | Sequence[str] = "localhost:9092"
    #: Sent in every request header; shows in broker logs and quotas.
    client_id: str = "kproto"
    #: Consumer group for offset commits (and, later, group membership); None disables both.
    group_id: str | None = None
    #: Static membership id (KIP-345); only used with group membership.
    group_instance_id: str | None = None
    #: ``callable(raw_key) -> key``, or None to return bytes.
    key_deserializer: Deserializer | None = None
    #: ``callable(raw_value) -> value``, or None to return bytes.
    value_deserializer: Deserializer | None = None
    #: Where to start when there is no valid position: 'earliest', 'latest', or
    #: anything else ('none') to raise NoOffsetForPartitionError.
    auto_offset_reset: str = "latest"
    #: Commit consumed positions every ``auto_commit_interval_ms`` and on close.
    enable_auto_commit: bool = True
    #: Milliseconds between automatic commits.
    auto_commit_interval_ms: int = 5000
    #: Group session timeout (group membership).
    session_timeout_ms: int = 10000
    #: Heartbeat period (group membership); below ``session_timeout_ms``.
    heartbeat_interval_ms: int = 3000
    #: Assignor classes or names, in preference order (group membership).
    partition_assignment_strategy: Sequence[Any] = ("range", "roundrobin")
    #: Longest time between polls before the member leaves its group.
    max_poll_interval_ms: int = 300000
    #: How long the coordinator waits for members to rejoin in a rebalance (JoinGroup's
    #: RebalanceTimeoutMs); None: ``max_poll_interval_ms``, as the Java client. aiokafka's option.
    rebalance_timeout_ms: int | None = None
    #: Upper bound of records one ``poll`` returns.
    max_poll_records: int = 500
    #: The broker answers a Fetch once it has this many bytes (or the wait ends).
    fetch_min_bytes: int = 1
    #: Longest the broker waits to gather ``fetch_min_bytes``.
    fetch_max_wait_ms: int = 500
    #: Bound on one Fetch response, and on the bytes buffered per broker (KIP-74).
    fetch_max_bytes: int = 52428800
    #: Bound on one partition's data in a Fetch response.
    max_partition_fetch_bytes: int = 1048576
    #: 'read_uncommitted' or 'read_committed' (KIP-98: hides aborted transactions).
    isolation_level: str = "read_uncommitted"
    #: Verify the CRC of every record batch.
    check_crcs: bool = True
    #: Iteration stops after this many ms without a record (None: never).
    consumer_timeout_ms: float | None = None
    #: How long a request waits for its answer before it counts as failed.
    request_timeout_ms: int = 305000
    #: Metadata is refreshed at least this often.
    metadata_max_age_ms: int = 300000
    #: Pause before retrying a failed request.
    retry_backoff_ms: int = 100
    #: First pause before reconnecting to a broker.
    reconnect_backoff_ms: int = 50
    #: Longest pause between reconnect attempts (exponential backoff).
    reconnect_backoff_max_ms: int = 1000
    #: Requests in flight per broker connection.
    max_in_flight_requests_per_connection: int = 5
    #: TCP connect plus handshake must finish within this (Java:
    #: socket.connection.setup.timeout.ms); doubles per consecutive failed
    #: attempt to a broker, up to ``socket_connection_setup_timeout_max_ms``.
    socket_connection_setup_timeout_ms: int = 10000
    #: Cap of the growing connection setup timeout (Java: socket.connection.setup.timeout.max.ms).
    socket_connection_setup_timeout_max_ms: int = 30000
    #: 'rebootstrap' (default, as Java 4.0) or 'none': when no broker from the
    #: metadata can be reached, go back to ``bootstrap_servers`` (KIP-899).
    #: See :class:`kproto.client.ClientConfig` for why this default.
    metadata_recovery_strategy: str = "rebootstrap"
    #: With 'rebootstrap': also re-bootstrap after this long without metadata (KIP-1102).
    metadata_recovery_rebootstrap_trigger_ms: int = 300000
    #: Hide internal topics (``__consumer_offsets``...) from ``topics()``.
    exclude_internal_topics: bool = True
    #: Let a Metadata request create topics that do not exist.
    allow_auto_create_topics: bool = True
    #: Use incremental fetch sessions (KIP-227) when the broker supports them.
    enable_incremental_fetch_sessions: bool = True
    #: This consumer's rack, sent in Fetch (v11+) so a broker with a replica selector
    #: can point it at the closest replica (KIP-392); '' fetches from leaders only.
    client_rack: str = ""
    #: ``socks5://[user:password@]host[:port]``: connect through this SOCKS5 proxy
    #: (:mod:`kproto.socks5`); ``socks5_proxy`` is kafka-python's former name.
    proxy_url: str | None = attrs.field(default=None, repr=False)
    socks5_proxy: str | None = attrs.field(default=None, repr=False)
    #: Called as ``callback(offsets, error)`` after an automatic commit.
    default_offset_commit_callback: Callable[[Any, Any], Any] | None = None
    #: Close idle connections after this many ms.
    connections_max_idle_ms: int = 540000
    #: Client-reported version pin, e.g. ``(2, 8)``; None negotiates (ApiVersions).
    api_version: tuple[int, ...] | None = None
    #: 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'.
    security_protocol: str = "PLAINTEXT"
    #: TLS options, passed to the transport.
    ssl_context: Any = None
    ssl_check_hostname: bool = True
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = attrs.field(default=None, repr=False)
    ssl_crlfile: str | None = None
    ssl_ciphers: str | None = None
    #: SASL options, passed to the client's authenticator.
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = attrs.field(default=None, repr=False)
    sasl_oauth_token_provider: Any = attrs.field(default=None, repr=False)
    #: GSSAPI (Kerberos): see :class:`kproto.client.ClientConfig`.
    sasl_kerberos_service_name: str = "kafka"
    sasl_kerberos_name: str | None = None
    sasl_kerberos_domain_name: str | None = None
    #: Socket options, passed to the transport.
    receive_buffer_bytes: int | None = None
    send_buffer_bytes: int | None = None
    #: Metrics options (accepted for compatibility; ``metrics()`` always works).
    metrics_enabled: bool = True
    metric_group_prefix: str = "consumer"

    @classmethod
    def option_names(cls) -> list[str]:
        """Every keyword :meth:`from_kwargs` accepts."""
        return [f.name for f in attrs.fields(cls)]

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ConsumerConfig:
        """Validate user keywords and build the config.

        Raises:
            TypeError: an unknown option (the message names the closest valid one).
            KafkaConfigurationError: a value that is not allowed (a ``ValueError``).
        """
        names = cls.option_names()
        for key in kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"unknown KafkaConsumer option {key!r}{hint}")
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every value; raise KafkaConfigurationError naming the first bad one."""
        bs = self.bootstrap_servers
        if isinstance(bs, str):
            if not bs.strip():
                raise _bad("bootstrap_servers", bs, "a non-empty 'host[:port]' string or list")
        elif not bs or not all(isinstance(s, str) and s for s in bs):
            raise _bad("bootstrap_servers", bs, "a non-empty 'host[:port]' string or list")
        from kproto.client import parse_bootstrap

        parse_bootstrap(bs)  # ports in 1..65535, hosts present: named errors
        for name in ("client_id",):
            if not isinstance(getattr(self, name), str):
                raise _bad(name, getattr(self, name), "a str")
        for name in ("group_id", "group_instance_id"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v):
                raise _bad(name, v, "None or a non-empty str")
        for name in ("key_deserializer", "value_deserializer", "default_offset_commit_callback"):
            v = getattr(self, name)
            if v is not None and not callable(v):
                raise _bad(name, v, "None or a callable")
        if not isinstance(self.client_rack, str):
            raise _bad("client_rack", self.client_rack, "a str ('' for none)")
        if not isinstance(self.auto_offset_reset, str):
            raise _bad("auto_offset_reset", self.auto_offset_reset, "'earliest', 'latest' or 'none'")
        if self.isolation_level not in _ISOLATION:
            raise _bad("isolation_level", self.isolation_level, "'read_uncommitted' or 'read_committed'")
        for name in ("enable_auto_commit", "check_crcs", "exclude_internal_topics",
                     "allow_auto_create_topics", "enable_incremental_fetch_sessions",
                     "ssl_check_hostname", "metrics_enabled"):
            if not isinstance(getattr(self, name), bool):
                raise _bad(name, getattr(self, name), "True or False")
        _int("auto_commit_interval_ms", self.auto_commit_interval_ms, 1)
        _int("session_timeout_ms", self.session_timeout_ms, 1)
        _int("heartbeat_interval_ms", self.heartbeat_interval_ms, 1)
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise _bad("heartbeat_interval_ms", self.heartbeat_interval_ms,
                       f"below session_timeout_ms ({self.session_timeout_ms})")
        _int("max_poll_interval_ms", self.max_poll_interval_ms, 1)
        if self.rebalance_timeout_ms is not None:
            _int("rebalance_timeout_ms", self.rebalance_timeout_ms, 1)
        _int("max_poll_records", self.max_poll_records, 1)
        _int("fetch_min_bytes", self.fetch_min_bytes, 0)
        _int("fetch_max_wait_ms", self.fetch_max_wait_ms, 0)
        _int("fetch_max_bytes", self.fetch_max_bytes, 1)
        _int("max_partition_fetch_bytes", self.max_partition_fetch_bytes, 1)
        _int("request_timeout_ms", self.request_timeout_ms, 1)
        if self.request_timeout_ms <= self.fetch_max_wait_ms:
            raise _bad("request_timeout_ms", self.request_timeout_ms,
                       f"above fetch_max_wait_ms ({self.fetch_max_wait_ms})")
        _int("metadata_max_age_ms", self.metadata_max_age_ms, 0)
        _int("retry_backoff_ms", self.retry_backoff_ms, 0)
        _int("reconnect_backoff_ms", self.reconnect_backoff_ms, 0)
        _int("reconnect_backoff_max_ms", self.reconnect_backoff_max_ms, 0)
        _int("max_in_flight_requests_per_connection", self.max_in_flight_requests_per_connection, 1)
        _int("connections_max_idle_ms", self.connections_max_idle_ms, 0)
        _int("socket_connection_setup_timeout_ms", self.socket_connection_setup_timeout_ms, 0, _MAX_LONG)
        _int("socket_connection_setup_timeout_max_ms", self.socket_connection_setup_timeout_max_ms, 0, _MAX_LONG)
        strategy = self.metadata_recovery_strategy
        if not isinstance(strategy, str) or strategy.lower() not in _RECOVERY_STRATEGIES:
            raise _bad("metadata_recovery_strategy", strategy, "'none' or 'rebootstrap'")
        _int("metadata_recovery_rebootstrap_trigger_ms", self.metadata_recovery_rebootstrap_trigger_ms, 0, _MAX_LONG)
        ct = self.consumer_timeout_ms
        if ct is not None and (isinstance(ct, bool) or not isinstance(ct, (int, float)) or ct < 0):
            raise _bad("consumer_timeout_ms", ct, "None or a number >= 0")
        if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise _bad("security_protocol", self.security_protocol,
                       "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'")
        pas = self.partition_assignment_strategy
        if isinstance(pas, (str, bytes)) or not isinstance(pas, Sequence) or not pas:
            raise _bad("partition_assignment_strategy", pas, "a non-empty list of assignors")

    @property
    def reset_policy(self) -> str:
        """'earliest', 'latest', or 'none' for any other ``auto_offset_reset`` value."""
        v = self.auto_offset_reset.lower()
        # kafka-python also accepted 'smallest'/'largest' (the pre-0.9 names).
        if v in ("earliest", "smallest"):
            return "earliest"
        if v in ("latest", "largest"):
            return "latest"
        return "none"

    def rebalance_timeout(self) -> int:
        """JoinGroup's RebalanceTimeoutMs: ``rebalance_timeout_ms``, else ``max_poll_interval_ms``."""
        rt = self.rebalance_timeout_ms
        return self.max_poll_interval_ms if rt is None else rt

    @property
    def read_committed(self) -> bool:
        """True when ``isolation_level == 'read_committed'``."""
        return self.isolation_level == "read_committed"

    def client_kwargs(self, accepted: Sequence[str]) -> dict[str, Any]:
        """The options that ``ClientConfig`` also has (``accepted``: its field names).

        The response-size cap follows the fetch sizes: twice the larger of
        ``fetch_max_bytes`` and ``max_partition_fetch_bytes``, and never below
        the default cap (the ratio the default keeps; KIP-74 lets a broker
        exceed both by one whole batch). A fixed cap below ``fetch_max_bytes``
        made every large answer a protocol error: 0 records and reconnects for ever.
        """
        kwargs = {n: getattr(self, n) for n in self.option_names() if n in accepted}
        if "max_response_size" in accepted:
            asked = max(self.fetch_max_bytes, self.max_partition_fetch_bytes)
            kwargs["max_response_size"] = max(DEFAULT_MAX_RESPONSE_SIZE, 2 * asked)
        return kwargs

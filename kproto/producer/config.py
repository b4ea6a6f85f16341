"""Producer configuration: every option of the spec, its default and its checks.

Names and defaults follow the kafka-python ``KafkaProducer`` (the spec in
``shared/seed/kafka-client-api.txt``) plus the Java options a user of that API
expects (``delivery_timeout_ms``, ``enable_idempotence``, ...).
``key_serializer``/``value_serializer`` belong to the facades, not here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from kproto.errors import KafkaConfigurationError

__all__ = ["ACKS_ALL", "ProducerConfig", "PartitionerFn"]

#: ``acks='all'`` on the wire (the full in-sync replica set).
ACKS_ALL: Final = -1
#: Java's ``Integer.MAX_VALUE``: ``retries`` when idempotence turns them on.
_MAX_INT: Final = 2**31 - 1
#: Java's ``Long.MAX_VALUE``, the bound of the options Java keeps as longs.
_MAX_LONG: Final = 2**63 - 1
#: KIP-98/KIP-679: the broker keeps sequence state for the last 5 batches per
#: partition, so idempotence keeps order with at most 5 requests in flight.
_MAX_IDEMPOTENT_IN_FLIGHT: Final = 5
_CODECS: Final = (None, "gzip", "snappy", "lz4", "zstd")
#: ``metadata_recovery_strategy`` values (KIP-899), as ``kproto.client.METADATA_RECOVERY_STRATEGIES``.
_RECOVERY_STRATEGIES: Final = ("none", "rebootstrap")
#: Options handed to ``kproto.client.ClientConfig`` under the same name.
_CLIENT_OPTIONS: Final = (
    "bootstrap_servers",
    "client_id",
    "request_timeout_ms",
    "metadata_max_age_ms",
    "reconnect_backoff_ms",
    "reconnect_backoff_max_ms",
    "retry_backoff_ms",
    "max_in_flight_requests_per_connection",
    "socket_connection_setup_timeout_ms",
    "socket_connection_setup_timeout_max_ms",
    "metadata_recovery_strategy",
    "metadata_recovery_rebootstrap_trigger_ms",
    "proxy_url",
    "socks5_proxy",
)

#: ``partitioner(key_bytes, all_partitions, available_partitions) -> partition``.
PartitionerFn = Callable[[bytes | None, Sequence[int], Sequence[int]], int]


def _bad(name: str, value: object, allowed: str) -> KafkaConfigurationError:
    return KafkaConfigurationError(f"{name}={value!r} is not allowed: {name} must be {allowed}")


def _int(name: str, value: object, minimum: int = 0, maximum: int = _MAX_INT) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _bad(name, value, f"an int in [{minimum}, {maximum}]")


@attrs.frozen(kw_only=True)
class ProducerConfig:
    """Validated producer options; build it with :meth:`from_kwargs` from user keywords."""

    #: ``host[:port]`` or a list of them; the first cluster contact.
    bootstrap_servers: str | Sequence[str] = "localhost:9092"
    #: Sent in every request header; shows in broker logs and quotas.
    client_id: str = "kproto"
    #: 0 (no answer), 1 (leader wrote it) or -1 (``'all'``: the in-sync replicas have it).
    acks: int = 1
    #: Batch compression codec name, or None.
    compression_type: str | None = None
    #: How many times a batch failing with a retriable error is sent again.
    retries: int = 0
    #: Upper bound, in bytes, of one partition's batch (a bigger record gets its own batch).
    batch_size: int = 16384
    #: How long a batch that is not full waits for more records before it is sendable.
    linger_ms: int = 0
    #: Custom ``partitioner(key_bytes, all_partitions, available_partitions)``; None = default.
    partitioner: PartitionerFn | None = None
    #: Produce requests in flight per broker connection.
    max_in_flight_requests_per_connection: int = 5
    #: Bytes of records accepted but not yet completed; ``send`` waits when full.
    buffer_memory: int = 33554432
    #: Longest ``send`` waits for buffer space or a new topic's metadata.
    max_block_ms: int = 60000
    #: Largest Produce request (and therefore largest record) in bytes.
    max_request_size: int = 1048576
    #: How long a request waits for its answer before it counts as failed.
    request_timeout_ms: int = 30000
    #: Upper bound from ``send`` to success or failure of a record, retries included.
    delivery_timeout_ms: int = 120000
    #: Pause before a failed batch is sent again.
    retry_backoff_ms: int = 100
    #: Metadata is refreshed at least this often.
    metadata_max_age_ms: int = 300000
    #: First pause before reconnecting to a broker.
    reconnect_backoff_ms: int = 50
    #: Largest pause before reconnecting (exponential backoff cap).
    reconnect_backoff_max_ms: int = 1000
    #: KIP-98 idempotent producer: exactly-once, in-order writes per partition.
    enable_idempotence: bool = False
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
    #: KIP-98 transactional producer: records are sent in transactions
    #: (``init_transactions``, ``begin_transaction``...); implies idempotence.
    transactional_id: str | None = None
    #: Longest a transaction may stay open before the coordinator aborts it.
    transaction_timeout_ms: int = 60000
    #: ``socks5://[user:password@]host[:port]``: connect through this SOCKS5 proxy
    #: (:mod:`kproto.socks5`); ``socks5_proxy`` is kafka-python's former name.
    proxy_url: str | None = attrs.field(default=None, repr=False)
    socks5_proxy: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        servers = self.bootstrap_servers
        if isinstance(servers, str):
            servers = [s for s in servers.split(",") if s.strip()]
        if not servers or not all(isinstance(s, str) and s.strip() for s in servers):
            raise _bad(
                "bootstrap_servers", self.bootstrap_servers, "'host[:port]' or a non-empty list of them"
            )
        from kproto.client import parse_bootstrap

        parse_bootstrap(self.bootstrap_servers)  # ports in 1..65535, hosts present: named errors
        if not isinstance(self.client_id, str):
            raise _bad("client_id", self.client_id, "a str")
        if self.acks not in (0, 1, ACKS_ALL) or isinstance(self.acks, bool):
            raise _bad("acks", self.acks, "0, 1, 'all' or -1")
        if self.compression_type not in _CODECS:
            raise _bad("compression_type", self.compression_type, "None, 'gzip', 'snappy', 'lz4' or 'zstd'")
        _int("retries", self.retries)
        _int("batch_size", self.batch_size)
        _int("linger_ms", self.linger_ms)
        if self.partitioner is not None and not callable(self.partitioner):
            raise _bad("partitioner", self.partitioner, "None or a callable(key_bytes, all, available)")
        _int("max_in_flight_requests_per_connection", self.max_in_flight_requests_per_connection, 1)
        _int("buffer_memory", self.buffer_memory, 1, _MAX_LONG)
        _int("max_block_ms", self.max_block_ms, 0, _MAX_LONG)
        _int("max_request_size", self.max_request_size, 1)
        _int("request_timeout_ms", self.request_timeout_ms, 1)
        _int("delivery_timeout_ms", self.delivery_timeout_ms, 1)
        _int("retry_backoff_ms", self.retry_backoff_ms, 0, _MAX_LONG)
        _int("metadata_max_age_ms", self.metadata_max_age_ms, 0, _MAX_LONG)
        _int("reconnect_backoff_ms", self.reconnect_backoff_ms, 0, _MAX_LONG)
        _int("reconnect_backoff_max_ms", self.reconnect_backoff_max_ms, 0, _MAX_LONG)
        if not isinstance(self.enable_idempotence, bool):
            raise _bad("enable_idempotence", self.enable_idempotence, "True or False")
        _int("socket_connection_setup_timeout_ms", self.socket_connection_setup_timeout_ms, 0, _MAX_LONG)
        _int(
            "socket_connection_setup_timeout_max_ms",
            self.socket_connection_setup_timeout_max_ms,
            0,
            _MAX_LONG,
        )
        strategy = self.metadata_recovery_strategy
        if not isinstance(strategy, str) or strategy.lower() not in _RECOVERY_STRATEGIES:
            raise _bad("metadata_recovery_strategy", strategy, "'none' or 'rebootstrap'")
        _int(
            "metadata_recovery_rebootstrap_trigger_ms",
            self.metadata_recovery_rebootstrap_trigger_ms,
            0,
            _MAX_LONG,
        )
        # As the Java client (KIP-91): a batch must be able to linger and wait
        # for one full request before its delivery deadline.
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise _bad(
                "delivery_timeout_ms",
                self.delivery_timeout_ms,
                f">= linger_ms + request_timeout_ms ({self.linger_ms + self.request_timeout_ms})",
            )
        if self.transactional_id is not None:
            if not isinstance(self.transactional_id, str) or not self.transactional_id:
                raise _bad("transactional_id", self.transactional_id, "None or a non-empty str")
            if not self.enable_idempotence:
                raise _bad("enable_idempotence", self.enable_idempotence, "True when transactional_id is set")
            if self.acks != ACKS_ALL:
                raise _bad("acks", self.acks, "'all' or -1 when transactional_id is set")
        _int("transaction_timeout_ms", self.transaction_timeout_ms, 1)
        if self.enable_idempotence:
            if self.acks != ACKS_ALL:
                raise _bad("acks", self.acks, "'all' or -1 when enable_idempotence=True")
            if self.retries == 0:
                raise _bad("retries", self.retries, "> 0 when enable_idempotence=True")
            if self.max_in_flight_requests_per_connection > _MAX_IDEMPOTENT_IN_FLIGHT:
                raise _bad(
                    "max_in_flight_requests_per_connection",
                    self.max_in_flight_requests_per_connection,
                    f"<= {_MAX_IDEMPOTENT_IN_FLIGHT} when enable_idempotence=True",
                )

    @property
    def bootstrap_list(self) -> list[str]:
        """``bootstrap_servers`` as a list of ``host[:port]`` strings."""
        servers = self.bootstrap_servers
        if isinstance(servers, str):
            return [s.strip() for s in servers.split(",") if s.strip()]
        return [s.strip() for s in servers]

    def client_kwargs(self) -> dict[str, Any]:
        """The options ``kproto.client.ClientConfig`` takes under the same names."""
        return {name: getattr(self, name) for name in _CLIENT_OPTIONS}

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Every option name this config accepts."""
        return tuple(a.name for a in attrs.fields(cls))

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ProducerConfig:
        """Build a config from user keywords, as ``KafkaProducer(**kwargs)`` receives them.

        ``acks='all'`` becomes -1. A ``transactional_id`` turns
        ``enable_idempotence`` on when left unset. With ``enable_idempotence=True``, ``acks``
        left unset becomes -1 and ``retries`` left unset becomes 2**31-1 (as the
        Java client does).

        Raises:
            TypeError: an unknown option; the message names the closest valid one.
            KafkaConfigurationError: (a ValueError) a value that is not allowed.
        """
        names = cls.option_names()
        for name in kwargs:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"unknown producer option {name!r}{hint}")
        if "acks" in kwargs:
            acks = kwargs["acks"]
            if isinstance(acks, str) and acks.strip().lower() == "all":
                kwargs["acks"] = ACKS_ALL
            elif isinstance(acks, str) and acks.strip().lstrip("-").isdigit():
                kwargs["acks"] = int(acks)
        if "compression_type" in kwargs and isinstance(kwargs["compression_type"], str):
            ct = kwargs["compression_type"].strip().lower()
            kwargs["compression_type"] = None if ct in ("", "none") else ct
        if kwargs.get("transactional_id") is not None:
            kwargs.setdefault("enable_idempotence", True)
        if kwargs.get("enable_idempotence") is True:
            kwargs.setdefault("acks", ACKS_ALL)
            kwargs.setdefault("retries", _MAX_INT)
        return cls(**kwargs)

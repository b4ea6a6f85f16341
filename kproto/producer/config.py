"""Producer configuration: every option of the spec, its default and its checks.

Names and defaults follow the kafka-python ``KafkaProducer`` (the spec in
``shared/seed/kafka-client-api.txt``) plus the Java options a user of that API
expects (``delivery_timeout_ms``, ``enable_idempotence``, ...).
``key_serializer``/``value_serializer`` belong to the facades, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

import attrs

from kproto.config import MAX_INT, MAX_LONG, CommonConfig, bad_option, check_int

__all__ = ["ACKS_ALL", "ProducerConfig", "PartitionerFn"]

#: ``acks='all'`` on the wire (the full in-sync replica set).
ACKS_ALL: Final = -1
#: Java's ``Integer.MAX_VALUE``: ``retries`` when idempotence turns them on
#: (and kafka-python's ``retries=float('inf')``).
_MAX_INT: Final = MAX_INT
#: KIP-98/KIP-679: the broker keeps sequence state for the last 5 batches per
#: partition, so idempotence keeps order with at most 5 requests in flight.
_MAX_IDEMPOTENT_IN_FLIGHT: Final = 5
_CODECS: Final = (None, "gzip", "snappy", "lz4", "zstd")

#: ``partitioner(key_bytes, all_partitions, available_partitions) -> partition``.
PartitionerFn = Callable[[bytes | None, Sequence[int], Sequence[int]], int]

_bad = bad_option
_int = check_int


class _AnyTopic:
    """``cluster.topics()`` for a kafka-python 3 ``Partitioner``: the topic is known (we only ask for known ones)."""

    def __contains__(self, topic: object) -> bool:
        return True


class _PartitionerObject:
    """A kafka-python 3 ``Partitioner`` object (``partition(topic, key, serialized_key, value,
    serialized_value, cluster)``) as a kproto ``partitioner(key_bytes, all, available)``.

    The core calls partitioners after serialization with the partition lists
    only, so the object sees ``topic``, ``key``, ``value`` and
    ``serialized_value`` as None and a cluster view answering with the lists.
    """

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        view = _ClusterView(all_partitions, available)
        return int(self.obj.partition(None, None, key, None, None, view))


class _ClusterView:
    def __init__(self, all_partitions: Sequence[int], available: Sequence[int]) -> None:
        self._all, self._available = all_partitions, available

    def topics(self) -> _AnyTopic:
        return _AnyTopic()

    def partitions_for_topic(self, topic: object) -> set[int]:
        return set(self._all)

    def available_partitions_for_topic(self, topic: object) -> set[int]:
        return set(self._available)


def _partitioner(value: Any) -> Any:
    """kafka-python 3's ``DefaultPartitioner()`` is kproto's default (both murmur2 as Java);
    another object with a ``partition`` method is adapted (:class:`_PartitionerObject`)."""
    if value is None or callable(value) or isinstance(value, (str, bytes)):
        return value
    cls = type(value)
    if cls.__name__ == "DefaultPartitioner" and cls.__module__.startswith("kafka."):
        return None
    if callable(getattr(value, "partition", None)):
        return _PartitionerObject(value)
    return value


@attrs.frozen(kw_only=True)
class ProducerConfig(CommonConfig):
    """Validated producer options; build it with :meth:`from_kwargs` from user keywords.

    The options shared with the consumer are :class:`~kproto.config.CommonConfig`'s.
    """

    _WHAT: ClassVar[str] = "producer"

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
    #: Bytes of records accepted but not yet completed; ``send`` waits when full.
    buffer_memory: int = 33554432
    #: Longest ``send`` waits for buffer space or a new topic's metadata.
    max_block_ms: int = 60000
    #: Largest Produce request (and therefore largest record) in bytes.
    max_request_size: int = 1048576
    #: Upper bound from ``send`` to success or failure of a record, retries included.
    delivery_timeout_ms: int = 120000
    #: KIP-98 idempotent producer: exactly-once, in-order writes per partition.
    enable_idempotence: bool = False
    #: KIP-98 transactional producer: records are sent in transactions
    #: (``init_transactions``, ``begin_transaction``...); implies idempotence.
    transactional_id: str | None = None
    #: Longest a transaction may stay open before the coordinator aborts it.
    transaction_timeout_ms: int = 60000

    def __attrs_post_init__(self) -> None:
        self.check_common()
        if self.acks not in (0, 1, ACKS_ALL) or isinstance(self.acks, bool):
            raise _bad("acks", self.acks, "0, 1, 'all' or -1")
        if self.compression_type not in _CODECS:
            raise _bad("compression_type", self.compression_type, "None, 'gzip', 'snappy', 'lz4' or 'zstd'")
        _int("retries", self.retries)
        _int("batch_size", self.batch_size)
        _int("linger_ms", self.linger_ms)
        if self.partitioner is not None and not callable(self.partitioner):
            raise _bad("partitioner", self.partitioner, "None or a callable(key_bytes, all, available)")
        _int("buffer_memory", self.buffer_memory, 1, MAX_LONG)
        _int("max_block_ms", self.max_block_ms, 0, MAX_LONG)
        _int("max_request_size", self.max_request_size, 1)
        _int("delivery_timeout_ms", self.delivery_timeout_ms, 1)
        if not isinstance(self.enable_idempotence, bool):
            raise _bad("enable_idempotence", self.enable_idempotence, "True or False")
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

    def client_kwargs(self) -> dict[str, object]:
        """The options ``kproto.client.ClientConfig`` takes under the same names."""
        return attrs.asdict(self.client_config(), recurse=False)

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> ProducerConfig:
        """Build a config from user keywords, as ``KafkaProducer(**kwargs)`` receives them.

        ``acks='all'`` becomes -1; ``retries=float('inf')`` (kafka-python's
        default) becomes 2**31-1. A ``transactional_id`` turns
        ``enable_idempotence`` on when left unset. With ``enable_idempotence=True``, ``acks``
        left unset becomes -1 and ``retries`` left unset becomes 2**31-1 (as the
        Java client does). See :meth:`CommonConfig.accept` for the shared options.

        Raises:
            TypeError: an unknown option; the message names the closest valid one.
            KafkaConfigurationError: (a ValueError) a value that is not allowed.
        """
        options: dict[str, Any] = cls.accept(kwargs)  # values checked by the constructor
        if options.get("retries") == float("inf"):
            options["retries"] = _MAX_INT
        if "partitioner" in options:
            options["partitioner"] = _partitioner(options["partitioner"])
        if "acks" in options:
            acks = options["acks"]
            if isinstance(acks, str) and acks.strip().lower() == "all":
                options["acks"] = ACKS_ALL
            elif isinstance(acks, str) and acks.strip().lstrip("-").isdigit():
                options["acks"] = int(acks)
        if "compression_type" in options and isinstance(options["compression_type"], str):
            ct = options["compression_type"].strip().lower()
            options["compression_type"] = None if ct in ("", "none") else ct
        if options.get("transactional_id") is not None:
            options.setdefault("enable_idempotence", True)
        if options.get("enable_idempotence") is True:
            options.setdefault("acks", ACKS_ALL)
            options.setdefault("retries", _MAX_INT)
        return cls(**options)

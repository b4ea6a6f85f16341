"""Consumer configuration: every option of the spec, its default and its checks.

Names and defaults follow the kafka-python ``KafkaConsumer`` (the spec in
``shared/seed/kafka-client-api.txt``) plus the Java options a user of that
API expects (``isolation_level``, ``max_poll_interval_ms``, ...). Options
about connections are handed to :class:`kproto.client.ClientConfig` by
:meth:`ConsumerConfig.client_kwargs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs

from kproto.config import CommonConfig, bad_option, check_int
from kproto.connection import DEFAULT_MAX_RESPONSE_SIZE

if TYPE_CHECKING:
    from kproto.consumer.assignors import PartitionAssignor
    from kproto.consumer.types import OffsetAndMetadata, TopicPartition

__all__ = ["ConsumerConfig", "Deserializer"]


#: ``deserializer(raw) -> object``: a record's key or value bytes (None for a null one) ->
#: what ``ConsumerRecord.key``/``.value`` hold.
Deserializer = Callable[[bytes | None], object]

_RESETS: Final = ("earliest", "latest", "none")
_ISOLATION: Final = ("read_uncommitted", "read_committed")
_bad = bad_option
_int = check_int


@attrs.frozen(kw_only=True)
class ConsumerConfig(CommonConfig):
    """Validated consumer options; build it with :meth:`from_kwargs` from user keywords.

    The options shared with the producer are :class:`~kproto.config.CommonConfig`'s.
    """

    _WHAT: ClassVar[str] = "KafkaConsumer"

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
    partition_assignment_strategy: Sequence[str | type | PartitionAssignor] = ("range", "roundrobin")
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
    #: How long a request waits for its answer; above the producer's default
    #: because a JoinGroup waits up to ``max_poll_interval_ms`` for the
    #: rebalance (Java gives JoinGroup that much plus 5 s).
    request_timeout_ms: int = 305000
    #: The consumer's rack (KIP-392 fetch from the closest replica; implemented by the rack work).
    client_rack: str | None = None
    #: Hide internal topics (``__consumer_offsets``...) from ``topics()``.
    exclude_internal_topics: bool = True
    #: Use incremental fetch sessions (KIP-227) when the broker supports them.
    enable_incremental_fetch_sessions: bool = True
    #: Called as ``callback(offsets, error)`` after an automatic commit.
    default_offset_commit_callback: (
        Callable[[dict[TopicPartition, OffsetAndMetadata], BaseException | None], object] | None
    ) = None
    #: Prefix of the consumer's metric group names (kafka-python's).
    metric_group_prefix: str = "consumer"

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> ConsumerConfig:
        """Validate user keywords and build the config.

        ``consumer_timeout_ms=float('inf')`` (kafka-python's default) is None;
        see :meth:`CommonConfig.accept` for the shared options.

        Raises:
            TypeError: an unknown option (the message names the closest valid one).
            KafkaConfigurationError: a value that is not allowed (a ``ValueError``).
        """
        options: dict[str, Any] = cls.accept(kwargs)  # values checked by the constructor
        if options.get("consumer_timeout_ms") == float("inf"):
            options["consumer_timeout_ms"] = None
        if options.get("client_rack") == "":
            options["client_rack"] = None  # kafka-python's "no rack"
        cfg = cls(**options)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check the consumer's own values (the shared ones are checked at construction)."""
        for name in ("group_id", "group_instance_id"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v):
                raise _bad(name, v, "None or a non-empty str")
        for name in ("key_deserializer", "value_deserializer", "default_offset_commit_callback"):
            v = getattr(self, name)
            if v is not None and not callable(v):
                raise _bad(name, v, "None or a callable")
        if not isinstance(self.auto_offset_reset, str):
            raise _bad("auto_offset_reset", self.auto_offset_reset, "'earliest', 'latest' or 'none'")
        if self.isolation_level not in _ISOLATION:
            raise _bad("isolation_level", self.isolation_level, "'read_uncommitted' or 'read_committed'")
        for name in ("enable_auto_commit", "check_crcs", "exclude_internal_topics",
                     "enable_incremental_fetch_sessions"):
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
        ct = self.consumer_timeout_ms
        if ct is not None and (isinstance(ct, bool) or not isinstance(ct, (int, float)) or ct < 0):
            raise _bad("consumer_timeout_ms", ct, "None or a number >= 0")
        if self.client_rack is not None and not isinstance(self.client_rack, str):
            raise _bad("client_rack", self.client_rack, "None or a str")
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

    def max_response_size(self) -> int:
        """Bound on a response frame, following the fetch sizes.

        Unset: twice the larger of ``fetch_max_bytes`` and
        ``max_partition_fetch_bytes``, never below the default cap (KIP-74 lets
        a broker exceed both by one whole batch). Set: ``receive_message_max_bytes``,
        raised to ``fetch_max_bytes + max_partition_fetch_bytes`` if below (as
        kafka-python 3), since a cap under the fetch sizes makes every large
        answer a protocol error: 0 records and reconnects for ever.
        """
        if self.receive_message_max_bytes is not None:
            return max(self.receive_message_max_bytes, self.fetch_max_bytes + self.max_partition_fetch_bytes)
        asked = max(self.fetch_max_bytes, self.max_partition_fetch_bytes)
        return max(DEFAULT_MAX_RESPONSE_SIZE, 2 * asked)

    def client_kwargs(self, accepted: Sequence[str]) -> dict[str, object]:
        """The options that ``ClientConfig`` also has (``accepted``: its field names)."""
        kwargs = {n: getattr(self, n) for n in self.option_names() if n in accepted}
        if "max_response_size" in accepted:
            kwargs["max_response_size"] = self.max_response_size()
        return kwargs

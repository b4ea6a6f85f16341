"""Admin request and result types, with kafka-python 3's names and fields.

These are plain values: what a caller passes to :class:`kproto.admin.AdminCore`
and what comes back per resource. They do no I/O and hold no state.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import attrs

from kproto.errors import IllegalArgumentError

__all__ = [
    "ACL",
    "ACLFilter",
    "ACLOperation",
    "ACLPermissionType",
    "ACLResourcePatternType",
    "AlterConfigOp",
    "ConfigResource",
    "ConfigResourceType",
    "ListOffsetsResultInfo",
    "NewPartitions",
    "NewTopic",
    "OffsetSpec",
    "ResourcePattern",
    "ResourcePatternFilter",
    "ResourceType",
    "ScramMechanism",
    "UserScramCredentialDeletion",
    "UserScramCredentialUpsertion",
]


class ConfigResourceType(enum.IntEnum):
    """The wire ``ResourceType`` of a config resource (DescribeConfigs, AlterConfigs)."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


class AlterConfigOp(enum.IntEnum):
    """IncrementalAlterConfigs ``ConfigOperation`` (KIP-339)."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class NewTopic:
    """A topic to create: a partition count and replication factor (-1: the
    broker's defaults, KIP-464), or an explicit replica assignment."""

    __slots__ = ("name", "num_partitions", "replication_factor", "replica_assignments", "topic_configs")

    def __init__(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        replica_assignments: Mapping[int, Sequence[int]] | None = None,
        topic_configs: Mapping[str, str | None] | None = None,
    ) -> None:
        if replica_assignments and (num_partitions != -1 or replication_factor != -1):
            # CreateTopics rejects both at once (INVALID_REQUEST); say so before sending.
            raise IllegalArgumentError(
                f"NewTopic {name!r}: give num_partitions/replication_factor or replica_assignments, not both"
            )
        self.name = name
        self.num_partitions = num_partitions
        self.replication_factor = replication_factor
        self.replica_assignments: dict[int, list[int]] = {
            int(p): list(r) for p, r in (replica_assignments or {}).items()
        }
        self.topic_configs: dict[str, str | None] = dict(topic_configs or {})

    def __repr__(self) -> str:
        return (
            f"NewTopic(name={self.name!r}, num_partitions={self.num_partitions}, "
            f"replication_factor={self.replication_factor}, replica_assignments={self.replica_assignments!r}, "
            f"topic_configs={self.topic_configs!r})"
        )


class NewPartitions:
    """Grow a topic to ``total_count`` partitions, optionally placing the new ones."""

    __slots__ = ("total_count", "new_assignments")

    def __init__(self, total_count: int, new_assignments: Sequence[Sequence[int]] | None = None) -> None:
        self.total_count = total_count
        self.new_assignments: list[list[int]] | None = (
            [list(a) for a in new_assignments] if new_assignments is not None else None
        )

    def __repr__(self) -> str:
        return f"NewPartitions(total_count={self.total_count}, new_assignments={self.new_assignments!r})"


class ConfigResource:
    """A config resource: its type, its name (a broker id as a string for
    BROKER), and config keys (describe) or ``{key: value}`` (alter)."""

    __slots__ = ("resource_type", "name", "configs")

    def __init__(
        self,
        resource_type: ConfigResourceType | str | int,
        name: str,
        configs: Mapping[str, object] | Sequence[str] | None = None,
    ) -> None:
        if isinstance(resource_type, str):
            try:
                resource_type = ConfigResourceType[resource_type.upper()]
            except KeyError:
                raise IllegalArgumentError(
                    f"resource_type={resource_type!r} is not allowed: one of "
                    + ", ".join(t.name for t in ConfigResourceType)
                ) from None
        self.resource_type = ConfigResourceType(resource_type)
        self.name = str(name)
        self.configs = configs

    @property
    def key(self) -> tuple[ConfigResourceType, str]:
        """``(resource_type, name)``: how results are keyed."""
        return (self.resource_type, self.name)

    def __repr__(self) -> str:
        return f"ConfigResource({self.resource_type.name}, {self.name!r}, {self.configs!r})"


class OffsetSpec:
    """Which offset ListOffsets asks for: a timestamp, or one of the special values."""

    #: The offset after the last record (the high watermark, or LSO with read_committed).
    LATEST = -1
    #: The first offset still in the log.
    EARLIEST = -2
    #: The offset of the record with the largest timestamp (KIP-734, ListOffsets v7+).
    MAX_TIMESTAMP = -3

    @staticmethod
    def for_timestamp(timestamp_ms: int) -> int:
        """The spec for "first offset whose timestamp is at or after ``timestamp_ms``"."""
        if timestamp_ms < 0:
            raise IllegalArgumentError(f"timestamp_ms must be >= 0, got {timestamp_ms}")
        return timestamp_ms


class ListOffsetsResultInfo(NamedTuple):
    """One partition's ListOffsets answer (offset -1 when no record matches a timestamp)."""

    offset: int
    timestamp: int
    leader_epoch: int = -1


class ResourceType(enum.IntEnum):
    """An ACL resource type (ANY only in filters)."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class ACLOperation(enum.IntEnum):
    """An ACL operation (ANY only in filters)."""

    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class ACLPermissionType(enum.IntEnum):
    """Allow or deny (ANY only in filters)."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


class ACLResourcePatternType(enum.IntEnum):
    """How a resource name matches (KIP-290); ANY and MATCH only in filters."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


@attrs.frozen(slots=True)
class ResourcePatternFilter:
    """Which resources an ACL filter matches (name None: any name)."""

    resource_type: ResourceType = attrs.field(converter=ResourceType)
    resource_name: str | None
    pattern_type: ACLResourcePatternType = attrs.field(converter=ACLResourcePatternType)


@attrs.frozen(slots=True)
class ResourcePattern:
    """The concrete resource an ACL applies to."""

    resource_type: ResourceType = attrs.field(converter=ResourceType)
    resource_name: str
    pattern_type: ACLResourcePatternType = attrs.field(
        default=ACLResourcePatternType.LITERAL, converter=ACLResourcePatternType
    )

    def __attrs_post_init__(self) -> None:
        if self.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN):
            raise IllegalArgumentError(
                f"a ResourcePattern needs a concrete resource_type, got {self.resource_type.name}"
            )
        if self.pattern_type not in (ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED):
            raise IllegalArgumentError(
                f"a ResourcePattern's pattern_type must be LITERAL or PREFIXED, got {self.pattern_type.name}"
            )
        if self.resource_name is None:
            raise IllegalArgumentError("a ResourcePattern needs a resource_name")


@attrs.frozen(slots=True)
class ACLFilter:
    """Which ACLs to describe or delete (None fields: any)."""

    principal: str | None
    host: str | None
    operation: ACLOperation = attrs.field(converter=ACLOperation)
    permission_type: ACLPermissionType = attrs.field(converter=ACLPermissionType)
    resource_pattern: ResourcePatternFilter | ResourcePattern


@attrs.frozen(slots=True)
class ACL:
    """One access control entry: principal, host, operation, allow/deny, resource."""

    principal: str
    host: str
    operation: ACLOperation = attrs.field(converter=ACLOperation)
    permission_type: ACLPermissionType = attrs.field(converter=ACLPermissionType)
    resource_pattern: ResourcePattern

    def __attrs_post_init__(self) -> None:
        if self.operation in (ACLOperation.ANY, ACLOperation.UNKNOWN):
            raise IllegalArgumentError(f"an ACL needs a concrete operation, got {self.operation.name}")
        if self.permission_type in (ACLPermissionType.ANY, ACLPermissionType.UNKNOWN):
            raise IllegalArgumentError(f"an ACL needs ALLOW or DENY, got {self.permission_type.name}")
        if not isinstance(self.resource_pattern, ResourcePattern):
            raise IllegalArgumentError("an ACL's resource_pattern must be a ResourcePattern")


class ScramMechanism(enum.IntEnum):
    """A SCRAM mechanism as AlterUserScramCredentials names it (KIP-554)."""

    UNKNOWN = 0
    SCRAM_SHA_256 = 1
    SCRAM_SHA_512 = 2

    @property
    def hash_name(self) -> str:
        """The hashlib name of its hash."""
        return "sha256" if self is ScramMechanism.SCRAM_SHA_256 else "sha512"


def _mechanism(value: ScramMechanism | str | int) -> ScramMechanism:
    try:
        mech = (
            ScramMechanism[value.upper().replace("-", "_")]
            if isinstance(value, str)
            else ScramMechanism(value)
        )
    except (KeyError, ValueError):
        raise IllegalArgumentError(
            f"mechanism={value!r} is not allowed: SCRAM-SHA-256 or SCRAM-SHA-512"
        ) from None
    if mech is ScramMechanism.UNKNOWN:
        raise IllegalArgumentError("mechanism=UNKNOWN is not allowed: SCRAM-SHA-256 or SCRAM-SHA-512")
    return mech


class UserScramCredentialDeletion:
    """Delete ``user``'s credential for ``mechanism``."""

    __slots__ = ("user", "mechanism")

    def __init__(self, user: str, mechanism: ScramMechanism | str | int) -> None:
        self.user = user
        self.mechanism = _mechanism(mechanism)

    def __repr__(self) -> str:
        return f"UserScramCredentialDeletion({self.user!r}, {self.mechanism.name})"


class UserScramCredentialUpsertion:
    """Set ``user``'s credential for ``mechanism``. The broker gets only the salted
    password (PBKDF2 over ``password``, ``salt``, ``iterations``; KIP-554). With no
    ``salt`` the admin core refuses the upsertion: kproto draws no randomness, so
    the caller passes one (e.g. ``secrets.token_bytes(24)``)."""

    __slots__ = ("user", "mechanism", "iterations", "salt", "_password")

    #: RFC 7677's minimum, Kafka's default.
    DEFAULT_ITERATIONS = 4096

    def __init__(
        self,
        user: str,
        mechanism: ScramMechanism | str | int,
        password: str | bytes,
        iterations: int | None = None,
        salt: bytes | None = None,
    ) -> None:
        self.user = user
        self.mechanism = _mechanism(mechanism)
        self.iterations = self.DEFAULT_ITERATIONS if iterations is None else iterations
        if self.iterations < self.DEFAULT_ITERATIONS:
            raise IllegalArgumentError(
                f"iterations must be >= {self.DEFAULT_ITERATIONS}, got {self.iterations}"
            )
        self.salt = salt
        self._password = password.encode("utf-8") if isinstance(password, str) else bytes(password)

    def salted_password(self, salt: bytes) -> bytes:
        """PBKDF2-HMAC of the password with ``salt`` (SCRAM's ``Hi``, RFC 5802)."""
        return hashlib.pbkdf2_hmac(self.mechanism.hash_name, self._password, salt, self.iterations)

    def __repr__(self) -> str:
        return f"UserScramCredentialUpsertion({self.user!r}, {self.mechanism.name}, iterations={self.iterations})"

"""The admin core: topics, configs, groups, offsets and records, sans I/O.

:class:`AdminCore` is driven like every kproto core (:mod:`kproto.driving`);
its methods return an :class:`AdminOp` whose per-resource results fill in as
the driver feeds it bytes. The value types carry kafka-python 3's names.
"""

from __future__ import annotations

from kproto.admin.core import AdminConfig, AdminCore, AdminOp
from kproto.admin.types import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    ListOffsetsResultInfo,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

__all__ = [
    "ACL",
    "ACLFilter",
    "ACLOperation",
    "ACLPermissionType",
    "ACLResourcePatternType",
    "AdminConfig",
    "AdminCore",
    "AdminOp",
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

"""The one table of API versions kproto holds below the generated schemas' maximum.

Every request is sent at ``min(kproto's max, the broker's max)`` as the
broker advertised it in ApiVersions (see :mod:`kproto.connection`).
kproto's max is the generated class's ``MAX_VERSION`` (the schemas vendored
from the Kafka release in ``tools/kafka-protocol/RELEASE``) unless
:data:`VERSION_CAPS` lowers it. A newer version is only sent when kproto
implements what it *means*, not only its bytes; each cap below says which
semantics kproto does not implement. Raising a cap means implementing that
and testing it against a broker that picks the new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from kproto.protocol.message import Request, Response
from kproto.protocol.messages import REQUEST_TYPES

__all__ = ["CAP_REASONS", "VERSION_CAPS", "max_version", "named_versions"]

_CAPS: dict[int, tuple[int, str]] = {
    # Produce v12 belongs to transactions V2 (KIP-890 part 2: the broker adds a
    # partition to the transaction itself, the client sends no
    # AddPartitionsToTxn); v13 names topics by id (KIP-516). kproto runs the
    # V1 transaction protocol, as the Java client does with transaction.version 1,
    # whose transactional producer caps Produce at v11; v11 and v12 have the same bytes.
    0: (11, "v12 is transactions V2 (KIP-890), v13 names topics by id (KIP-516)"),
    # Fetch v13+ names topics by id (KIP-516); the fetcher, the fetch sessions
    # (KIP-227) and the record decoding key on topic names.
    1: (12, "v13+ names topics by id (KIP-516)"),
    # OffsetFetch v8+ batches several groups per request (KIP-709) in another
    # layout; v9 adds the KIP-848 member epoch. kproto asks for one group.
    9: (7, "v8+ is the batched multi-group layout (KIP-709)"),
    # FindCoordinator v4+ batches keys (KIP-699) in another layout (kproto looks
    # up one key per request; v1-v3 are served by every broker from 2.1 to 4.x);
    # v5 may answer TRANSACTION_ABORTABLE (KIP-890), v6 adds share groups (KIP-932).
    10: (3, "v4+ is the batched layout (KIP-699); kproto looks up one key per request"),
    # AddPartitionsToTxn v4+ is the batched broker-to-broker form (KIP-890
    # part 1, verification); the Java client's builder for clients stops at v3.
    24: (3, "v4+ is the broker-to-broker batched form (KIP-890)"),
    # EndTxn v5 is transactions V2: the coordinator bumps the producer epoch at
    # every transaction end and returns it (KIP-890 part 2).
    26: (4, "v5 is transactions V2: a new producer epoch per transaction (KIP-890)"),
    # TxnOffsetCommit v5 is transactions V2 (KIP-890 part 2), like EndTxn v5.
    28: (4, "v5 is transactions V2 (KIP-890)"),
}

#: ``api_key -> highest version kproto sends`` where that is below the
#: generated ``MAX_VERSION``; APIs not listed use the generated maximum.
VERSION_CAPS: Final[Mapping[int, int]] = MappingProxyType({key: cap for key, (cap, _) in _CAPS.items()})

#: ``api_key -> why`` for each cap (shown in documentation and test failures).
CAP_REASONS: Final[Mapping[int, str]] = MappingProxyType({key: why for key, (_, why) in _CAPS.items()})


def named_versions(versions: Mapping[int, int]) -> dict[str, float]:
    """``{"Produce": 11.0, ...}`` from ``api_key -> version`` (the shape of metrics)."""
    out: dict[str, float] = {}
    for key, version in sorted(versions.items()):
        cls = REQUEST_TYPES.get(key)
        name = cls.__name__.removesuffix("Request") if cls is not None else f"api-{key}"
        out[name] = float(version)
    return out


def max_version(request_type: type[Request[Response]]) -> int:
    """The highest version of ``request_type`` (a generated request class) kproto sends."""
    top = request_type.MAX_VERSION
    cap = VERSION_CAPS.get(request_type.API_KEY)
    return top if cap is None else min(top, cap)

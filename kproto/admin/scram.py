"""SCRAM credentials (KIP-554): DescribeUserScramCredentials and
AlterUserScramCredentials at any broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kproto.admin.answers import error_for, per_unit
from kproto.admin.engine import (
    ANY,
    AdminEngine,
    AdminOp,
)
from kproto.admin.types import (
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kproto.errors import (
    IllegalArgumentError,
    KafkaError,
)
from kproto.protocol.messages import alter_user_scram_credentials as _aus
from kproto.protocol.messages import describe_user_scram_credentials as _dus


def describe_user_scram_credentials(
    engine: AdminEngine, users: Iterable[str] | None = None, *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DescribeUserScramCredentials at any broker; per user, ``[(ScramMechanism,
    iterations)]``. With ``users=None`` one entry ``None: {user: [...]}`` for all."""
    names = None if users is None else list(dict.fromkeys(users))

    def build(keys: list[Any], _t: int) -> Any:
        return _dus.DescribeUserScramCredentialsRequest(
            users=None if names is None else [_dus.UserName(name=k) for k in keys]
        )

    def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
        if resp.error_code:
            err = error_for(resp.error_code, resp.error_message, "describe SCRAM credentials")
            return dict.fromkeys(keys, err)
        found = per_unit(
            resp.results,
            lambda r: r.user,
            "SCRAM credentials of",
            lambda r: [(ScramMechanism(c.mechanism), c.iterations) for c in r.credential_infos],
        )
        if names is None:
            return {None: {u: v for u, v in found.items() if not isinstance(v, KafkaError)}}
        return found

    keys: list[Any] = [None] if names is None else names
    return engine.start("describe_user_scram_credentials", keys, ANY, build, parse, now, timeout_ms)


def alter_user_scram_credentials(
    engine: AdminEngine,
    alterations: Iterable[UserScramCredentialUpsertion | UserScramCredentialDeletion],
    *,
    now: float,
    timeout_ms: int | None = None,
) -> AdminOp:
    """AlterUserScramCredentials at any broker (it forwards to the controller,
    KIP-590); value None per user altered. Each upsertion must carry its
    ``salt`` (kproto draws no randomness; a facade passes
    ``secrets.token_bytes(24)``): one without fails the call with
    :class:`~kproto.errors.IllegalArgumentError` before anything is sent."""
    deletions: list[Any] = []
    upsertions: list[Any] = []
    users: list[str] = []
    for alt in alterations:
        if isinstance(alt, UserScramCredentialDeletion):
            deletions.append(_aus.ScramCredentialDeletion(name=alt.user, mechanism=int(alt.mechanism)))
        elif isinstance(alt, UserScramCredentialUpsertion):
            salt = alt.salt
            if salt is None:
                # kproto draws no randomness of its own (DESIGN.md), and a
                # non-cryptographic rng must never pick a salt (RFC 5802).
                raise IllegalArgumentError(
                    f"UserScramCredentialUpsertion for {alt.user!r} needs a salt "
                    "(e.g. salt=secrets.token_bytes(24))"
                )
            upsertions.append(
                _aus.ScramCredentialUpsertion(
                    name=alt.user,
                    mechanism=int(alt.mechanism),
                    iterations=alt.iterations,
                    salt=salt,
                    salted_password=alt.salted_password(salt),
                )
            )
        else:
            raise IllegalArgumentError(
                f"alterations take UserScramCredentialUpsertion/Deletion objects, got {alt!r}"
            )
        users.append(alt.user)

    def build(keys: list[str], _t: int) -> Any:
        return _aus.AlterUserScramCredentialsRequest(
            deletions=[d for d in deletions if d.name in keys],
            upsertions=[u for u in upsertions if u.name in keys],
        )

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        return per_unit(resp.results, lambda r: r.user, "alter SCRAM credentials of")

    return engine.start(
        "alter_user_scram_credentials", list(dict.fromkeys(users)), ANY, build, parse, now, timeout_ms
    )

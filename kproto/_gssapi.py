"""The default GSS-API context for SASL GSSAPI: the ``gssapi`` package (the ``kproto[gssapi]`` extra).

Imported only when ``sasl_mechanism='GSSAPI'`` is used. The Kerberos
credentials are the process's (a ``kinit`` ticket cache, or ``KRB5_CLIENT_KTNAME``
for a keytab). Establishing the context may make libkrb5 ask the KDC for
a service ticket: that is the library's own I/O, as in every Kerberos
client (Java's included); nothing else here talks to the network.
"""

from __future__ import annotations

from typing import Any

from kproto.errors import KafkaConfigurationError

__all__ = ["LibGssapiContext", "check_available", "context_factory"]


def check_available() -> None:
    """Raise KafkaConfigurationError if the ``gssapi`` package cannot be imported."""
    try:
        import gssapi  # noqa: F401
    except (ImportError, OSError) as exc:
        raise KafkaConfigurationError(
            "sasl_mechanism='GSSAPI' needs the gssapi package: pip install 'kproto[gssapi]' "
            f"(and libkrb5); importing it failed: {exc}"
        ) from None


class LibGssapiContext:
    """:class:`kproto.sasl.GssapiContext` over ``gssapi.SecurityContext`` (Kerberos mechanism)."""

    def __init__(self, target: str) -> None:
        import gssapi

        name_type = gssapi.NameType.hostbased_service if "@" in target and "/" not in target \
            else gssapi.NameType.kerberos_principal
        name = gssapi.Name(target, name_type=name_type).canonicalize(gssapi.MechType.kerberos)
        self._ctx: Any = gssapi.SecurityContext(name=name, usage="initiate", mech=gssapi.MechType.kerberos)

    @property
    def complete(self) -> bool:
        return bool(self._ctx.complete)

    def step(self, token: bytes | None) -> bytes | None:
        out = self._ctx.step(token)
        return None if out is None else bytes(out)

    def unwrap(self, data: bytes) -> bytes:
        return bytes(self._ctx.unwrap(data).message)

    def wrap(self, data: bytes) -> bytes:
        return bytes(self._ctx.wrap(data, False).message)


def context_factory(target: str) -> LibGssapiContext:
    """A fresh context for the service principal ``target``."""
    return LibGssapiContext(target)

"""Base exception classes shared by ``kproto.errors`` and the generated table."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationFailedError",
    "AuthorizationError",
    "BrokerResponseError",
    "DecodeError",
    "KafkaError",
    "KafkaProtocolError",
]


class KafkaError(Exception):
    """Base of every error kproto raises or reports."""

    #: The failed operation may succeed if tried again.
    retriable: ClassVar[bool] = False
    #: Cluster metadata should be refreshed before a retry.
    refresh_metadata: ClassVar[bool] = False

    @property
    def invalid_metadata(self) -> bool:
        """kafka-python's name for :attr:`refresh_metadata`."""
        return self.refresh_metadata


class KafkaProtocolError(KafkaError):
    """The broker sent bytes that break the protocol; the connection is closed.

    The request is retriable on a fresh connection.
    """

    retriable = True


class DecodeError(KafkaProtocolError):
    """Bytes could not be decoded: truncated, a length out of bounds, bad data."""


class AuthenticationFailedError(KafkaError):
    """SASL or TLS authentication failed; not retried."""


class AuthorizationError(KafkaError):
    """The broker refused an operation to this principal."""


class BrokerResponseError(KafkaError):
    """An error code returned by the broker.

    Subclasses carry ``errno``, the wire ``message`` name, ``retriable`` and
    ``refresh_metadata`` (given as class keywords by the generated table,
    ``kproto/_broker_errors.py``). An instance may carry the broker's error message.
    """

    errno: int = -1
    message: str = "UNKNOWN"

    def __init_subclass__(
        cls,
        *,
        errno: int | None = None,
        message: str | None = None,
        retriable: bool = False,
        refresh_metadata: bool = False,
    ) -> None:
        """The generated table's classes give their facts as class keywords
        (``class X(BrokerResponseError, errno=6, message="...", retriable=True)``);
        a subclass without them inherits its base's."""
        super().__init_subclass__()
        if errno is not None:
            cls.errno = errno
            cls.message = message if message is not None else cls.message
            cls.retriable = retriable
            cls.refresh_metadata = refresh_metadata

    def __str__(self) -> str:
        detail = super().__str__()
        base = f"[Error {self.errno}] {self.message}"
        return f"{base}: {detail}" if detail else base

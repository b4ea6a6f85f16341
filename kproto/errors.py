"""Every error kproto raises or reports.

Broker error codes are data inside the core (code, ``retriable``,
``refresh_metadata``); they become these exception classes where they reach
the user, e.g. as the exception of a failed send future. Names follow
kafka-python where it has one (``NotLeaderForPartitionError``), so code
written against that API keeps working.

Look up a class by wire code with :func:`for_code`; an unknown code maps to
:class:`UnknownBrokerError`, which keeps the number.
"""

from __future__ import annotations

from kproto._broker_errors import *  # noqa: F403 - the generated table
from kproto._broker_errors import BROKER_ERRORS, MessageSizeTooLargeError
from kproto._broker_errors import UnsupportedVersionError as UnsupportedVersionError
from kproto._broker_errors import __all__ as _broker_all
from kproto._error_base import (
    AuthenticationFailedError,
    AuthorizationError,
    BrokerResponseError,
    DecodeError,
    KafkaError,
    KafkaProtocolError,
)

RemoteProtocolError = KafkaProtocolError


class UnknownBrokerError(BrokerResponseError):
    """A broker error code this client does not know; ``errno`` keeps it."""

    message = "UNKNOWN_BROKER_ERROR"

    def __init__(self, errno: int, *args: object) -> None:
        super().__init__(*args)
        self.errno = errno


def for_code(code: int) -> type[BrokerResponseError] | None:
    """Return the class for a wire error code, or None for an unknown code."""
    return BROKER_ERRORS.get(code)


def error_from_code(code: int, message: str | None = None) -> BrokerResponseError:
    """Build the exception for a wire error code, unknown codes included."""
    cls = BROKER_ERRORS.get(code)
    args = (message,) if message else ()
    if cls is None:
        return UnknownBrokerError(code, *args)
    return cls(*args)


def is_retriable(code: int) -> bool:
    """True if the Java client retries this error code."""
    cls = BROKER_ERRORS.get(code)
    return cls.retriable if cls is not None else False


def needs_metadata_refresh(code: int) -> bool:
    """True if this error code means cluster metadata is stale."""
    cls = BROKER_ERRORS.get(code)
    return cls.refresh_metadata if cls is not None else False


def fresh_error(error: KafkaError, *, keep_cause: bool = True) -> KafkaError:
    """A new instance of ``error`` (same type and args) with no traceback.

    Kept errors (raised again later, or once per failed request) are stored
    as such a copy: an exception that was raised holds its traceback, whose
    frames hold their locals (a decompressed payload) and often the object
    that stores the error, a reference cycle only the cyclic GC frees.
    """
    cls = type(error)
    fresh = cls.__new__(cls)  # no __init__: subclasses with their own signature copy as well
    fresh.args = error.args
    fresh.__dict__.update(error.__dict__)
    if keep_cause:
        fresh.__cause__ = error.__cause__
    return fresh


# --- client-side errors ---------------------------------------------------


class KafkaTimeoutError(KafkaError):
    """An operation did not finish within its bound (``max_block_ms``, a timeout)."""

    retriable = True


class KafkaConnectionError(KafkaError):
    """A broker connection failed or was lost; requests on it are retriable."""

    retriable = True
    refresh_metadata = True


class NoBrokersAvailable(KafkaError):
    """No broker in the bootstrap list could be reached."""

    retriable = True
    refresh_metadata = True


class IllegalStateError(KafkaError):
    """The call is not allowed in the object's current state."""


class IllegalArgumentError(KafkaError, ValueError):
    """An argument is out of range for this call."""


class KafkaConfigurationError(KafkaError, ValueError):
    """A configuration option has a value that is not allowed."""


class CorruptRecordChecksumError(CorruptRecordError):  # noqa: F405
    """A record batch's CRC does not match its bytes."""


class UnsupportedCodecError(DecodeError):
    """A compression codec id that is unknown or cannot be decoded here."""


class NoOffsetForPartitionError(KafkaError):
    """No committed offset and ``auto_offset_reset`` allows no reset."""


class CommitFailedError(KafkaError):
    """An offset commit failed because the group rebalanced."""


class RecordTooLargeError(MessageSizeTooLargeError):
    """A single record is over ``max_request_size`` and was never sent."""


class TooManyInFlightRequests(KafkaError):
    """The connection already has ``max_in_flight_requests_per_connection`` requests."""

    retriable = True


class NodeNotReadyError(KafkaError):
    """The node is not connected, or its handshake has not finished."""

    retriable = True


class TransactionAbortedError(KafkaError):
    """A record was dropped because its transaction was aborted before it was sent."""


class Cancelled(KafkaError):
    """The operation was cancelled because the client is closing."""


# kafka-python 3's remaining exception names, so ``except errors.X`` in code
# written for it keeps compiling. kproto reports these conditions with the
# classes named in each docstring; retriability is the ``retriable`` flag on
# every error (broker errors carry it as data), not a base class.


class RetriableError(KafkaError):
    """kafka-python's base of retriable errors; kproto marks them with ``retriable = True``."""

    retriable = True


class InvalidMetadataError(RetriableError):
    """kafka-python name; kproto refreshes metadata itself (``refresh_metadata`` on broker errors)."""

    refresh_metadata = True


class StaleMetadata(InvalidMetadataError):
    """kafka-python name; kproto refreshes stale metadata itself."""


class MetadataEmptyBrokerList(RetriableError):
    """kafka-python name; kproto keeps the previous brokers and retries (KIP-899 rebootstrap)."""


class CorrelationIdError(KafkaProtocolError):
    """kafka-python name; kproto reports a response for no request as :class:`KafkaProtocolError`."""

    retriable = True


class InvalidReceiveError(KafkaProtocolError):
    """kafka-python name; kproto reports a frame over ``receive_message_max_bytes`` as :class:`KafkaProtocolError`."""


class LogTruncationError(KafkaError):
    """The broker's log was truncated past the consumer's position (kafka-python name; KIP-320)."""


class UnknownBrokerIdError(KafkaError):
    """kafka-python name: no broker with that id is known."""


class QuotaViolationError(KafkaError):
    """kafka-python name; kproto honours broker throttling (KIP-219) instead of raising."""


class UnrecognizedBrokerVersion(KafkaError):
    """kafka-python name; kproto refuses an ``api_version`` it has no table for with KafkaConfigurationError."""


__all__ = [  # noqa: F405
    *_broker_all,
    "AuthenticationFailedError",
    "AuthorizationError",
    "BrokerResponseError",
    "Cancelled",
    "CommitFailedError",
    "CorrelationIdError",
    "CorruptRecordChecksumError",
    "DecodeError",
    "IllegalArgumentError",
    "IllegalStateError",
    "InvalidMetadataError",
    "InvalidReceiveError",
    "KafkaConfigurationError",
    "KafkaConnectionError",
    "KafkaError",
    "KafkaProtocolError",
    "KafkaTimeoutError",
    "LogTruncationError",
    "MetadataEmptyBrokerList",
    "NoBrokersAvailable",
    "NoOffsetForPartitionError",
    "NodeNotReadyError",
    "QuotaViolationError",
    "RecordTooLargeError",
    "RemoteProtocolError",
    "RetriableError",
    "StaleMetadata",
    "TooManyInFlightRequests",
    "TransactionAbortedError",
    "UnknownBrokerError",
    "UnknownBrokerIdError",
    "UnrecognizedBrokerVersion",
    "UnsupportedCodecError",
    "error_from_code",
    "for_code",
    "fresh_error",
    "is_retriable",
    "needs_metadata_refresh",
]

"""The record value types both record formats read into (v2 batches and v0/v1 message sets).

A leaf module: :mod:`kproto.protocol.records` and
:mod:`kproto.protocol.legacy_records` both build these, and records.py reads
legacy data through legacy_records, so the types live below both.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = [
    "TIMESTAMP_CREATE_TIME",
    "TIMESTAMP_LOG_APPEND_TIME",
    "TIMESTAMP_NONE",
    "ControlRecord",
    "Record",
    "RecordTuple",
]

#: Record timestamp types (``Record.timestamp_type``); -1 for magic 0 data.
TIMESTAMP_NONE: Final = -1
TIMESTAMP_CREATE_TIME: Final = 0
TIMESTAMP_LOG_APPEND_TIME: Final = 1


class Record(NamedTuple):
    """One record as read from a batch (v2) or message set (v0/v1)."""

    #: Absolute offset in the partition.
    offset: int
    #: Milliseconds since the epoch; -1 when the format has none (magic 0).
    timestamp: int
    #: TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME or TIMESTAMP_NONE.
    timestamp_type: int
    #: The key, or None for a null key.
    key: bytes | None
    #: The value, or None for a null value (a tombstone).
    value: bytes | None
    #: Headers in wire order; empty for v0/v1.
    headers: tuple[tuple[str, bytes | None], ...]


#: A record as a plain tuple, in Record's field order:
#: (offset, timestamp, timestamp_type, key, value, headers).
RecordTuple = tuple[int, int, int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]


class ControlRecord(NamedTuple):
    """A transaction marker: the key and value of a control batch's record."""

    #: Key schema version (0 today).
    version: int
    #: CONTROL_ABORT or CONTROL_COMMIT (other values: unknown marker types).
    type: int
    #: The transaction coordinator's epoch, from the value; -1 if absent.
    coordinator_epoch: int

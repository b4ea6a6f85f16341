"""The record value types both record formats read into (v2 batches and v0/v1 message sets).

A leaf module: :mod:`kproto.protocol.records` and
:mod:`kproto.protocol.legacy_records` both build these, and records.py reads
legacy data through legacy_records, so the types live below both.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = [
    "ATTR_CODEC",
    "TIMESTAMP_CREATE_TIME",
    "TIMESTAMP_LOG_APPEND_TIME",
    "TIMESTAMP_NONE",
    "BatchHeader",
    "ControlRecord",
    "Record",
    "RecordTuple",
]

#: Record timestamp types (``Record.timestamp_type``); -1 for magic 0 data.
TIMESTAMP_NONE: Final = -1
TIMESTAMP_CREATE_TIME: Final = 0
TIMESTAMP_LOG_APPEND_TIME: Final = 1
#: Batch attributes bits 0-2: the compression codec id.
ATTR_CODEC: Final = 0x07


class BatchHeader:
    """The header fields a v2 record batch and a v0/v1 message both have, as
    attributes (:class:`~kproto.protocol.records.RecordBatch`,
    :class:`~kproto.protocol.legacy_records.LegacyBatch`)."""

    __slots__ = (
        "base_offset", "magic", "crc", "attributes", "last_offset_delta", "base_timestamp", "max_timestamp",
        "record_count", "size_in_bytes",
    )  # fmt: skip

    base_offset: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    record_count: int
    size_in_bytes: int

    @property
    def compression(self) -> int:
        """Codec id (attributes bits 0-2)."""
        return self.attributes & ATTR_CODEC

    @property
    def last_offset(self) -> int:
        """Offset of the last record, even if compaction removed it."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset to fetch from after this batch."""
        return self.base_offset + self.last_offset_delta + 1


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

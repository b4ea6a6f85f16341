"""Legacy message sets (magic 0 and 1) - reading only.

Kafka before 0.11 stored messages, not batches. A message set entry::

    offset int64 | messageSize int32 | crc uint32 | magic int8 |
    attributes int8 | [timestamp int64, magic 1 only] |
    keyLength int32 | key | valueLength int32 | value

``crc`` is CRC-32 (zlib) over magic to the end. Attribute bits 0-2 are the
codec (gzip 1, snappy 2, lz4 3; zstd never existed for these magics), bit 3
the timestamp type (magic 1, KIP-32).

A compressed message is a *wrapper*: its value is a compressed message set
of inner messages. For magic 1 (KIP-31) inner offsets are relative: the
wrapper's offset is the absolute offset of the *last* inner message, so
``absolute = wrapper_offset - last_inner_offset + inner_offset`` (applied
only when ``wrapper_offset - last_inner_offset >= 0``, as Java). Magic 0
inner messages carry absolute offsets. With a LogAppendTime wrapper every
inner message takes the wrapper's timestamp (KIP-32).

Since old data is rare, a wrapper is decoded eagerly when the batch is read;
:class:`LegacyBatch` offers the same interface as
:class:`~kproto.protocol.records.RecordBatch`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Final

from kproto.errors import CorruptRecordChecksumError, CorruptRecordError, DecodeError, UnsupportedCodecError
from kproto.protocol import record_types as rt
from kproto.protocol.compression import CODEC_LZ4, DEFAULT_MAX_DECOMPRESSED, decompress

__all__ = ["LegacyBatch", "parse_legacy_batch", "read_legacy_message_set"]

_OFFSET_SIZE = struct.Struct(">qi")
_V0 = struct.Struct(">Ibb")  # crc, magic, attributes
_V1 = struct.Struct(">Ibbq")  # crc, magic, attributes, timestamp
_I32 = struct.Struct(">i")
_ATTR_CODEC: Final = rt.ATTR_CODEC
_ATTR_LOG_APPEND: Final = 0x08
_NO_HEADERS: tuple[tuple[str, bytes | None], ...] = ()


class LegacyBatch(rt.BatchHeader):
    """One top-level v0/v1 message: a plain record or a compressed wrapper.

    Same attributes as :class:`~kproto.protocol.records.RecordBatch`; the
    producer and transaction fields are -1/False because magic < 2 has none.
    """

    __slots__ = ("_records",)

    partition_leader_epoch: Final = -1
    producer_id: Final = -1
    producer_epoch: Final = -1
    base_sequence: Final = -1
    last_sequence: Final = -1
    is_transactional: Final = False
    is_control: Final = False

    def __init__(
        self, magic: int, crc: int, attributes: int, timestamp: int, size: int, records: list[rt.Record]
    ):
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.base_timestamp = timestamp
        self.max_timestamp = timestamp
        self.size_in_bytes = size
        self._records = records
        self.record_count = len(records)
        self.base_offset = records[0].offset
        self.last_offset_delta = records[-1].offset - records[0].offset

    @property
    def timestamp_type(self) -> int:
        """TIMESTAMP_NONE for magic 0, else from attributes bit 3."""
        if self.magic == 0:
            return rt.TIMESTAMP_NONE
        return (
            rt.TIMESTAMP_LOG_APPEND_TIME if self.attributes & _ATTR_LOG_APPEND else rt.TIMESTAMP_CREATE_TIME
        )

    def records(self) -> list[rt.Record]:
        """The message, or a wrapper's inner messages with absolute offsets."""
        return list(self._records)

    def record_tuples(self) -> list[rt.RecordTuple]:
        """:meth:`records` as plain tuples (here the same objects)."""
        out: list[rt.RecordTuple] = list(self._records)
        return out

    def control_record(self) -> rt.ControlRecord | None:
        """Always None: magic < 2 has no control batches."""
        return None

    def __iter__(self) -> Iterator[rt.Record]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"LegacyBatch(magic={self.magic}, base_offset={self.base_offset}, record_count={self.record_count})"


def _parse_message(
    buf: bytes, start: int, end: int, check_crcs: bool
) -> tuple[int, int, int, int, int, bytes | None, bytes | None]:
    """Parse the message in buf[start:end] (from its offset field).

    Returns (offset, crc, magic, attributes, timestamp, key, value).
    """
    offset = _OFFSET_SIZE.unpack_from(buf, start)[0]
    magic = buf[start + 16]
    # Smallest message: 12-byte log overhead + 14 (v0) or 22 (v1) bytes.
    if end - start < (26 if magic == 0 else 34):
        raise CorruptRecordError("legacy message shorter than its header")
    if magic == 0:
        crc, magic, attributes = _V0.unpack_from(buf, start + 12)
        timestamp = -1
        pos = start + 18
    elif magic == 1:
        crc, magic, attributes, timestamp = _V1.unpack_from(buf, start + 12)
        pos = start + 26
    else:
        raise CorruptRecordError(f"unexpected magic {magic} in a legacy message set")
    if check_crcs:
        actual = zlib.crc32(memoryview(buf)[start + 16 : end])
        if actual != crc:
            raise CorruptRecordChecksumError(
                f"message at offset {offset}: CRC {actual:#010x} != stored {crc:#010x}"
            )
    fields: list[bytes | None] = []
    for _ in range(2):
        if pos + 4 > end:
            raise CorruptRecordError("legacy message truncated")
        (length,) = _I32.unpack_from(buf, pos)
        pos += 4
        if length == -1:
            fields.append(None)
            continue
        if length < 0 or pos + length > end:
            raise CorruptRecordError(f"legacy message field length {length} out of bounds")
        fields.append(buf[pos : pos + length])
        pos += length
    if pos != end:
        raise CorruptRecordError("legacy message size does not match its fields")
    return offset, crc, magic, attributes, timestamp, fields[0], fields[1]


def _entries(buf: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each complete message in an inner message set."""
    pos = 0
    n = len(buf)
    while pos < n:
        if pos + 12 > n:
            raise CorruptRecordError("inner message set truncated")
        size = _OFFSET_SIZE.unpack_from(buf, pos)[1]
        end = pos + 12 + size
        if size < 14 or end > n:
            raise CorruptRecordError(f"inner message size {size} out of bounds")
        yield pos, end
        pos = end


def parse_legacy_batch(
    buf: bytes,
    start: int,
    end: int,
    check_crcs: bool = True,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> LegacyBatch:
    """Decode the top-level message buf[start:end], unwrapping compression.

    Raises:
        CorruptRecordChecksumError: a CRC-32 mismatch (outer or inner).
        UnsupportedCodecError: codec bits other than 0..3.
        DecodeError: any other malformation (nested compression included).
    """
    offset, crc, magic, attributes, timestamp, key, value = _parse_message(buf, start, end, check_crcs)
    codec = attributes & _ATTR_CODEC
    size = end - start
    ts_type = (
        rt.TIMESTAMP_NONE
        if magic == 0
        else (rt.TIMESTAMP_LOG_APPEND_TIME if attributes & _ATTR_LOG_APPEND else rt.TIMESTAMP_CREATE_TIME)
    )
    if not codec:
        rec = rt.Record(offset, timestamp, ts_type, key, value, _NO_HEADERS)
        return LegacyBatch(magic, crc, attributes, timestamp, size, [rec])
    if codec > CODEC_LZ4:
        raise UnsupportedCodecError(f"codec id {codec} is not valid for magic {magic}")
    if value is None:
        raise CorruptRecordError("compressed wrapper message has a null value")
    inner = decompress(codec, value, max_size=max_decompressed, lz4_broken_checksum_ok=True)
    parsed = []
    for istart, iend in _entries(inner):
        msg = _parse_message(inner, istart, iend, check_crcs)
        if msg[3] & _ATTR_CODEC:
            raise CorruptRecordError("compressed wrapper contains a compressed message")
        parsed.append(msg)
    if not parsed:
        raise CorruptRecordError("compressed wrapper message holds no messages")
    # KIP-31: magic 1 inner offsets are relative to the wrapper's offset,
    # which is that of the last inner message. As in the Java client, a
    # negative base (a wrapper not yet given offsets by a broker) is ignored.
    shift = offset - parsed[-1][0] if magic > 0 else 0
    if shift < 0:
        shift = 0
    log_append = magic > 0 and attributes & _ATTR_LOG_APPEND
    records = []
    for ioffset, _crc, imagic, _attrs, its, ikey, ivalue in parsed:
        if log_append:
            its = timestamp
        elif magic == 0 or imagic == 0:
            its = -1
        records.append(rt.Record(ioffset + shift, its, ts_type, ikey, ivalue, _NO_HEADERS))
    return LegacyBatch(magic, crc, attributes, timestamp, size, records)


def read_legacy_message_set(
    data: bytes | bytearray | memoryview,
    *,
    check_crcs: bool = True,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Iterator[LegacyBatch]:
    """Iterate a message set that holds only v0/v1 messages.

    A partial message at the end is skipped, as in a fetch response.

    Raises:
        DecodeError: a magic byte other than 0/1, or malformed messages.
    """
    buf = data if type(data) is bytes else bytes(data)
    n = len(buf)
    pos = 0
    while pos + 17 <= n:
        size = _OFFSET_SIZE.unpack_from(buf, pos)[1]
        magic = buf[pos + 16]
        if magic not in (0, 1):
            raise DecodeError(f"magic {magic} in a legacy message set")
        if size < (14 if magic == 0 else 22):
            raise CorruptRecordError(f"message size {size} below the minimum")
        end = pos + 12 + size
        if end > n:
            return
        yield parse_legacy_batch(buf, pos, end, check_crcs, max_decompressed)
        pos = end

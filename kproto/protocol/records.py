"""Kafka record batches (magic 2, KIP-98) - building and reading.

Layout of a v2 batch (all integers big-endian; the "records" section is the
only part that compression covers)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 |
    magic int8 (=2) | crc uint32 | attributes int16 | lastOffsetDelta int32 |
    baseTimestamp int64 | maxTimestamp int64 | producerId int64 |
    producerEpoch int16 | baseSequence int32 | recordCount int32 | records

``batchLength`` counts the bytes after itself; ``crc`` is CRC-32C over
``attributes`` to the end. Attribute bits: 0-2 codec, 3 timestamp type
(1 = LogAppendTime), 4 transactional, 5 control, 6 delete horizon (KIP-534).

A record::

    length varint | attributes int8 | timestampDelta varlong |
    offsetDelta varint | keyLength varint | key | valueLength varint | value |
    headerCount varint | (keyLength varint, key utf-8,
                          valueLength varint, value)*

Every varint here is a zigzag varint (protobuf ``sint``); a length of -1
means null.

Reading dispatches on the magic byte, which sits at byte 16 in both the v2
batch and the legacy v0/v1 message layout, so one fetch blob may mix them
(:mod:`kproto.protocol.legacy_records`).

Hot path notes: :class:`RecordsBuffer` is the one record encoder (the
builder's and the producer core's): each record becomes a few bytes pieces,
from precomputed varint encodings for small ints, added to a list and joined
once at seal time. The reader, :func:`decode_records`, decodes a whole batch
in one loop with 1- and 2-byte varints inlined; it is the one v2 record
reader, also building the consumer's ``ConsumerRecord`` tuples directly
(``kproto.consumer.fetcher``). :class:`Record` is a
``NamedTuple`` rather than an attrs class: building one is ~2x cheaper and the
read benchmark (benchmarks/codec.py) needs that.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any, Final, NamedTuple, TypeVar, overload

import crc32c as _crc32c

from kproto.errors import (
    CorruptRecordChecksumError,
    CorruptRecordError,
    IllegalArgumentError,
    IllegalStateError,
)
from kproto.protocol.compression import (
    CODEC_NONE,
    CODEC_ZSTD,
    DEFAULT_MAX_DECOMPRESSED,
    compress,
    decompress,
)
from kproto.protocol.legacy_records import LegacyBatch, parse_legacy_batch
from kproto.protocol.record_types import (
    ATTR_CODEC,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NONE,
    BatchHeader,
    ControlRecord,
    Record,
    RecordTuple,
)

__all__ = [
    "CONTROL_ABORT",
    "CONTROL_COMMIT",
    "ControlRecord",
    "PLAIN_RECORD_TABLES",
    "PlainRecordTables",
    "RECORD_BATCH_OVERHEAD",
    "RECORD_OVERHEAD_MAX",
    "Record",
    "RecordBatch",
    "RecordBatchBuilder",
    "RecordTuple",
    "RecordsBuffer",
    "TIMESTAMP_CREATE_TIME",
    "TIMESTAMP_LOG_APPEND_TIME",
    "TIMESTAMP_NONE",
    "decode_records",
    "decode_records_at",
    "encode_batch",
    "encode_control_record",
    "encode_headers",
    "parse_control_record",
    "read_batches",
    "read_records",
    "record_size_bound",
    "restamp_batch",
    "single_record_batch_size",
    "zigzag_varint",
]

#: Control record types (KIP-98): the key's ``type`` field.
CONTROL_ABORT: Final = 0
CONTROL_COMMIT: Final = 1

#: Bytes in a v2 batch header before the first record.
RECORD_BATCH_OVERHEAD: Final = 61
# baseOffset + batchLength: the part not counted by batchLength.
_LOG_OVERHEAD: Final = 12
# Smallest record: length, attributes, 2 deltas, null key, null value, 0 headers.
_MIN_RECORD: Final = 7

_ATTR_CODEC: Final = ATTR_CODEC
_ATTR_LOG_APPEND: Final = 0x08
_ATTR_TRANSACTIONAL: Final = 0x10
_ATTR_CONTROL: Final = 0x20

_HEADER = struct.Struct(">qiibIhiqqqhii")
_LENGTH_AND_MAGIC = struct.Struct(">8xi4xb")
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")
_PRODUCER_STATE = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence at byte 43
_CRC = struct.Struct(">I")  # at byte 17


_tuple_new = tuple.__new__


# --- varints ---------------------------------------------------------------

#: Zigzag varints of 0.._TABLE-1 are precomputed (zigzag(n) = 2n for n >= 0):
#: 16384 covers field and record lengths up to the producer's default
#: batch_size, the offset deltas of a full batch and 16 s of timestamp
#: deltas. Larger values take the slow path.
_TABLE: Final = 1 << 14


def _encode_unsigned(u: int) -> bytes:
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def zigzag_varint(n: int) -> bytes:
    """The zigzag varint (varlong) encoding of a signed 64-bit integer."""
    return _encode_unsigned((n << 1) ^ (n >> 63))


_ZZ: Final[list[bytes]] = [_encode_unsigned(n << 1) for n in range(_TABLE)]
_NULL: Final = b"\x01"  # zigzag(-1): a null key, value or header value
_ZERO: Final = b"\x00"  # zigzag(0): an offset delta of 0, no headers
#: A record's attributes byte (always 0) followed by its timestamp delta.
_ATTR_TD: Final[list[bytes]] = [_ZERO + z for z in _ZZ]
#: A null key followed by the length of a value under 4 KiB: one piece
#: fewer to join per record in the common case (~6% of an append).
_NULL_KEY_TABLE: Final = 1 << 12
_NULL_KEY_VLEN: Final[list[bytes]] = [_NULL + z for z in _ZZ[:_NULL_KEY_TABLE]]
#: Encoded lengths of _ZZ and _ATTR_TD entries (a list index is cheaper than len()).
_ZZ_LEN: Final[list[int]] = [len(z) for z in _ZZ]
_ATTR_TD_LEN: Final[list[int]] = [len(z) for z in _ATTR_TD]
#: A null key, a value of length vl (< _NULL_KEY_TABLE) and no headers: the
#: record's bytes after its offset delta, but for the value itself.
_NULL_KEY_REST: Final[list[int]] = [len(_NULL_KEY_VLEN[vl]) + vl + 1 for vl in range(_NULL_KEY_TABLE)]


class PlainRecordTables(NamedTuple):
    """Precomputed encodings for a caller that inlines :meth:`RecordsBuffer.append`.

    For the commonest record - null key, no headers, a value under
    ``null_key_limit`` bytes, appended to a batch that already holds
    ``n`` (< ``limit``) records with a timestamp delta ``td`` (0 <= td <
    ``limit``) - the record is, as pieces of the buffer::

        zz[body], attr_td[td], zz[n], null_key_vlen[vl], value, b"\\x00"

    with ``body = attr_td_len[td] + zz_len[n] + null_key_rest[vl]`` and an
    encoded size of ``zz_len[body] + body`` (``body`` < ``limit`` then).
    The producer core's ``send_many`` appends such records without a call
    per record; a unit test checks it gives the bytes ``append`` gives.
    """

    limit: int
    zz: list[bytes]
    zz_len: list[int]
    attr_td: list[bytes]
    attr_td_len: list[int]
    null_key_limit: int
    null_key_vlen: list[bytes]
    null_key_rest: list[int]


PLAIN_RECORD_TABLES: Final = PlainRecordTables(
    _TABLE, _ZZ, _ZZ_LEN, _ATTR_TD, _ATTR_TD_LEN, _NULL_KEY_TABLE, _NULL_KEY_VLEN, _NULL_KEY_REST
)
# One-byte zigzag decoding: byte -> value.
_ZD: Final[list[int]] = [(b >> 1) ^ -(b & 1) for b in range(128)]
# Two-byte zigzag decoding: index (second byte << 8) | first byte, where the
# first byte has its continuation bit set and the second does not.
_Z2: Final[list[int]] = [0] * (1 << 15)
for _b in range(128, 256):
    for _c in range(128):
        _u = (_b & 0x7F) | (_c << 7)
        _Z2[(_c << 8) | _b] = (_u >> 1) ^ -(_u & 1)
del _b, _c, _u


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a zigzag varlong at ``pos``; return (value, next position)."""
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")


# --- encoding ------------------------------------------------------------------

#: Upper bound of a record's bytes besides its key, value and encoded headers:
#: length (5: a record is under 2**31 bytes) + attributes (1) + timestamp
#: delta (10: a varlong) + offset delta (5) + key length (5) + value length (5).
RECORD_OVERHEAD_MAX: Final = 31
# The same without the key and value lengths (they are exact in record_size_bound).
_FRAMING_MAX: Final = 21


def encode_headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """A record's headers section: count, then (key, value) pairs; ``b"\\x00"`` for none.

    Raises:
        TypeError: a key that is not a str or a value that is not bytes-like or None.
    """
    zz = _ZZ
    n = len(headers)
    parts = [zz[n] if n < _TABLE else zigzag_varint(n)]
    for hkey, hval in headers:
        if not isinstance(hkey, str):
            raise TypeError(f"header keys must be str, not {type(hkey).__name__}")
        k = hkey.encode()
        parts.append(zz[len(k)] if len(k) < _TABLE else zigzag_varint(len(k)))
        parts.append(k)
        if hval is None:
            parts.append(_NULL)
        else:
            if not isinstance(hval, (bytes, bytearray, memoryview)):
                raise TypeError(f"header values must be bytes or None, not {type(hval).__name__}")
            hval = bytes(hval)
            hl = len(hval)
            parts.append(zz[hl] if hl < _TABLE else zigzag_varint(hl))
            parts.append(hval)
    return b"".join(parts)


def record_size_bound(key: bytes | None, value: bytes | None, headers: bytes) -> int:
    """Upper bound of the encoded size of a record, whatever batch it goes to.

    Exact but for the batch-dependent framing (length prefix, timestamp and
    offset deltas), counted at their largest. ``headers`` as from
    :func:`encode_headers`.
    """
    n = _FRAMING_MAX + len(headers)
    for field in (key, value):
        if field is None:
            n += 1
        else:
            fl = len(field)
            n += fl + (len(_ZZ[fl]) if fl < _TABLE else len(zigzag_varint(fl)))
    return n


def single_record_batch_size(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> int:
    """Exact size of an uncompressed batch holding just this record.

    Use it to reject a record over ``max_request_size`` before appending.
    """
    recs = RecordsBuffer()
    recs.append(0, key, value, encode_headers(headers) if headers else _ZERO, 1 << 62)
    return recs.size


class RecordsBuffer:
    """The records of one v2 batch being built, encoded, as a list of bytes pieces.

    The one record encoder: :class:`RecordBatchBuilder` and the producer core
    (whose per-batch state subclasses this) both append through
    :meth:`append`. A record becomes six to eight pieces added to a list in
    one ``+=``, joined once when the batch is sealed; measured ~4x cheaper
    than growing a ``bytearray`` record by record through a method call. Plain attributes, no
    properties: the producer reads them on its hot path.
    """

    __slots__ = ("pieces", "count", "size", "base_ts", "max_ts")

    def __init__(self) -> None:
        #: The encoded records, a few pieces each (see :meth:`encoded`).
        self.pieces: list[bytes] = []
        #: Records appended.
        self.count = 0
        #: Size of the whole batch if sealed now uncompressed: header included.
        self.size = RECORD_BATCH_OVERHEAD
        #: Timestamp of the first record (0 while empty).
        self.base_ts = 0
        #: Largest record timestamp (-1 while empty).
        self.max_ts = -1

    def append(self, ts: int, key: bytes | None, value: bytes | None, headers: bytes, limit: int) -> int:
        """Append one record unless it would make :attr:`size` exceed ``limit``.

        The first record always fits. Keys and values are kept, not copied:
        they must not change until the batch is sealed.

        Args:
            ts: the record's timestamp (ms).
            key: the key, or None.
            value: the value, or None.
            headers: the headers section, from :func:`encode_headers`
                (``b"\\x00"`` for none).
            limit: the largest :attr:`size` allowed after this record.

        Returns:
            The record's encoded size, or 0 if it did not fit (nothing changed).
        """
        zz = _ZZ
        if value is None:
            vl = -1  # (not in _NULL_KEY_VLEN)
            vpre = _NULL
            value = b""
            rest = 1 + len(headers)
        else:
            vl = len(value)
            vpre = zz[vl] if vl < _TABLE else zigzag_varint(vl)
            rest = len(vpre) + vl + len(headers)
        if key is None:
            kv = _NULL_KEY_VLEN[vl] if 0 <= vl < _NULL_KEY_TABLE else _NULL + vpre
            rest += 1
        else:
            kl = len(key)
            kpre = zz[kl] if kl < _TABLE else zigzag_varint(kl)
            rest += len(kpre) + kl
        n = self.count
        if n:
            td = ts - self.base_ts
            tdb = _ATTR_TD[td] if 0 <= td < _TABLE else _ZERO + zigzag_varint(td)
            odb = zz[n] if n < _TABLE else zigzag_varint(n)
            body = len(tdb) + len(odb) + rest
            lb = zz[body] if body < _TABLE else zigzag_varint(body)
            size = len(lb) + body
            if self.size + size > limit:
                return 0
            if ts > self.max_ts:
                self.max_ts = ts
        else:
            if type(ts) is not int:  # later records check it by arithmetic
                raise TypeError(f"timestamp must be an int, not {type(ts).__name__}")
            self.base_ts = self.max_ts = ts
            tdb = _ATTR_TD[0]
            odb = _ZERO
            body = 3 + rest
            lb = zz[body] if body < _TABLE else zigzag_varint(body)
            size = len(lb) + body
        if key is None:
            self.pieces += (lb, tdb, odb, kv, value, headers)
        else:
            self.pieces += (lb, tdb, odb, kpre, key, vpre, value, headers)
        self.count = n + 1
        self.size += size
        return size

    def encoded(self) -> bytes:
        """The records section, uncompressed: the pieces joined (they become this one piece)."""
        data = b"".join(self.pieces)
        self.pieces = [data]
        return data


def encode_batch(
    records: bytes,
    *,
    count: int,
    base_timestamp: int,
    max_timestamp: int,
    attributes: int,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
) -> bytearray:
    """A v2 batch: the header, CRC included, followed by ``records``.

    Args:
        records: the records section, compressed as ``attributes`` says.
        count: how many records it holds (at least 1).
        base_timestamp: the first record's timestamp.
        max_timestamp: the largest record timestamp.
        attributes: codec id and flag bits.
        producer_id: idempotent/transactional producer id, -1 if none.
        producer_epoch: its epoch, -1 if none.
        base_sequence: sequence number of the first record, -1 if none.
        base_offset: 0 from producers (the broker assigns offsets).
        partition_leader_epoch: -1 from producers.

    Returns:
        A new bytearray; :func:`restamp_batch` may change its producer state.
    """
    out = bytearray(RECORD_BATCH_OVERHEAD)
    out += records
    _HEADER.pack_into(
        out, 0, base_offset, len(out) - _LOG_OVERHEAD, partition_leader_epoch, 2, 0, attributes,
        count - 1, base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence, count,
    )  # fmt: skip
    # CRC-32C from attributes (byte 21) to the end (KIP-98).
    _CRC.pack_into(out, 17, _crc32c.crc32c(memoryview(out)[21:]))
    return out


def restamp_batch(batch: bytearray, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
    """Rewrite an encoded batch's producer id, epoch and base sequence (and so its CRC) in place."""
    _PRODUCER_STATE.pack_into(batch, 43, producer_id, producer_epoch, base_sequence)
    _CRC.pack_into(batch, 17, _crc32c.crc32c(memoryview(batch)[21:]))


# --- building --------------------------------------------------------------


class RecordBatchBuilder:
    """Accumulates records into one v2 batch; sealed into bytes later.

    Records are encoded as they are appended (by a :class:`RecordsBuffer`);
    :meth:`seal` adds the header (producer id/epoch, base sequence, flags,
    CRC) and compresses. Sealing may be repeated - a retry re-seals with the
    same or new producer state, and the records part (compressed once per
    codec, then cached) is byte-identical. No record may be appended after
    the first seal.

    Args:
        size_limit: ``append`` refuses a record that would make the
            uncompressed batch larger than this (the first record always
            fits). None means no limit.
        compression: codec id 0..4 used by :meth:`seal` by default.
        is_control: build a control batch (a broker or test helper).
    """

    __slots__ = ("_recs", "_limit", "_compression", "_is_control", "_payload")

    def __init__(
        self,
        *,
        size_limit: int | None = None,
        compression: int = CODEC_NONE,
        is_control: bool = False,
    ) -> None:
        if not 0 <= compression <= CODEC_ZSTD:
            raise IllegalArgumentError(f"unknown compression codec id {compression}")
        self._recs = RecordsBuffer()
        # (1 << 62) stands for "no limit" and keeps the hot path branch-free.
        self._limit = (1 << 62) if size_limit is None else size_limit
        self._compression = compression
        self._is_control = is_control
        #: The records section per codec id, once sealed.
        self._payload: dict[int, bytes] | None = None

    @property
    def record_count(self) -> int:
        """Records appended so far."""
        return self._recs.count

    @property
    def size_in_bytes(self) -> int:
        """Exact size of the batch if sealed now without compression."""
        return self._recs.size

    @property
    def base_timestamp(self) -> int:
        """Timestamp of the first record (0 if empty)."""
        return self._recs.base_ts

    @property
    def max_timestamp(self) -> int:
        """Largest record timestamp so far (-1 if empty)."""
        return self._recs.max_ts

    @property
    def is_sealed(self) -> bool:
        """True once :meth:`seal` has been called."""
        return self._payload is not None

    def append(
        self,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] = (),
    ) -> int | None:
        """Append one record.

        Args:
            timestamp_ms: create time in milliseconds since the epoch.
            key: the key bytes, or None.
            value: the value bytes, or None.
            headers: (name, value) pairs; a value may be None.

        Returns:
            The record's offset delta (0 for the first record), or None if it
            does not fit within ``size_limit`` (nothing was appended).

        Raises:
            IllegalStateError: the batch is already sealed.
            TypeError: a timestamp that is not an int, headers of the wrong types.
        """
        if self._payload is not None:
            raise IllegalStateError("record batch is sealed")
        # Copies of bytearray/memoryview fields: the caller may reuse them.
        if key is not None and type(key) is not bytes:
            key = bytes(key)
        if value is not None and type(value) is not bytes:
            value = bytes(value)
        recs = self._recs
        n = recs.count
        hb = encode_headers(headers) if headers else _ZERO
        if not recs.append(timestamp_ms, key, value, hb, self._limit):
            return None
        return n

    def seal(
        self,
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        is_transactional: bool = False,
        compression: int | None = None,
        base_offset: int = 0,
        partition_leader_epoch: int = -1,
    ) -> bytes:
        """Encode the batch, ready for a Produce request's ``records`` field.

        Args:
            producer_id: idempotent/transactional producer id, -1 if none.
            producer_epoch: its epoch, -1 if none.
            base_sequence: sequence number of the first record, -1 if none.
            is_transactional: set the transactional attribute bit.
            compression: codec id; None uses the constructor's.
            base_offset: 0 from producers (the broker assigns offsets).
            partition_leader_epoch: -1 from producers.

        Returns:
            The batch bytes. Calling again with the same arguments returns
            equal bytes.

        Raises:
            IllegalStateError: the batch has no records.
        """
        recs = self._recs
        if not recs.count:
            raise IllegalStateError("cannot seal an empty record batch")
        codec = self._compression if compression is None else compression
        if self._payload is None:
            self._payload = {}
        payload = self._payload.get(codec)
        if payload is None:
            raw = recs.encoded()
            payload = compress(codec, raw) if codec else raw
            self._payload[codec] = payload
        attributes = codec
        if is_transactional:
            attributes |= _ATTR_TRANSACTIONAL
        if self._is_control:
            attributes |= _ATTR_CONTROL
        return bytes(
            encode_batch(
                payload,
                count=recs.count,
                base_timestamp=recs.base_ts,
                max_timestamp=recs.max_ts,
                attributes=attributes,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                base_sequence=base_sequence,
                base_offset=base_offset,
                partition_leader_epoch=partition_leader_epoch,
            )
        )


def encode_control_record(kind: int, coordinator_epoch: int = 0) -> tuple[bytes, bytes]:
    """Key and value of a transaction marker record (KIP-98).

    Key: version int16 (0), type int16. Value: version int16 (0),
    coordinator epoch int32.
    """
    return _CONTROL_KEY.pack(0, kind), _CONTROL_VALUE.pack(0, coordinator_epoch)


def parse_control_record(record: Record) -> ControlRecord:
    """Parse a control batch's record into a :class:`ControlRecord`.

    Raises:
        CorruptRecordError: the key is shorter than 4 bytes.
    """
    key = record.key
    if key is None or len(key) < 4:
        raise CorruptRecordError("control record key too short")
    version, kind = _CONTROL_KEY.unpack_from(key)
    value = record.value
    epoch = _CONTROL_VALUE.unpack_from(value)[1] if value is not None and len(value) >= 6 else -1
    return ControlRecord(version, kind, epoch)


# --- reading ---------------------------------------------------------------


class RecordBatch(BatchHeader):
    """A v2 record batch read from a fetch; records are decoded on demand.

    Header fields are plain attributes. :meth:`records` (or iteration)
    decompresses and decodes every record at once.
    """

    __slots__ = (
        "partition_leader_epoch", "producer_id", "producer_epoch", "base_sequence",
        "_buf", "_start", "_end", "_max_decompressed",
    )  # fmt: skip

    partition_leader_epoch: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    _buf: bytes
    _start: int
    _end: int
    _max_decompressed: int

    @property
    def timestamp_type(self) -> int:
        """TIMESTAMP_CREATE_TIME or TIMESTAMP_LOG_APPEND_TIME (bit 3)."""
        return TIMESTAMP_LOG_APPEND_TIME if self.attributes & _ATTR_LOG_APPEND else TIMESTAMP_CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        """Attributes bit 4: the batch is part of a transaction."""
        return bool(self.attributes & _ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        """Attributes bit 5: a control batch (transaction markers)."""
        return bool(self.attributes & _ATTR_CONTROL)

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record (wraps at 2**31), or -1."""
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF

    def __iter__(self) -> Iterator[Record]:
        """Iterate the records; each :class:`Record` is made as it is reached.

        Lazily (a C-level ``map``) rather than via :meth:`records`: records
        the caller drops at once never pile up, which keeps the cyclic GC
        from running every few hundred records.
        """
        tuples = self.record_tuples()
        return map(_tuple_new, repeat(Record, len(tuples)), tuples)

    def __repr__(self) -> str:
        return (
            f"RecordBatch(base_offset={self.base_offset}, record_count={self.record_count}, "
            f"attributes={self.attributes:#x}, producer_id={self.producer_id})"
        )

    def control_record(self) -> ControlRecord | None:
        """The marker of a control batch, or None for a data batch.

        Raises:
            DecodeError: the batch or its control record is malformed.
        """
        if not self.attributes & _ATTR_CONTROL:
            return None
        recs = self.records()
        if not recs:
            raise CorruptRecordError("control batch without records")
        return parse_control_record(recs[0])

    def records(self) -> list[Record]:
        """Decompress and decode all records.

        Raises:
            DecodeError: malformed records (CorruptRecordError) or payload.
            UnsupportedCodecError: unknown codec id.
        """
        tuples = self.record_tuples()
        # tuple.__new__ mapped in C: the cheapest way to make the NamedTuples
        # (calling Record(...) runs a Python-level __new__, twice the cost).
        return list(map(_tuple_new, repeat(Record, len(tuples)), tuples))

    def record_tuples(self) -> list[RecordTuple]:
        """Like :meth:`records` but plain tuples in :class:`Record` field order.

        The fastest way to read: saves one object per record, for callers
        that build their own record objects (the consumer) anyway.

        Raises:
            DecodeError: as :meth:`records`.
        """
        codec = self.attributes & _ATTR_CODEC
        if codec:
            payload = decompress(
                codec,
                memoryview(self._buf)[self._start + RECORD_BATCH_OVERHEAD : self._end],
                max_size=self._max_decompressed,
            )
            recs = decode_records(
                payload, 0, len(payload), self.record_count, self.base_offset, self.base_timestamp
            )
        else:
            recs = decode_records(
                self._buf,
                self._start + RECORD_BATCH_OVERHEAD,
                self._end,
                self.record_count,
                self.base_offset,
                self.base_timestamp,
            )
        if self.attributes & _ATTR_LOG_APPEND:
            # KIP-32: with LogAppendTime every record carries maxTimestamp.
            ts = self.max_timestamp
            recs = [(r[0], ts, TIMESTAMP_LOG_APPEND_TIME, r[3], r[4], r[5]) for r in recs]
        return recs


#: Shared by every record without headers (an immutable value, not a fresh
#: container per record).
_NO_HEADERS: Final[tuple[tuple[str, bytes | None], ...]] = ()


def _decode_headers(buf: bytes, pos: int, end: int) -> tuple[tuple[tuple[str, bytes | None], ...], int, int]:
    """A record's headers at ``pos`` (count first): ``(headers, serialized size, next position)``.

    The size is the sum of the header key and value lengths (the consumer's
    ``serialized_header_size``).
    """
    count, pos = _read_varint(buf, pos)
    if count < 0 or count > (end - pos) // 2:
        raise CorruptRecordError(f"invalid header count {count}")
    out: list[tuple[str, bytes | None]] = []
    size = 0
    for _ in range(count):
        kl, pos = _read_varint(buf, pos)
        if kl < 0 or pos + kl > end:
            raise CorruptRecordError(f"invalid header key length {kl}")
        try:
            hkey = buf[pos : pos + kl].decode()
        except UnicodeDecodeError:
            raise CorruptRecordError("header key is not UTF-8") from None
        pos += kl
        vl, pos = _read_varint(buf, pos)
        if vl < -1 or pos + vl > end:
            raise CorruptRecordError(f"invalid header value length {vl}")
        hval: bytes | None
        if vl == -1:
            hval = None
        else:
            hval = buf[pos : pos + vl]
            pos += vl
            size += vl
        size += kl
        out.append((hkey, hval))
    return tuple(out), size, pos


#: The record class of a consumer's records (``ConsumerRecord``), built by the decoder.
_Rec = TypeVar("_Rec", bound=tuple[object, ...])


@overload
def decode_records(
    buf: bytes, pos: int, end: int, count: int, base_offset: int, base_ts: int,
    topic: None = None, partition: int = -1, record_type: type[tuple[object, ...]] = tuple,
) -> list[RecordTuple]: ...
@overload
def decode_records(
    buf: bytes, pos: int, end: int, count: int, base_offset: int, base_ts: int,
    topic: str, partition: int, record_type: type[_Rec],
) -> list[_Rec]: ...
def decode_records(
    buf: bytes,
    pos: int,
    end: int,
    count: int,
    base_offset: int,
    base_ts: int,
    topic: str | None = None,
    partition: int = -1,
    record_type: type[tuple[object, ...]] = tuple,
) -> Sequence[tuple[object, ...]]:
    """Decode the ``count`` records of a v2 batch from ``buf[pos:end]``, which they must fill exactly.

    :func:`decode_records_at` for a whole batch; see there.

    Raises:
        CorruptRecordError: the records do not parse or do not fill the range.
    """
    return decode_records_at(buf, pos, end, count, base_offset, base_ts, topic, partition, record_type)[0]


@overload
def decode_records_at(
    buf: bytes, pos: int, end: int, count: int, base_offset: int, base_ts: int,
    topic: None = None, partition: int = -1, record_type: type[tuple[object, ...]] = tuple,
    limit: int = -1, prev_delta: int = -1, max_delta: int = 2**31 - 1,
) -> tuple[list[RecordTuple], int]: ...
@overload
def decode_records_at(
    buf: bytes, pos: int, end: int, count: int, base_offset: int, base_ts: int,
    topic: str, partition: int, record_type: type[_Rec],
    limit: int = -1, prev_delta: int = -1, max_delta: int = 2**31 - 1,
) -> tuple[list[_Rec], int]: ...
def decode_records_at(
    buf: bytes,
    pos: int,
    end: int,
    count: int,
    base_offset: int,
    base_ts: int,
    topic: str | None = None,
    partition: int = -1,
    record_type: type[tuple[object, ...]] = tuple,
    limit: int = -1,
    prev_delta: int = -1,
    max_delta: int = 2**31 - 1,
) -> tuple[Sequence[tuple[object, ...]], int]:
    """Decode the next records of a v2 batch: ``(records, position after them)``.

    ``buf[pos:end]`` holds the batch's ``count`` remaining records; with
    ``limit`` >= 0 only the first ``limit`` of them are decoded, and a later
    call goes on from the returned position (with ``count`` minus those).
    The consumer decodes a batch in ``poll``-sized steps that way, so records
    come into existence only when they are handed out (fewer live objects:
    the cyclic GC runs far less often).

    The one v2 record reader: :meth:`RecordBatch.record_tuples` and the
    consumer's fetcher both use it. Two output shapes, chosen per call:

    - ``topic`` None: :data:`RecordTuple` plain tuples
      ``(offset, timestamp, 0, key, value, headers)``;
    - ``topic`` given: ``record_type`` instances (the consumer's
      ``ConsumerRecord``) built from ``(topic, partition, offset, timestamp,
      0, key, value, headers, None, key size, value size, header size)``,
      sizes -1 for a null key or value or no headers. Built here with
      ``tuple.__new__`` rather than from the plain tuple afterwards: one
      allocation per record fewer.

    Timestamps are CreateTime (``base_ts`` + delta); the caller rewrites
    LogAppendTime batches. The 1- and 2-byte varint cases are inlined (the
    2-byte ones by table): lengths and offset deltas under 8192 and
    timestamp deltas within +-8 s of the first record stay in this loop.

    Offset deltas must rise strictly from ``prev_delta`` (the last one
    decoded before this call, -1 at the start of a batch) and stay within
    ``max_delta`` (the batch's ``lastOffsetDelta``): a broker that repeats or
    reorders offsets must not make the consumer hand one out twice or move
    its position back (Kafka writes deltas 0, 1, ... and compaction only
    leaves gaps).

    Raises:
        CorruptRecordError: the records do not parse, their offsets do not
            rise within the batch, or (once the last one is decoded) they do
            not fill the range exactly.
    """
    if count < 0 or count > (end - pos) // _MIN_RECORD:
        raise CorruptRecordError(f"record count {count} does not fit in the batch")
    n = count if limit < 0 or limit > count else limit
    zd = _ZD
    z2 = _Z2
    rv = _read_varint
    new = tuple.__new__
    narrow = topic is None
    out: list[Any] = []
    app = out.append
    no_headers = _NO_HEADERS
    headers: tuple[tuple[str, bytes | None], ...]
    try:
        for _ in range(n):
            # length
            b = buf[pos]
            if b < 128:
                ln = zd[b]
                pos += 1
            else:
                c = buf[pos + 1]
                if c < 128:
                    ln = z2[(c << 8) | b]
                    pos += 2
                else:
                    ln, pos = rv(buf, pos)
            rend = pos + ln
            # attributes (unused, KIP-98) then timestampDelta
            b = buf[pos + 1]
            if b < 128:
                td = zd[b]
                pos += 2
            else:
                c = buf[pos + 2]
                if c < 128:
                    td = z2[(c << 8) | b]
                    pos += 3
                else:
                    td, pos = rv(buf, pos + 1)
            # offsetDelta
            b = buf[pos]
            if b < 128:
                od = zd[b]
                pos += 1
            else:
                c = buf[pos + 1]
                if c < 128:
                    od = z2[(c << 8) | b]
                    pos += 2
                else:
                    od, pos = rv(buf, pos)
            if od <= prev_delta:
                raise CorruptRecordError(f"record offset delta {od} does not rise above {prev_delta}")
            prev_delta = od
            # key (1 = zigzag(-1): null)
            b = buf[pos]
            if b == 1:
                key = None
                kl = -1
                pos += 1
            else:
                if b < 128:
                    kl = zd[b]
                    pos += 1
                else:
                    c = buf[pos + 1]
                    if c < 128:
                        kl = z2[(c << 8) | b]
                        pos += 2
                    else:
                        kl, pos = rv(buf, pos)
                if kl < 0:
                    raise CorruptRecordError(f"invalid key length {kl}")
                key = buf[pos : pos + kl]
                pos += kl
            # value
            b = buf[pos]
            if b == 1:
                value = None
                vl = -1
                pos += 1
            else:
                if b < 128:
                    vl = zd[b]
                    pos += 1
                else:
                    c = buf[pos + 1]
                    if c < 128:
                        vl = z2[(c << 8) | b]
                        pos += 2
                    else:
                        vl, pos = rv(buf, pos)
                if vl < 0:
                    raise CorruptRecordError(f"invalid value length {vl}")
                value = buf[pos : pos + vl]
                pos += vl
            # headers
            if buf[pos] == 0:
                headers = no_headers
                hsize = -1
                pos += 1
            else:
                headers, hsize, pos = _decode_headers(buf, pos, rend)
            if pos != rend:
                raise CorruptRecordError("record length does not match its fields")
            if narrow:
                app((base_offset + od, base_ts + td, 0, key, value, headers))
            else:
                app(
                    new(
                        record_type,
                        (
                            topic,
                            partition,
                            base_offset + od,
                            base_ts + td,
                            0,
                            key,
                            value,
                            headers,
                            None,
                            kl,
                            vl,
                            hsize,
                        ),
                    )
                )
    except IndexError:
        raise CorruptRecordError("record runs past the end of its batch") from None
    if prev_delta > max_delta:
        raise CorruptRecordError(
            f"record offset delta {prev_delta} beyond the batch's last offset delta {max_delta}"
        )
    if pos != end and n == count:
        raise CorruptRecordError("record batch has bytes after its last record")
    if pos > end:
        raise CorruptRecordError("record runs past the end of its batch")
    return out, pos


def _parse_v2(buf: bytes, start: int, end: int, check_crcs: bool, max_decompressed: int) -> RecordBatch:
    (
        base_offset,
        _length,
        ple,
        magic,
        crc,
        attributes,
        lod,
        base_ts,
        max_ts,
        pid,
        pepoch,
        bseq,
        count,
    ) = _HEADER.unpack_from(buf, start)
    if check_crcs:
        actual = _crc32c.crc32c(memoryview(buf)[start + 21 : end])
        if actual != crc:
            raise CorruptRecordChecksumError(
                f"record batch at offset {base_offset}: CRC {actual:#010x} != stored {crc:#010x}"
            )
    if count < 0:
        raise CorruptRecordError(f"negative record count {count}")
    batch = RecordBatch.__new__(RecordBatch)
    batch.base_offset = base_offset
    batch.partition_leader_epoch = ple
    batch.magic = magic
    batch.crc = crc
    batch.attributes = attributes
    batch.last_offset_delta = lod
    batch.base_timestamp = base_ts
    batch.max_timestamp = max_ts
    batch.producer_id = pid
    batch.producer_epoch = pepoch
    batch.base_sequence = bseq
    batch.record_count = count
    batch.size_in_bytes = end - start
    batch._buf = buf
    batch._start = start
    batch._end = end
    batch._max_decompressed = max_decompressed
    return batch


AnyBatch = RecordBatch | LegacyBatch


def read_batches(
    data: bytes | bytearray | memoryview,
    *,
    check_crcs: bool = True,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Iterator[AnyBatch]:
    """Iterate the batches of a fetch ``records`` blob, lazily.

    v2 batches come out as :class:`RecordBatch`, v0/v1 messages as
    :class:`~kproto.protocol.legacy_records.LegacyBatch` (same interface).
    A partial batch at the end - brokers cut responses at a size limit - is
    skipped silently.

    Args:
        data: the blob.
        check_crcs: verify each batch's CRC (CRC-32C for v2, CRC-32 for v0/v1).
        max_decompressed: bound for one decompressed payload.

    Raises:
        CorruptRecordChecksumError: a CRC mismatch.
        CorruptRecordError: a bad magic byte or a batch length too small.
        DecodeError: other malformed data (legacy wrappers are decoded eagerly).
    """
    buf = data if type(data) is bytes else bytes(data)
    n = len(buf)
    pos = 0
    # 17 bytes: enough to see the length field and the magic byte.
    while pos + 17 <= n:
        length, magic = _LENGTH_AND_MAGIC.unpack_from(buf, pos)
        end = pos + _LOG_OVERHEAD + length
        if magic == 2:
            if length < RECORD_BATCH_OVERHEAD - _LOG_OVERHEAD:
                raise CorruptRecordError(f"record batch length {length} below the minimum")
            if end > n:
                return  # partial trailing batch
            yield _parse_v2(buf, pos, end, check_crcs, max_decompressed)
        elif magic == 0 or magic == 1:
            if length < (14 if magic == 0 else 22):
                raise CorruptRecordError(f"message size {length} below the minimum")
            if end > n:
                return
            yield parse_legacy_batch(buf, pos, end, check_crcs, max_decompressed)
        else:
            raise CorruptRecordError(f"unknown record batch magic {magic}")
        pos = end


def read_records(
    data: bytes | bytearray | memoryview,
    *,
    check_crcs: bool = True,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Iterator[Record]:
    """Every record of every non-control batch in ``data``, in order.

    Convenience for tests and tools; consumers that honour
    ``isolation_level=read_committed`` iterate :func:`read_batches`.
    """
    for batch in read_batches(data, check_crcs=check_crcs, max_decompressed=max_decompressed):
        if not batch.is_control:
            yield from batch.records()

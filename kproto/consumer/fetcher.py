"""Fetched partition data, decoded into ``ConsumerRecord`` batch by batch on demand.

Theory of operation
-------------------
A Fetch response gives, per partition, a ``records`` blob: whole record
batches (v2) or legacy messages (v0/v1), possibly followed by a partial
batch the broker cut at a size limit. On arrival the core wraps each blob in
a :class:`PartitionRecords` after one cheap walk over the batch *headers*
(:func:`scan_blob`): that gives the offset after the last whole batch, where
the next Fetch for the partition may start while this data still waits to be
read (prefetch), and the byte count that bounds what is buffered.

Records are only decoded when ``poll`` asks for them, and only as many as
it asks for (a batch is decoded in steps), by
:func:`kproto.protocol.records.decode_records_at`, the one v2 record reader
(shared with :class:`~kproto.protocol.records.RecordBatch`): a single loop
that reads the zigzag varints of each record (1- and 2-byte cases inline,
the latter by table) and builds the :class:`ConsumerRecord` tuple directly,
with no intermediate object. That loop is the consumer's hot path.
Decoding no more than is handed out keeps the number of live records low:
each is a GC-tracked tuple subclass, so records decoded ahead of time (a
whole batch while the user still holds the previous poll's) made the cyclic
GC run about ten times as often (~8% of the consume CPU).

Which batches are skipped (KIP-98, as the Java fetcher):

- control batches (transaction markers) are never returned; with
  ``read_committed`` an ABORT marker ends that producer's aborted range;
- with ``read_committed``, a transactional batch whose producer id has an
  aborted transaction starting at or before the batch's last offset (from the
  response's ``aborted_transactions``) is dropped;
- records before the fetch position (a compressed batch or legacy wrapper
  starts before it) are dropped.

The position moves to the offset after the last returned record, and to a
batch's ``next_offset`` once every record of that batch is returned or the
batch is skipped, so compaction gaps and control records never stall it.

Offsets are broker input and checked before use (issue 15): a batch's
offsets lie in 0..2**63-2, and its records' offsets rise strictly within
``[baseOffset, baseOffset + lastOffsetDelta]``. A batch that breaks this is
a :class:`CorruptRecordError` raised when the reader reaches it, like a CRC
mismatch: records before it are handed out once, the position never moves
back, and no offset is handed out twice.
"""

from __future__ import annotations

import heapq
import struct
from typing import Any, Final

import crc32c as _crc32c

from kproto.consumer.config import Deserializer
from kproto.consumer.types import ConsumerRecord, RecordDeserializationError, TopicPartition
from kproto.errors import CorruptRecordChecksumError, CorruptRecordError, KafkaError, fresh_error
from kproto.protocol.compression import decompress
from kproto.protocol.legacy_records import parse_legacy_batch
from kproto.protocol.records import decode_records, decode_records_at

__all__ = ["MAX_OFFSET", "PartitionRecords", "scan_blob"]

_HEADER = struct.Struct(">qiibIhiqqqhii")
_LENGTH_AND_MAGIC = struct.Struct(">8xi4xb")
_BASE_AND_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_CONTROL_KEY = struct.Struct(">hh")
#: v2 batch header size: baseOffset .. recordCount.
_V2_OVERHEAD: Final = 61
#: baseOffset + batchLength (or offset + messageSize for v0/v1).
_LOG_OVERHEAD: Final = 12
_ATTR_CODEC: Final = 0x07
_ATTR_LOG_APPEND: Final = 0x08
_ATTR_TRANSACTIONAL: Final = 0x10
_ATTR_CONTROL: Final = 0x20
_CONTROL_ABORT: Final = 0
#: The largest fetch offset (int64). The offset after a record must not exceed it
#: (the next Fetch carries it), so the last offset a record may have is 2**63-2.
MAX_OFFSET: Final = 2**63 - 1
#: Fewest records decoded in one step: a tiny ``max_records`` (1 is a common choice)
#: should not pay the decoder's per-call setup for every record.
_MIN_STEP: Final = 32
#: Headers of legacy (v0/v1) records, which have none.
_NO_HEADERS: Final[tuple[tuple[str, bytes | None], ...]] = ()


def scan_blob(buf: bytes, fetch_offset: int) -> tuple[int, int]:
    """Walk the batch headers of a fetch blob.

    Returns:
        ``(end, next_offset)``: the byte length of the whole batches, and the
        offset after the last whole batch (``fetch_offset`` if there is none).
        A batch whose offsets are impossible (negative, or the offset after it
        beyond int64) ends the walk: it is included in ``end`` so that the
        reader raises when it gets there, after handing out what precedes it,
        but ``next_offset`` stays before it, so the next Fetch can always be
        encoded.

    Raises:
        CorruptRecordError: a batch length below the minimum or a bad magic.
    """
    pos = 0
    n = len(buf)
    nxt = fetch_offset
    unpack = _LENGTH_AND_MAGIC.unpack_from
    while pos + 17 <= n:
        length, magic = unpack(buf, pos)
        end = pos + _LOG_OVERHEAD + length
        if end > n:
            break
        if magic == 2:
            if length < _V2_OVERHEAD - _LOG_OVERHEAD:
                raise CorruptRecordError(f"record batch length {length} below the minimum")
            base = _BASE_AND_LENGTH.unpack_from(buf, pos)[0]
            after = base + _LAST_OFFSET_DELTA.unpack_from(buf, pos + 23)[0] + 1
            if base < 0 or after <= base or after > MAX_OFFSET:
                return end, max(nxt, fetch_offset)  # the reader reports it once it gets there
        elif magic == 0 or magic == 1:
            if length < 14:
                raise CorruptRecordError(f"message size {length} below the minimum")
            # A legacy wrapper's offset is that of its last inner message.
            after = _BASE_AND_LENGTH.unpack_from(buf, pos)[0] + 1
            if not 0 < after <= MAX_OFFSET:
                return end, max(nxt, fetch_offset)
        else:
            raise CorruptRecordError(f"unknown record batch magic {magic}")
        nxt = after
        pos = end
    return pos, max(nxt, fetch_offset)


class PartitionRecords:
    """One partition's data from one Fetch response, decoded lazily.

    The core owns positions; this object reports, through :attr:`position`,
    the offset after what it has handed out.
    """

    __slots__ = (
        "tp",
        "epoch",
        "nbytes",
        "next_fetch_offset",
        "position",
        "high_watermark",
        "_buf",
        "_pos",
        "_end",
        "_recs",
        "_idx",
        "_rbuf",
        "_rpos",
        "_rend",
        "_rleft",
        "_base",
        "_delta",
        "_lod",
        "_base_ts",
        "_max_ts",
        "_ts_type",
        "_failed",
        "_batch_next",
        "_check_crcs",
        "_max_decompressed",
        "_read_committed",
        "_aborted",
        "_aborted_pids",
    )

    def __init__(
        self,
        tp: TopicPartition,
        epoch: int,
        buf: bytes,
        fetch_offset: int,
        *,
        high_watermark: int = -1,
        check_crcs: bool = True,
        read_committed: bool = False,
        aborted: list[tuple[int, int]] | None = None,
        max_decompressed: int = 64 * 1024 * 1024,
    ) -> None:
        """Wrap ``buf`` fetched from ``fetch_offset``.

        Args:
            tp: the partition.
            epoch: the core's seek epoch for ``tp`` when the fetch was sent.
            buf: the records blob.
            fetch_offset: the offset the Fetch asked for (the position).
            high_watermark: from the response, for ``highwater()`` / lag.
            check_crcs: verify every batch's CRC.
            read_committed: drop aborted transactions (KIP-98).
            aborted: ``(first_offset, producer_id)`` of each aborted transaction.
            max_decompressed: bound on one decompressed batch payload.

        Raises:
            CorruptRecordError: the batch headers are malformed.
        """
        self.tp = tp
        self.epoch = epoch
        self._end, self.next_fetch_offset = scan_blob(buf, fetch_offset)
        #: Bytes this object holds, for the prefetch bound.
        self.nbytes = self._end
        self.position = fetch_offset
        self.high_watermark = high_watermark
        self._buf = buf
        self._pos = 0
        self._recs: list[ConsumerRecord] = []
        self._idx = 0
        # The v2 batch being decoded step by step: its records (``_rbuf``, the blob or
        # the decompressed payload) from ``_rpos`` to ``_rend``, ``_rleft`` of them left.
        self._rbuf = b""
        self._rpos = 0
        self._rend = 0
        self._rleft = 0
        self._base = 0
        #: The last offset delta decoded in the current v2 batch, and its lastOffsetDelta.
        self._delta = -1
        self._lod = 0
        self._base_ts = 0
        self._max_ts = 0
        self._ts_type = 0
        #: The decode error met, raised again by every later take().
        self._failed: KafkaError | None = None
        self._batch_next = -1
        self._check_crcs = check_crcs
        self._max_decompressed = max_decompressed
        self._read_committed = read_committed
        self._aborted = list(aborted) if aborted else []
        heapq.heapify(self._aborted)
        self._aborted_pids: set[int] = set()

    @property
    def exhausted(self) -> bool:
        """True once every record was handed out (or skipped); never after a decode error."""
        return (self._idx >= len(self._recs) and self._rleft == 0 and self._pos >= self._end
                and self._failed is None)

    def _load_batch(self) -> bool:
        """Set up the next batch with records to read; False when there is none left.

        A legacy batch is decoded whole into ``_recs``; a v2 one is left to
        :meth:`_decode_more`.
        """
        buf = self._buf
        tp = self.tp
        while self._pos < self._end:
            start = self._pos
            length, magic = _LENGTH_AND_MAGIC.unpack_from(buf, start)
            end = start + _LOG_OVERHEAD + length
            self._pos = end
            if magic != 2:
                legacy = parse_legacy_batch(buf, start, end, self._check_crcs, self._max_decompressed)
                pos_min = self.position
                new = tuple.__new__
                recs = []
                prev = -1
                after = legacy.next_offset
                for r in legacy.records():
                    if not prev < r.offset < after <= MAX_OFFSET:
                        raise CorruptRecordError(
                            f"{tp.topic}-{tp.partition}: legacy message offset {r.offset} after {prev} "
                            f"outside its wrapper (next offset {after})")
                    prev = r.offset
                    if r.offset < pos_min:
                        continue
                    k, v = r.key, r.value
                    recs.append(
                        new(
                            ConsumerRecord,
                            (tp.topic, tp.partition, r.offset, r.timestamp, r.timestamp_type, k, v, _NO_HEADERS,
                             legacy.crc, -1 if k is None else len(k), -1 if v is None else len(v), -1),
                        )
                    )
                self._batch_next = legacy.next_offset
                if recs:
                    self._recs = recs
                    self._idx = 0
                    return True
                self._advance_to(self._batch_next)
                continue
            (base, _len, _ple, _magic, crc, attrs, lod, base_ts, max_ts, pid, _pep, _bseq, count) = (
                _HEADER.unpack_from(buf, start)
            )
            nxt = base + lod + 1
            if base < 0 or lod < 0 or nxt > MAX_OFFSET:
                raise CorruptRecordError(
                    f"{tp.topic}-{tp.partition}: record batch with base offset {base} and last offset "
                    f"delta {lod} is outside 0..2**63-2")
            self._batch_next = nxt
            if nxt <= self.position:
                continue  # wholly before the position (a batch the broker started early)
            if self._check_crcs:
                actual = _crc32c.crc32c(memoryview(buf)[start + 21 : end])
                if actual != crc:
                    raise CorruptRecordChecksumError(
                        f"{tp.topic}-{tp.partition}: record batch at offset {base}: "
                        f"CRC {actual:#010x} != stored {crc:#010x}"
                    )
            if attrs & _ATTR_CONTROL:
                if self._read_committed and attrs & _ATTR_TRANSACTIONAL:
                    self._control(buf, start, end, attrs, base, base_ts, count, pid)
                self._advance_to(nxt)
                continue
            if self._read_committed and attrs & _ATTR_TRANSACTIONAL:
                heap = self._aborted
                while heap and heap[0][0] <= base + lod:
                    self._aborted_pids.add(heapq.heappop(heap)[1])
                if pid in self._aborted_pids:
                    self._advance_to(nxt)
                    continue
            codec = attrs & _ATTR_CODEC
            if codec:
                payload = decompress(codec, memoryview(buf)[start + _V2_OVERHEAD : end],
                                     max_size=self._max_decompressed)
                rbuf, rpos, rend = payload, 0, len(payload)
            else:
                rbuf, rpos, rend = buf, start + _V2_OVERHEAD, end
            if count <= 0:
                # No records: still check that the batch says so consistently.
                decode_records(rbuf, rpos, rend, count, base, base_ts)
                self._advance_to(nxt)
                continue
            self._rbuf, self._rpos, self._rend, self._rleft = rbuf, rpos, rend, count
            self._base, self._base_ts, self._max_ts = base, base_ts, max_ts
            self._delta, self._lod = -1, lod
            self._ts_type = 1 if attrs & _ATTR_LOG_APPEND else 0
            return True
        return False

    def _decode_more(self, n: int) -> list[ConsumerRecord]:
        """Decode up to ``n`` more records of the current v2 batch (fewer if some are skipped)."""
        tp = self.tp
        recs: list[ConsumerRecord]
        # Offsets rise strictly within [base, base + lastOffsetDelta] (checked by the decoder).
        recs, self._rpos = decode_records_at(self._rbuf, self._rpos, self._rend, self._rleft, self._base,
                                             self._base_ts, tp.topic, tp.partition, ConsumerRecord, n,
                                             self._delta, self._lod)
        if recs:
            self._delta = recs[-1][2] - self._base
        self._rleft -= len(recs)
        if not self._rleft:
            self._rbuf = b""  # let go of a decompressed payload
        # Rare cases, kept out of the decode loop.
        if self._base < self.position and recs and recs[0][2] < self.position:
            # A compressed batch (or one the broker started early) begins before the position.
            pos_min = self.position
            recs = [r for r in recs if r[2] >= pos_min]
        if self._ts_type:
            # KIP-32: with LogAppendTime every record carries the batch's maxTimestamp.
            new = tuple.__new__
            ts, kind = self._max_ts, self._ts_type
            recs = [new(ConsumerRecord, (r[0], r[1], r[2], ts, kind, *r[5:])) for r in recs]
        return recs

    def _control(self, buf: bytes, start: int, end: int, attrs: int, base: int, base_ts: int,
                 count: int, pid: int) -> None:
        """Apply a transaction marker: an ABORT ends ``pid``'s aborted range."""
        codec = attrs & _ATTR_CODEC
        if codec:
            payload = decompress(codec, memoryview(buf)[start + _V2_OVERHEAD : end],
                                 max_size=self._max_decompressed)
            recs = decode_records(payload, 0, len(payload), count, base, base_ts)
        else:
            recs = decode_records(buf, start + _V2_OVERHEAD, end, count, base, base_ts)
        key = recs[0][3] if recs else None
        if key is None or len(key) < 4:
            raise CorruptRecordError("control batch without a valid control record")
        _version, kind = _CONTROL_KEY.unpack_from(key, 0)
        if kind == _CONTROL_ABORT:
            self._aborted_pids.discard(pid)

    def _advance_to(self, offset: int) -> None:
        if offset > self.position:
            self.position = offset

    def take(
        self,
        max_records: int,
        key_deserializer: Deserializer | None = None,
        value_deserializer: Deserializer | None = None,
    ) -> list[ConsumerRecord]:
        """Hand out up to ``max_records`` records, decoding batches as needed.

        Raises:
            RecordDeserializationError: a deserializer raised on the first
                record to hand out; it stays first, the position stays on it.
                (If earlier records were already collected, they are returned
                and the error comes on the next call.)
            DecodeError: malformed data (CorruptRecordError, a CRC mismatch, a bad
                compressed payload): raised when reached; records collected
                before it are returned first and the error comes from every
                later call (the caller drops the rest of this blob).
        """
        if self._failed is not None:
            raise fresh_error(self._failed, keep_cause=False)
        out: list[ConsumerRecord] = []
        while max_records > 0:
            recs = self._recs
            idx = self._idx
            if idx >= len(recs):
                try:
                    if self._rleft:
                        # Exactly as many as this call hands out: records exist only once
                        # asked for, so the previous poll's are usually freed before these
                        # are made (the GC's young generation stays small, collections rare).
                        recs = self._recs = self._decode_more(max(max_records, _MIN_STEP))
                        idx = self._idx = 0
                        if not recs:
                            if not self._rleft:
                                self._advance_to(self._batch_next)
                            continue
                    elif not self._load_batch():
                        break
                    else:
                        continue
                except KafkaError as exc:
                    # Keep (and raise) a copy without the traceback: the frames under it hold
                    # the decode's locals (up to max_decompressed bytes) and this object,
                    # a cycle that only the cyclic GC would free (issue 15).
                    self._failed = fresh_error(exc, keep_cause=False)
                    if not out:
                        raise fresh_error(exc, keep_cause=False) from None
                    break  # hand out what came before the bad data; raise on the next call
            chunk = recs if idx == 0 and len(recs) <= max_records else recs[idx : idx + max_records]
            if key_deserializer is not None or value_deserializer is not None:
                chunk = self._deserialize(chunk, key_deserializer, value_deserializer, bool(out))
                if not chunk:
                    break
            idx += len(chunk)
            max_records -= len(chunk)
            if idx >= len(recs):
                # Let go of the chunk at once: records the user is done with are freed
                # then instead of staying alive (and walked by the cyclic GC, promoted
                # to older generations) until more are decoded.
                self._recs = []
                self._idx = 0
                if self._rleft:
                    self._advance_to(chunk[-1][2] + 1)
                else:
                    self._advance_to(self._batch_next)
            else:
                self._idx = idx
                self._advance_to(chunk[-1][2] + 1)
            if out:
                out.extend(chunk)
            else:
                out = chunk
        return out

    def _deserialize(
        self,
        chunk: list[ConsumerRecord],
        kd: Deserializer | None,
        vd: Deserializer | None,
        have_some: bool,
    ) -> list[ConsumerRecord]:
        new = tuple.__new__
        cls = ConsumerRecord
        out: list[ConsumerRecord] = []
        app = out.append
        r: Any
        for r in chunk:
            try:
                k = r[5] if kd is None else kd(r[5])
            except Exception as exc:
                return self._deser_failed(out, r, "key", exc, have_some)
            try:
                v = r[6] if vd is None else vd(r[6])
            except Exception as exc:
                return self._deser_failed(out, r, "value", exc, have_some)
            app(new(cls, (r[0], r[1], r[2], r[3], r[4], k, v, r[7], r[8], r[9], r[10], r[11])))
        return out

    def _deser_failed(
        self, out: list[ConsumerRecord], r: ConsumerRecord, which: str, exc: Exception, have_some: bool
    ) -> list[ConsumerRecord]:
        if out or have_some:
            return out  # hand these out; the failing record raises on the next call
        self._advance_to(r.offset)
        raise RecordDeserializationError(self.tp, r.offset, which, exc) from exc

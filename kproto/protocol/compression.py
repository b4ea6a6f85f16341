"""Kafka compression codecs with bounded decompression.

Codec ids are the low three bits of a batch's attributes (v2) or a legacy
message's attributes (v0/v1): 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
(zstd only with magic 2, KIP-110).

Wire framings, as the Java client writes them:

- gzip: an RFC 1952 gzip stream (``GZIPOutputStream``); we also read zlib
  streams and concatenated gzip members.
- snappy: snappy-java's "xerial" framing (``SnappyOutputStream``): the
  16-byte header ``\\x82SNAPPY\\x00`` + version + compatible version, then
  blocks of ``int32 BE length`` + a raw snappy block. Old producers
  (librdkafka, some kafka-python) wrote raw snappy; we read both.
- lz4: the LZ4 *frame* format with independent blocks
  (``KafkaLZ4BlockOutputStream``: FLG 0x60, BD 0x40 = 64 KiB blocks). Magic 0
  messages used a header checksum computed over the wrong bytes (KAFKA-3160):
  the reader accepts both; the writer can produce either.
- zstd: a zstd frame.

Every decompression is bounded: ``max_size`` (default
:data:`DEFAULT_MAX_DECOMPRESSED`, 64 MiB) caps the output. 64 MiB is above
the consumer's default ``fetch_max_bytes`` (50 MiB) so a batch the broker
could legitimately return uncompressed also fits once decompressed at any
realistic ratio, yet a few-kilobyte compression bomb cannot make us allocate
gigabytes. Callers that fetch more may pass a larger bound. Exceeding it
raises :class:`~kproto.errors.DecodeError`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Final

import cramjam

from kproto.errors import DecodeError, UnsupportedCodecError

__all__ = [
    "CODEC_GZIP",
    "CODEC_LZ4",
    "CODEC_NAMES",
    "CODEC_NONE",
    "CODEC_SNAPPY",
    "CODEC_ZSTD",
    "DEFAULT_MAX_DECOMPRESSED",
    "codec_id",
    "compress",
    "decompress",
]

CODEC_NONE: Final = 0
CODEC_GZIP: Final = 1
CODEC_SNAPPY: Final = 2
CODEC_LZ4: Final = 3
CODEC_ZSTD: Final = 4

#: Codec id -> the name used by ``compression_type`` settings.
CODEC_NAMES: Final[dict[int, str]] = {
    CODEC_NONE: "none",
    CODEC_GZIP: "gzip",
    CODEC_SNAPPY: "snappy",
    CODEC_LZ4: "lz4",
    CODEC_ZSTD: "zstd",
}
_IDS_BY_NAME: Final[dict[str, int]] = {v: k for k, v in CODEC_NAMES.items()}

#: Default cap on one decompressed payload; see the module docstring.
DEFAULT_MAX_DECOMPRESSED: Final = 64 * 1024 * 1024

_XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
# snappy-java writes version 1, compatible version 1.
_XERIAL_HEADER: Final = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
# snappy-java's default block size; each block is compressed on its own.
_XERIAL_BLOCK: Final = 32 * 1024

_LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
# FLG: version 01, block independence set, no checksums, no content size.
_LZ4_FLG: Final = 0x60
# BD: maximum block size 64 KiB (code 4), as KafkaLZ4BlockOutputStream.
_LZ4_BD: Final = 0x40
_LZ4_BLOCK: Final = 64 * 1024

_U32 = struct.Struct("<I")
_BE_I32 = struct.Struct(">i")


def codec_id(name: str | None) -> int:
    """Map a ``compression_type`` setting ("gzip", None, ...) to a codec id.

    Raises:
        UnsupportedCodecError: the name is not a Kafka codec.
    """
    if name is None:
        return CODEC_NONE
    try:
        return _IDS_BY_NAME[name.lower()]
    except KeyError:
        raise UnsupportedCodecError(f"unknown compression type {name!r}") from None


# --- xxHash32, only for the 2..14 byte LZ4 frame descriptor -----------------
# Written out here because kproto depends on nothing beyond cramjam/crc32c.
_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32 (reference algorithm); used on tiny inputs only."""
    n = len(data)
    pos = 0
    if n >= 16:
        v1 = (seed + _P1 + _P2) & _M32
        v2 = (seed + _P2) & _M32
        v3 = seed
        v4 = (seed - _P1) & _M32
        while pos + 16 <= n:
            lanes = struct.unpack_from("<4I", data, pos)
            v1 = (_rotl((v1 + lanes[0] * _P2) & _M32, 13) * _P1) & _M32
            v2 = (_rotl((v2 + lanes[1] * _P2) & _M32, 13) * _P1) & _M32
            v3 = (_rotl((v3 + lanes[2] * _P2) & _M32, 13) * _P1) & _M32
            v4 = (_rotl((v4 + lanes[3] * _P2) & _M32, 13) * _P1) & _M32
            pos += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while pos + 4 <= n:
        h = (_rotl((h + _U32.unpack_from(data, pos)[0] * _P3) & _M32, 17) * _P4) & _M32
        pos += 4
    while pos < n:
        h = (_rotl((h + data[pos] * _P5) & _M32, 11) * _P1) & _M32
        pos += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


# --- compression ------------------------------------------------------------


def _lz4_frame(data: bytes, broken_checksum: bool) -> bytes:
    """An LZ4 frame with independent 64 KiB blocks, as Kafka's Java client."""
    descriptor = bytes((_LZ4_FLG, _LZ4_BD))
    # KAFKA-3160: magic 0 producers hashed the magic number too.
    hashed = _LZ4_MAGIC + descriptor if broken_checksum else descriptor
    parts = [_LZ4_MAGIC, descriptor, bytes(((_xxh32(hashed) >> 8) & 0xFF,))]
    view = memoryview(data)
    for start in range(0, len(data), _LZ4_BLOCK):
        chunk = view[start : start + _LZ4_BLOCK]
        block = bytes(cramjam.lz4.compress_block(chunk, store_size=False))
        if len(block) >= len(chunk):
            # Incompressible: store it raw, high bit of the size set.
            parts.append(_U32.pack(len(chunk) | 0x80000000))
            parts.append(bytes(chunk))
        else:
            parts.append(_U32.pack(len(block)))
            parts.append(block)
    parts.append(b"\x00\x00\x00\x00")  # EndMark
    return b"".join(parts)


def _xerial(data: bytes) -> bytes:
    parts = [_XERIAL_HEADER]
    view = memoryview(data)
    for start in range(0, len(data), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK]))
        parts.append(_BE_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def compress(
    codec: int,
    data: bytes | bytearray | memoryview,
    *,
    level: int | None = None,
    lz4_broken_checksum: bool = False,
) -> bytes:
    """Compress ``data`` with Kafka codec ``codec`` in the framing Java writes.

    Args:
        codec: a codec id 0..4.
        data: the uncompressed bytes.
        level: codec level (gzip 1..9, zstd 1..22); None for the default.
        lz4_broken_checksum: write the KAFKA-3160 header checksum (magic 0).

    Raises:
        UnsupportedCodecError: ``codec`` is not 0..4.
    """
    raw = bytes(data)
    if codec == CODEC_NONE:
        return raw
    if codec == CODEC_GZIP:
        comp = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)
        return comp.compress(raw) + comp.flush()
    if codec == CODEC_SNAPPY:
        return _xerial(raw)
    if codec == CODEC_LZ4:
        return _lz4_frame(raw, lz4_broken_checksum)
    if codec == CODEC_ZSTD:
        return bytes(cramjam.zstd.compress(raw, level=level))
    raise UnsupportedCodecError(f"unknown compression codec id {codec}")


# --- bounded decompression --------------------------------------------------


def _too_big(max_size: int) -> DecodeError:
    return DecodeError(f"decompressed payload exceeds the {max_size}-byte bound")


def _gunzip(data: bytes, max_size: int) -> bytes:
    out: list[bytes] = []
    total = 0
    rest = data
    while True:
        # wbits 47 = 32 + 15: accept a gzip or a zlib header.
        d = zlib.decompressobj(47)
        chunk = rest
        while True:
            try:
                piece = d.decompress(chunk, max_size - total + 1)
            except zlib.error as exc:
                raise DecodeError(f"bad gzip data: {exc}") from None
            total += len(piece)
            if total > max_size:
                del out, piece  # an exception's frames must not keep the output alive
                raise _too_big(max_size)
            out.append(piece)
            if d.eof:
                break
            chunk = d.unconsumed_tail
            if not chunk:
                raise DecodeError("truncated gzip data")
        rest = d.unused_data
        # Concatenated gzip members are one stream (GZIPInputStream reads on).
        if not rest:
            return b"".join(out)


def _grow_into(
    fn: Callable[[bytes, bytearray], int], data: bytes, start: int, max_size: int, name: str
) -> bytes:
    """Decompress with ``fn(data, buffer)`` into doubling buffers up to the bound.

    cramjam's ``*_into`` functions stop with an error when the buffer is full,
    so the output never exceeds the buffer. Total work is at most twice the
    final size.
    """
    size = max(1, min(start, max_size))
    while True:
        buf = bytearray(size + 1)  # +1 so a full buffer means "more to come"
        try:
            n = fn(data, buf)
        except cramjam.DecompressionError as exc:
            if "whole buffer" not in str(exc) and "smaller than required" not in str(exc):
                raise DecodeError(f"bad {name} data: {exc}") from None
            n = size + 1
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"bad {name} data: {exc}") from None
        if n <= size:
            return bytes(memoryview(buf)[:n])
        del buf  # an exception's frames must not keep the output alive
        if size >= max_size:
            raise _too_big(max_size)
        size = min(size * 2, max_size)


def _unsnappy_raw(block: bytes | memoryview, max_size: int, bound: int) -> bytes:
    try:
        n = cramjam.snappy.decompress_raw_len(block)
    except Exception as exc:  # noqa: BLE001 - cramjam raises assorted types
        raise DecodeError(f"bad snappy data: {exc}") from None
    if n > max_size:
        raise _too_big(bound)
    # A snappy element expands at most ~21x (a 3-byte copy of 64 bytes), so a
    # larger declared length is corrupt: refuse before allocating for it.
    if n > 24 * len(block) + 64:
        raise DecodeError("snappy declared length impossible for its input size")
    buf = bytearray(n)
    try:
        got = cramjam.snappy.decompress_raw_into(block, buf)
    except Exception as exc:  # noqa: BLE001
        raise DecodeError(f"bad snappy data: {exc}") from None
    if got != n:
        raise DecodeError("snappy block shorter than its declared length")
    return bytes(buf)


def _unsnappy(data: bytes, max_size: int) -> bytes:
    if not data.startswith(_XERIAL_MAGIC):
        return _unsnappy_raw(data, max_size, max_size)
    # xerial framing: 16-byte header, then (int32 BE length, raw block)*.
    if len(data) < 16:
        raise DecodeError("truncated xerial snappy header")
    out: list[bytes] = []
    total = 0
    pos = 16
    view = memoryview(data)
    end = len(data)
    while pos < end:
        if pos + 4 > end:
            raise DecodeError("truncated xerial snappy block length")
        (length,) = _BE_I32.unpack_from(data, pos)
        pos += 4
        if length < 0 or pos + length > end:
            raise DecodeError("xerial snappy block length out of bounds")
        try:
            piece = _unsnappy_raw(view[pos : pos + length], max_size - total, max_size)
        except DecodeError:
            del out  # an exception's frames must not keep the output alive
            raise
        total += len(piece)
        out.append(piece)
        pos += length
    return b"".join(out)


def _lz4_fix_header(data: bytes) -> bytes:
    """Rewrite a KAFKA-3160 header checksum to the correct one, if needed.

    The header checksum (HC) is byte 2 of xxh32(frame descriptor); magic 0
    producers hashed the 4-byte magic number as well. Either is accepted.
    """
    if len(data) < 7 or data[:4] != _LZ4_MAGIC:
        return data  # let the decoder report it
    flg = data[4]
    end = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
    if len(data) <= end:
        return data
    good = (_xxh32(data[4:end]) >> 8) & 0xFF
    if data[end] == good:
        return data
    broken = (_xxh32(data[:end]) >> 8) & 0xFF
    if data[end] != broken:
        raise DecodeError("lz4 frame header checksum mismatch")
    return data[:end] + bytes((good,)) + data[end + 1 :]


def _zstd_hint(data: bytes) -> int:
    """The zstd frame's declared content size (RFC 8878 3.1.1.1), or 0."""
    if len(data) < 6 or data[:4] != b"\x28\xb5\x2f\xfd":
        return 0
    fhd = data[4]
    fcs_flag = fhd >> 6
    single = (fhd >> 5) & 1
    did = (0, 1, 2, 4)[fhd & 3]
    pos = 5 + (0 if single else 1) + did
    size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or pos + size > len(data):
        return 0
    value = int.from_bytes(data[pos : pos + size], "little")
    if size == 2:
        value += 256
    return value


def decompress(
    codec: int,
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_DECOMPRESSED,
    lz4_broken_checksum_ok: bool = True,
) -> bytes:
    """Decompress a Kafka payload, never producing more than ``max_size`` bytes.

    Args:
        codec: a codec id 0..4.
        data: the compressed bytes.
        max_size: the output bound; see :data:`DEFAULT_MAX_DECOMPRESSED`.
        lz4_broken_checksum_ok: accept the KAFKA-3160 lz4 header checksum.

    Raises:
        UnsupportedCodecError: ``codec`` is unknown.
        DecodeError: the data is corrupt or decompresses to over ``max_size``.
    """
    raw = bytes(data)
    if codec == CODEC_NONE:
        if len(raw) > max_size:
            raise _too_big(max_size)
        return raw
    if codec == CODEC_GZIP:
        return _gunzip(raw, max_size)
    if codec == CODEC_SNAPPY:
        return _unsnappy(raw, max_size)
    if codec == CODEC_LZ4:
        if lz4_broken_checksum_ok:
            raw = _lz4_fix_header(raw)
        return _grow_into(cramjam.lz4.decompress_into, raw, len(raw) * 4 + 1024, max_size, "lz4")
    if codec == CODEC_ZSTD:
        hint = _zstd_hint(raw)
        if hint > max_size:
            raise _too_big(max_size)
        start = hint if hint else len(raw) * 4 + 1024
        return _grow_into(cramjam.zstd.decompress_into, raw, start, max_size, "zstd")
    raise UnsupportedCodecError(f"unknown compression codec id {codec}")

"""Hand-written readers and writers for the Kafka wire primitives.

The generated message modules (``kproto.protocol.messages``) inline the
fixed-width fields as precompiled :class:`struct.Struct` runs and call the
helpers here for everything of variable length.

Conventions:

- Readers take ``(buf: memoryview, pos: int)`` and return ``(value, new_pos)``.
  They never slice-copy more than the value itself, and they check every
  declared length against the bytes that remain *before* allocating, so a
  hostile length cannot make us allocate more than the frame we already hold.
- Readers raise :class:`kproto.errors.DecodeError` for malformed input they
  detect themselves; truncation inside a ``struct`` read surfaces as
  ``struct.error``/``IndexError`` and is converted to ``DecodeError`` by the
  public ``read``/``decode`` entry points of the generated classes (a
  ``try`` costs nothing in CPython 3.11 unless it fires).
- Writers append to a ``bytearray``.
- ``records`` fields decode to a zero-copy ``memoryview`` slice of the input
  buffer; ``bytes`` fields decode to ``bytes`` (a copy; they are small).
- ``uuid`` fields are :class:`uuid.UUID`.
"""

from __future__ import annotations

import struct
import uuid
from typing import NamedTuple

from kproto.errors import DecodeError, UnsupportedVersionError

__all__ = [
    "Buffer",
    "DecodeError",
    "FieldSpec",
    "UnsupportedVersionError",
    "ZERO_UUID",
    "read_array_len",
    "read_bytes",
    "read_compact_array_len",
    "read_compact_bytes",
    "read_compact_nullable_array_len",
    "read_compact_nullable_bytes",
    "read_compact_nullable_records",
    "read_compact_nullable_string",
    "read_compact_records",
    "read_compact_string",
    "read_nullable_array_len",
    "read_nullable_bytes",
    "read_nullable_records",
    "read_nullable_string",
    "read_records",
    "read_string",
    "read_unknown_tags",
    "read_uuid",
    "read_uvarint",
    "records_repr",
    "skip_tagged_fields",
    "write_bytes",
    "write_compact_bytes",
    "write_compact_nullable_bytes",
    "write_compact_nullable_string",
    "write_compact_string",
    "write_nullable_bytes",
    "write_nullable_string",
    "write_string",
    "write_tag_section",
    "write_unknown_tags",
    "write_uuid",
    "write_uvarint",
]

#: What a ``records`` field accepts on encode.
Buffer = bytes | bytearray | memoryview

#: The all-zero UUID, the default of every ``uuid`` field.
ZERO_UUID = uuid.UUID(int=0)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_NULL16 = b"\xff\xff"
_NULL32 = b"\xff\xff\xff\xff"


class FieldSpec(NamedTuple):
    """Schema metadata of one generated field (used by tests and tooling).

    ``kind`` is one of ``int8 int16 uint16 int32 int64 float64 bool uuid
    string bytes records struct array``; for ``array`` the element kind is in
    ``elem`` (a primitive kind name or ``struct``). Version ranges are
    inclusive ``(lo, hi)`` pairs; ``hi`` is 32767 for open ranges; ``None``
    means never.
    """

    name: str
    kind: str
    elem: str | None
    versions: tuple[int, int]
    nullable: tuple[int, int] | None
    tagged: tuple[int, int] | None
    tag: int | None
    struct: type | None


def records_repr(value: Buffer | None) -> str:
    """Short ``repr`` of a records blob (its size, not its bytes)."""
    if value is None:
        return "None"
    n = value.nbytes if isinstance(value, memoryview) else len(value)
    return f"<{n} bytes>"


# --- varints ---------------------------------------------------------------


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Read an unsigned varint of at most 5 bytes (a 32-bit value)."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if shift > 28:
            raise DecodeError("unsigned varint longer than 5 bytes")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            if result > 0xFFFFFFFF:
                raise DecodeError("unsigned varint out of 32-bit range")
            return result, pos
        shift += 7


def write_uvarint(out: bytearray, value: int) -> None:
    """Append an unsigned varint."""
    if value < 0:
        raise ValueError(f"unsigned varint cannot be negative: {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


# --- lengths ---------------------------------------------------------------


def _check_len(buf: memoryview, pos: int, n: int) -> int:
    end = pos + n
    if end > len(buf):
        raise DecodeError(f"declared length {n} exceeds the {len(buf) - pos} bytes remaining")
    return end


def read_array_len(buf: memoryview, pos: int) -> tuple[int, int]:
    """Read a non-nullable int32 array length; bounded by the bytes remaining."""
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        raise DecodeError(f"negative array length {n}")
    if n > len(buf) - pos:
        raise DecodeError(f"array length {n} exceeds the {len(buf) - pos} bytes remaining")
    return n, pos


def read_nullable_array_len(buf: memoryview, pos: int) -> tuple[int, int]:
    """Read an int32 array length; -1 means null."""
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < -1:
        raise DecodeError(f"negative array length {n}")
    if n > len(buf) - pos:
        raise DecodeError(f"array length {n} exceeds the {len(buf) - pos} bytes remaining")
    return n, pos


def read_compact_array_len(buf: memoryview, pos: int) -> tuple[int, int]:
    """Read a non-nullable compact array length (uvarint N+1)."""
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null compact array where a value is required")
    n -= 1
    if n > len(buf) - pos:
        raise DecodeError(f"array length {n} exceeds the {len(buf) - pos} bytes remaining")
    return n, pos


def read_compact_nullable_array_len(buf: memoryview, pos: int) -> tuple[int, int]:
    """Read a compact array length; returns -1 for null."""
    n, pos = read_uvarint(buf, pos)
    n -= 1
    if n > len(buf) - pos:
        raise DecodeError(f"array length {n} exceeds the {len(buf) - pos} bytes remaining")
    return n, pos


# --- strings ---------------------------------------------------------------


def _utf8(buf: memoryview, pos: int, end: int) -> str:
    try:
        return str(buf[pos:end], "utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string is not valid UTF-8: {exc}") from None


def read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    """Read a non-nullable int16-length string."""
    (n,) = _I16.unpack_from(buf, pos)
    pos += 2
    if n < 0:
        raise DecodeError(f"null or negative string length {n} where a value is required")
    end = _check_len(buf, pos, n)
    return _utf8(buf, pos, end), end


def read_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    """Read an int16-length string; length -1 is null."""
    (n,) = _I16.unpack_from(buf, pos)
    pos += 2
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError(f"negative string length {n}")
    end = _check_len(buf, pos, n)
    return _utf8(buf, pos, end), end


def read_compact_string(buf: memoryview, pos: int) -> tuple[str, int]:
    """Read a non-nullable compact string (uvarint N+1)."""
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null compact string where a value is required")
    end = _check_len(buf, pos, n - 1)
    return _utf8(buf, pos, end), end


def read_compact_nullable_string(buf: memoryview, pos: int) -> tuple[str | None, int]:
    """Read a compact string; 0 is null."""
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    end = _check_len(buf, pos, n - 1)
    return _utf8(buf, pos, end), end


def write_string(out: bytearray, value: str) -> None:
    """Append an int16-length string."""
    b = value.encode("utf-8")
    if len(b) > 0x7FFF:
        raise ValueError(f"string of {len(b)} bytes is too long for an int16 length")
    out += _I16.pack(len(b))
    out += b


def write_nullable_string(out: bytearray, value: str | None) -> None:
    """Append an int16-length string or the null marker."""
    if value is None:
        out += _NULL16
    else:
        write_string(out, value)


def write_compact_string(out: bytearray, value: str) -> None:
    """Append a compact string."""
    b = value.encode("utf-8")
    n = len(b) + 1
    if n < 0x80:
        out.append(n)
    else:
        write_uvarint(out, n)
    out += b


def write_compact_nullable_string(out: bytearray, value: str | None) -> None:
    """Append a compact string or the null marker."""
    if value is None:
        out.append(0)
    else:
        write_compact_string(out, value)


# --- bytes and records -----------------------------------------------------


def read_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    """Read non-nullable int32-length bytes (copied)."""
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        raise DecodeError(f"null or negative bytes length {n} where a value is required")
    end = _check_len(buf, pos, n)
    return bytes(buf[pos:end]), end


def read_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    """Read int32-length bytes; -1 is null."""
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError(f"negative bytes length {n}")
    end = _check_len(buf, pos, n)
    return bytes(buf[pos:end]), end


def read_compact_bytes(buf: memoryview, pos: int) -> tuple[bytes, int]:
    """Read non-nullable compact bytes (copied)."""
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null compact bytes where a value is required")
    end = _check_len(buf, pos, n - 1)
    return bytes(buf[pos:end]), end


def read_compact_nullable_bytes(buf: memoryview, pos: int) -> tuple[bytes | None, int]:
    """Read compact bytes; 0 is null."""
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    end = _check_len(buf, pos, n - 1)
    return bytes(buf[pos:end]), end


def read_records(buf: memoryview, pos: int) -> tuple[memoryview, int]:
    """Read non-nullable int32-length records as a zero-copy memoryview slice."""
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        raise DecodeError(f"null or negative records length {n} where a value is required")
    end = _check_len(buf, pos, n)
    return buf[pos:end], end


def read_nullable_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    """Read int32-length records (zero-copy); -1 is null."""
    (n,) = _I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError(f"negative records length {n}")
    end = _check_len(buf, pos, n)
    return buf[pos:end], end


def read_compact_records(buf: memoryview, pos: int) -> tuple[memoryview, int]:
    """Read non-nullable compact records (zero-copy)."""
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        raise DecodeError("null compact records where a value is required")
    end = _check_len(buf, pos, n - 1)
    return buf[pos:end], end


def read_compact_nullable_records(buf: memoryview, pos: int) -> tuple[memoryview | None, int]:
    """Read compact records (zero-copy); 0 is null."""
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    end = _check_len(buf, pos, n - 1)
    return buf[pos:end], end


def write_bytes(out: bytearray, value: Buffer) -> None:
    """Append int32-length bytes (also used for records)."""
    out += _I32.pack(len(value) if not isinstance(value, memoryview) else value.nbytes)
    out += value


def write_nullable_bytes(out: bytearray, value: Buffer | None) -> None:
    """Append int32-length bytes or the null marker."""
    if value is None:
        out += _NULL32
    else:
        write_bytes(out, value)


def write_compact_bytes(out: bytearray, value: Buffer) -> None:
    """Append compact bytes (also used for records)."""
    n = (len(value) if not isinstance(value, memoryview) else value.nbytes) + 1
    if n < 0x80:
        out.append(n)
    else:
        write_uvarint(out, n)
    out += value


def write_compact_nullable_bytes(out: bytearray, value: Buffer | None) -> None:
    """Append compact bytes or the null marker."""
    if value is None:
        out.append(0)
    else:
        write_compact_bytes(out, value)


# --- uuid ------------------------------------------------------------------


def read_uuid(buf: memoryview, pos: int) -> tuple[uuid.UUID, int]:
    """Read a 16-byte UUID."""
    end = pos + 16
    if end > len(buf):
        raise DecodeError("truncated uuid")
    return uuid.UUID(bytes=bytes(buf[pos:end])), end


def write_uuid(out: bytearray, value: uuid.UUID) -> None:
    """Append a 16-byte UUID."""
    out += value.bytes


# --- tagged fields ---------------------------------------------------------


def read_unknown_tags(buf: memoryview, pos: int) -> tuple[dict[int, bytes] | None, int]:
    """Read a tagged-field section of a struct that knows no tags at this version.

    Every field is kept as raw bytes by tag so it survives a re-encode.
    Returns ``None`` (no allocation) for the common empty section.
    """
    count, pos = read_uvarint(buf, pos)
    if count == 0:
        return None, pos
    if count > len(buf) - pos:
        raise DecodeError(f"tagged field count {count} exceeds the bytes remaining")
    tags: dict[int, bytes] = {}
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        end = _check_len(buf, pos, size)
        tags[tag] = bytes(buf[pos:end])
        pos = end
    return tags, pos


def skip_tagged_fields(buf: memoryview, pos: int) -> int:
    """Skip a tagged-field section, returning the position after it."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos = _check_len(buf, pos, size)
    return pos


def write_unknown_tags(out: bytearray, tags: dict[int, bytes] | None) -> None:
    """Append a tagged-field section holding only preserved unknown tags."""
    if not tags:
        out.append(0)
        return
    write_tag_section(out, sorted(tags.items()))


def write_tag_section(out: bytearray, tags: list[tuple[int, bytes]]) -> None:
    """Append a tagged-field section; ``tags`` must be sorted by tag."""
    write_uvarint(out, len(tags))
    for tag, data in tags:
        write_uvarint(out, tag)
        write_uvarint(out, len(data))
        out += data

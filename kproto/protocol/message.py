"""Base classes of the generated message classes (``kproto.protocol.messages``).

Every generated class derives from :class:`Struct`; the top-level class of a
schema from :class:`Message`; a request from ``Request[ItsResponse]`` and a
response from :class:`Response`. The type parameter ties a request to its
response, so ``Client.send(ProduceRequest(...), callback=cb)`` type-checks
``cb`` against ``ProduceResponse``.

The bases carry no state (``__slots__ = ()``). They hold the parts that are
the same for every class (the version dispatch of ``write``/``read``,
``encode``/``decode``, ``__eq__``, ``__repr__``); the generated code holds
the per-version straight-line readers and writers, where the time goes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from kproto.errors import DecodeError, UnsupportedVersionError
from kproto.protocol._primitives import records_repr

if TYPE_CHECKING:
    from kproto.protocol._primitives import FieldSpec

__all__ = ["Message", "Request", "Response", "Struct"]

_S = TypeVar("_S", bound="Struct")
#: The response type of a request (covariant: a ``Request[FetchResponse]`` is a
#: ``Request[Response]``).
R_co = TypeVar("R_co", bound="Response", covariant=True)


class Struct:
    """One schema struct: slotted fields, ``unknown_tags`` and the codec methods.

    The codec methods dispatch once on the version to the generated
    straight-line writer/reader of that version's layout (``_WRITERS`` /
    ``_READERS``, indexed by ``version - _LOWEST``); nested structs call each
    other's readers and writers directly, so only the outermost call passes here.
    """

    __slots__ = ()

    _FIELDS: ClassVar[tuple[FieldSpec, ...]]
    _SCHEMA_NAME: ClassVar[str]
    #: Lowest valid version; ``_WRITERS[i]``/``_READERS[i]`` serve ``_LOWEST + i``.
    _LOWEST: ClassVar[int]
    _WRITERS: ClassVar[tuple[Callable[..., None], ...]]
    _READERS: ClassVar[tuple[Callable[[memoryview, int], tuple[Struct, int]], ...]]
    #: Tagged fields this code does not know, by tag, as raw bytes (written back on encode).
    unknown_tags: dict[int, bytes] | None

    @classmethod
    def _no_version(cls, version: int) -> UnsupportedVersionError:
        lo = cls._LOWEST
        return UnsupportedVersionError(
            f"{cls.__name__} has no version {version} (valid {lo}-{lo + len(cls._WRITERS) - 1})"
        )

    def encode(self, version: int) -> bytes:
        """Return the body encoded at ``version`` (no header, no size prefix)."""
        out = bytearray()
        self.write(out, version)
        return bytes(out)

    def write(self, out: bytearray, version: int) -> None:
        """Append the body encoded at ``version`` to ``out``.

        On any error nothing is left appended to ``out``. Raises
        ``UnsupportedVersionError`` for a version outside the valid range or a
        non-default value that ``version`` cannot carry, ``ValueError`` for a
        value out of range for its wire type or None where not nullable.
        """
        cls = type(self)
        i = version - cls._LOWEST
        writers = cls._WRITERS
        if not 0 <= i < len(writers):
            raise cls._no_version(version)
        start = len(out)
        try:
            writers[i](self, out)
        except struct.error as exc:
            del out[start:]
            raise ValueError(f"cannot encode {cls.__name__} v{version}: {exc}") from None
        except BaseException:
            del out[start:]
            raise

    @classmethod
    def decode(cls: type[_S], data: bytes | bytearray | memoryview, version: int) -> _S:
        """Decode a whole body; trailing bytes are a ``DecodeError``."""
        buf = data if isinstance(data, memoryview) else memoryview(data)
        obj, pos = cls.read(buf, 0, version)
        if pos != len(buf):
            raise DecodeError(f"{len(buf) - pos} trailing bytes after {cls.__name__} v{version}")
        return obj

    @classmethod
    def read(cls: type[_S], buf: memoryview, pos: int, version: int) -> tuple[_S, int]:
        """Read one value at ``buf[pos:]``; return it and the position after it."""
        i = version - cls._LOWEST
        readers = cls._READERS
        if not 0 <= i < len(readers):
            raise cls._no_version(version)
        try:
            return readers[i](buf, pos)  # type: ignore[return-value]  # _READERS of cls build cls
        except (struct.error, IndexError, ValueError) as exc:
            raise DecodeError(f"malformed {cls.__name__} v{version}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        for spec in self._FIELDS:
            if getattr(self, spec.name) != getattr(other, spec.name):
                return False
        return (self.unknown_tags or None) == (other.unknown_tags or None)

    def __repr__(self) -> str:
        parts = [
            f"{spec.name}={records_repr(value) if spec.kind == 'records' else repr(value)}"
            for spec in self._FIELDS
            for value in (getattr(self, spec.name),)
        ]
        if self.unknown_tags:
            parts.append(f"unknown_tags={self.unknown_tags!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class Message(Struct):
    """The top-level struct of a schema, with its version range."""

    __slots__ = ()

    MIN_VERSION: ClassVar[int]
    MAX_VERSION: ClassVar[int]
    #: First flexible (compact, tagged-field) version; None when never flexible.
    FLEXIBLE_VERSION: ClassVar[int | None]


class Response(Message):
    """A response body."""

    __slots__ = ()

    API_KEY: ClassVar[int]


class Request(Message, Generic[R_co]):
    """A request body whose response is ``R_co``."""

    __slots__ = ()

    API_KEY: ClassVar[int]

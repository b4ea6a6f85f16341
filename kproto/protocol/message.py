"""Base classes of the generated message classes (``kproto.protocol.messages``).

Every generated class derives from :class:`Struct`; the top-level class of a
schema from :class:`Message`; a request from ``Request[ItsResponse]`` and a
response from :class:`Response`. The type parameter ties a request to its
response, so ``Client.send(ProduceRequest(...), callback=cb)`` type-checks
``cb`` against ``ProduceResponse``.

The bases carry no state (``__slots__ = ()``) and their methods are all
overridden by the generated code, so they cost nothing on the hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from kproto.protocol._primitives import FieldSpec

__all__ = ["Message", "Request", "Response", "Struct"]

_S = TypeVar("_S", bound="Struct")
#: The response type of a request (covariant: a ``Request[FetchResponse]`` is a
#: ``Request[Response]``).
R_co = TypeVar("R_co", bound="Response", covariant=True)


class Struct:
    """One schema struct: slotted fields, ``unknown_tags`` and the codec methods."""

    __slots__ = ()

    _FIELDS: ClassVar[tuple[FieldSpec, ...]]
    _SCHEMA_NAME: ClassVar[str]
    #: Tagged fields this code does not know, by tag, as raw bytes (written back on encode).
    unknown_tags: dict[int, bytes] | None

    def encode(self, version: int) -> bytes:
        """Return the body encoded at ``version`` (no header, no size prefix)."""
        raise NotImplementedError

    def write(self, out: bytearray, version: int) -> None:
        """Append the body encoded at ``version`` to ``out``."""
        raise NotImplementedError

    @classmethod
    def decode(cls: type[_S], data: bytes | bytearray | memoryview, version: int) -> _S:
        """Decode a whole body; trailing bytes are a ``DecodeError``."""
        raise NotImplementedError

    @classmethod
    def read(cls: type[_S], buf: memoryview, pos: int, version: int) -> tuple[_S, int]:
        """Read one value at ``buf[pos:]``; return it and the position after it."""
        raise NotImplementedError


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

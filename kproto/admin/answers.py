"""How a unit's answer is spelled: a value, a final error, or :class:`Retry`.

The per-area parsers (:mod:`kproto.admin.topics`, ...) turn a broker's
answer into one of these per unit; :class:`~kproto.admin.engine.AdminEngine`
settles the first two and routes a :class:`Retry` again after the backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar, overload

from kproto.consumer import TopicPartition
from kproto.errors import KafkaError, NotControllerError, ThrottlingQuotaExceededError, error_from_code

__all__ = [
    "Retry",
    "by_topic",
    "controller_answer",
    "error_for",
    "per_partition",
    "per_unit",
    "retry_or_fail",
]


_E = TypeVar("_E")
_T = TypeVar("_T")
_Key = TypeVar("_Key", bound=Hashable)

if TYPE_CHECKING:
    # What the helpers below read of a generated response's entries (any
    # response whose entries carry these fields).

    class UnitAnswer(Protocol):
        """An answer entry with an ``error_code`` (and maybe an ``error_message``)."""

        @property
        def error_code(self) -> int: ...

    class PartitionAnswer(UnitAnswer, Protocol):
        """A per-partition answer entry."""

        @property
        def partition_index(self) -> int: ...

    _P = TypeVar("_P", bound=PartitionAnswer)
    _P_co = TypeVar("_P_co", bound=PartitionAnswer, covariant=True)
    _U = TypeVar("_U", bound=UnitAnswer)

    class TopicAnswer(Protocol[_P_co]):
        """A per-topic answer entry: its name and its partitions' entries."""

        @property
        def name(self) -> str: ...

        @property
        def partitions(self) -> Sequence[_P_co]: ...


class Retry:
    """A unit's answer asks for another attempt (a retriable error)."""

    __slots__ = ("error",)

    def __init__(self, error: KafkaError) -> None:
        self.error = error


def error_for(code: int, message: str | None = None, what: str = "") -> KafkaError:
    """The error class for ``code``, with the broker's message or else ``what``."""
    return error_from_code(code, message or what or None)


def retry_or_fail(code: int, message: str | None, what: str) -> KafkaError | Retry:
    """A unit's answer for a nonzero code: retry when retriable (Java's
    ``RetriableException`` rule), else the final error."""
    err = error_for(code, message, what)
    return Retry(err) if err.retriable else err


def controller_answer(code: int, message: str | None, what: str) -> KafkaError | Retry:
    """CreateTopics/DeleteTopics/CreatePartitions per-topic errors: final, except
    NOT_CONTROLLER (Java's ``handleNotControllerError`` retries the call at the
    new controller) and THROTTLING_QUOTA_EXCEEDED (KIP-599: Java retries it by
    default, ``retry.on.quota.violation``)."""
    err = error_for(code, message, what)
    if isinstance(err, NotControllerError | ThrottlingQuotaExceededError):
        return Retry(err)
    return err


@overload
def by_topic(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]: ...
@overload
def by_topic(partitions: Iterable[TopicPartition], entry: Callable[[TopicPartition], _E]) -> dict[str, list[_E]]: ...
def by_topic(
    partitions: Iterable[TopicPartition],
    entry: Callable[[TopicPartition], _E] = lambda tp: tp.partition,  # type: ignore[assignment,return-value]
) -> dict[str, list[_E]]:
    """``{topic: [entry(tp)...]}`` in first-seen order (by default the partition
    numbers): the per-topic layout of most requests."""
    out: dict[str, list[_E]] = {}
    for tp in partitions:
        out.setdefault(tp.topic, []).append(entry(tp))
    return out


def topic_entries(
    partitions: Iterable[TopicPartition],
    topic: Callable[..., _T],
    partition: Callable[..., object],
    **fields: Mapping[TopicPartition, object],
) -> list[_T]:
    """A request's per-topic entries: ``[topic(name=t, partitions=[partition(
    partition_index=tp.partition, <field>=<fields[field][tp]>...)...])...]``."""

    def entry(tp: TopicPartition) -> object:
        return partition(partition_index=tp.partition, **{f: values[tp] for f, values in fields.items()})

    return [topic(name=t, partitions=p) for t, p in by_topic(partitions, entry).items()]


def per_partition(
    topics: Iterable[TopicAnswer[_P]], what: str, value: Callable[[_P], object]
) -> dict[TopicPartition, object]:
    """Per partition of a leader's answer: ``value(p)``, or its error (retried when retriable)."""
    out: dict[TopicPartition, object] = {}
    for t in topics:
        for p in t.partitions:
            tp = TopicPartition(t.name, p.partition_index)
            code = p.error_code
            out[tp] = (
                retry_or_fail(code, getattr(p, "error_message", None), f"{what} of {tp.topic}-{tp.partition}")
                if code
                else value(p)
            )
    return out


def _none(unit: object) -> None:
    return None


def per_unit(
    units: Iterable[_U],
    key: Callable[[_U], _Key],
    what: str,
    value: Callable[[_U], object] = _none,
    answer: Callable[[int, str | None, str], KafkaError | Retry] = error_for,
) -> dict[_Key, object]:
    """Per unit of an answer (a topic, group, user... named by ``key(u)``): ``value(u)``,
    or for a nonzero ``error_code`` ``answer(code, message, "<what> <key>")``
    (:func:`error_for`: final; :func:`retry_or_fail`, :func:`controller_answer`)."""
    out: dict[_Key, object] = {}
    for u in units:
        k = key(u)
        code = u.error_code
        out[k] = answer(code, getattr(u, "error_message", None), f"{what} {k!r}") if code else value(u)
    return out

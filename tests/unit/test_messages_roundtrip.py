"""Hypothesis round trips for every generated message at every valid version.

Strategies are derived from each generated class's ``_FIELDS`` table, so a new
schema is covered without touching this file. Determinism in CI comes from the
``ci`` hypothesis profile loaded by ``tests/conftest.py`` (``derandomize``).
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kproto.protocol.messages as messages_pkg
from kproto.protocol._primitives import FieldSpec
from kproto.protocol.messages import DATA_TYPES, REQUEST_TYPES, RESPONSE_TYPES

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def _in(rng: tuple[int, int] | None, v: int) -> bool:
    return rng is not None and rng[0] <= v <= rng[1]


def _prim(kind: str) -> st.SearchStrategy[Any]:
    if kind in INT_RANGES:
        lo, hi = INT_RANGES[kind]
        return st.integers(lo, hi)
    if kind == "bool":
        return st.booleans()
    if kind == "float64":
        return st.floats(allow_nan=False)
    if kind == "string":
        return st.text(max_size=12)
    if kind in ("bytes", "records"):
        return st.binary(max_size=24)
    if kind == "uuid":
        return st.binary(min_size=16, max_size=16).map(lambda b: uuid.UUID(bytes=b))
    raise AssertionError(kind)


def struct_strategy(cls: type, version: int) -> st.SearchStrategy[Any]:
    """A strategy for ``cls`` holding values only in fields present at ``version``."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in cls._FIELDS:  # type: ignore[attr-defined]
        if _in(spec.versions, version):
            fields[spec.name] = field_strategy(spec, version)
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


def field_strategy(spec: FieldSpec, version: int) -> st.SearchStrategy[Any]:
    if spec.kind == "struct":
        assert spec.struct is not None
        s = struct_strategy(spec.struct, version)
    elif spec.kind == "array":
        if spec.elem == "struct":
            assert spec.struct is not None
            elem = struct_strategy(spec.struct, version)
        else:
            assert spec.elem is not None
            elem = _prim(spec.elem)
        s = st.lists(elem, max_size=3)
    else:
        s = _prim(spec.kind)
    if _in(spec.nullable, version):
        s = st.none() | s
    return s


def _all_top_classes() -> list[type]:
    classes: list[type] = []
    classes.extend(REQUEST_TYPES[k] for k in sorted(REQUEST_TYPES))
    classes.extend(RESPONSE_TYPES[k] for k in sorted(RESPONSE_TYPES))
    classes.extend(DATA_TYPES[k] for k in sorted(DATA_TYPES))
    return classes


CASES = [
    pytest.param(cls, v, id=f"{cls.__name__}-v{v}")
    for cls in _all_top_classes()
    for v in range(cls.MIN_VERSION, cls.MAX_VERSION + 1)  # type: ignore[attr-defined]
]


@pytest.mark.parametrize(("cls", "version"), CASES)
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_round_trip(cls: type, version: int, data: st.DataObject) -> None:
    obj = data.draw(struct_strategy(cls, version))
    flexible = cls.FLEXIBLE_VERSION  # type: ignore[attr-defined]
    if flexible is not None and version >= flexible and data.draw(st.booleans()):
        # A tag no schema uses: it must survive decode -> encode untouched.
        obj.unknown_tags = {9999: data.draw(st.binary(max_size=5))}
    encoded = obj.encode(version)
    decoded = cls.decode(encoded, version)  # type: ignore[attr-defined]
    assert decoded == obj
    # Re-encoding what we decoded gives the same bytes.
    assert decoded.encode(version) == encoded
    # read() at an offset inside a larger buffer returns the end position.
    buf = memoryview(b"\x07" * 3 + encoded + b"\x09")
    again, end = cls.read(buf, 3, version)  # type: ignore[attr-defined]
    assert again == obj
    assert end == 3 + len(encoded)


def test_every_module_is_covered() -> None:
    """Every generated module has a top-level class reachable from the maps."""
    reachable = {c.__module__ for c in _all_top_classes()}
    modules = {f"{messages_pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(messages_pkg.__path__)}
    assert modules == reachable
    assert len(CASES) > 500  # Kafka 4 dropped the pre-2.1 versions (KIP-896); broker-internal APIs are not generated


def test_class_attributes() -> None:
    for key, cls in REQUEST_TYPES.items():
        assert cls.API_KEY == key  # type: ignore[attr-defined]
        resp = RESPONSE_TYPES[key]
        assert resp.API_KEY == key  # type: ignore[attr-defined]
        assert cls.MAX_VERSION == resp.MAX_VERSION  # type: ignore[attr-defined]
    produce = importlib.import_module("kproto.protocol.messages.produce")
    assert produce.ProduceRequest.FLEXIBLE_VERSION == 9
    assert produce.ProduceRequest.MIN_VERSION == 3
    assert produce.ProduceRequest.MAX_VERSION == 13
    sasl = importlib.import_module("kproto.protocol.messages.sasl_handshake")
    assert sasl.SaslHandshakeRequest.FLEXIBLE_VERSION is None

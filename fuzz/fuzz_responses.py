"""Fuzz every generated response decoder at every version.

Input layout: byte 0 picks the API (index into the sorted response API keys),
byte 1 picks the version (modulo the class's version count), the rest is the
body. Only ``kproto.errors.DecodeError`` may escape a decode; whatever decodes
must re-encode, and re-encoding is a fixed point after one normalisation.

Run::

    python fuzz/fuzz_responses.py -max_total_time=30 fuzz/corpus/responses
    python fuzz/fuzz_responses.py --write-seeds fuzz/corpus/responses
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from kproto.errors import DecodeError
    from kproto.protocol.messages import RESPONSE_TYPES

    KEYS = sorted(RESPONSE_TYPES)
    CLASSES = [RESPONSE_TYPES[k] for k in KEYS]  # imports every response module now


def pick(data: bytes) -> tuple[type, int, bytes]:
    """Split a fuzz input into (response class, version, body)."""
    if len(data) < 2:
        return CLASSES[0], CLASSES[0].MIN_VERSION, b""  # type: ignore[attr-defined]
    cls = CLASSES[data[0] % len(CLASSES)]
    lo, hi = cls.MIN_VERSION, cls.MAX_VERSION  # type: ignore[attr-defined]
    return cls, lo + data[1] % (hi - lo + 1), data[2:]


def test_one_input(data: bytes) -> None:
    """One fuzz iteration; raises only on a bug."""
    cls, version, body = pick(data)
    try:
        obj = cls.decode(body, version)  # type: ignore[attr-defined]
    except DecodeError:
        return
    once = obj.encode(version)
    again = cls.decode(once, version)  # type: ignore[attr-defined]
    if again.encode(version) != once:
        raise AssertionError(f"{cls.__name__} v{version}: re-encoding is not a fixed point")


_SAMPLE_SCALARS: dict[str, object] = {
    "int8": 1,
    "int16": 2,
    "uint16": 3,
    "int32": 4,
    "uint32": 5,
    "int64": 6,
    "float64": 1.5,
    "bool": True,
    "string": "ab",
    "bytes": b"xy",
    "records": b"rec",
}


def sample(cls: type, version: int) -> object:
    """An instance with every field present at ``version`` set to a non-default."""
    import uuid

    kwargs: dict[str, object] = {}
    for spec in cls._FIELDS:  # type: ignore[attr-defined]
        if not spec.versions[0] <= version <= spec.versions[1]:
            continue
        if spec.kind == "struct":
            kwargs[spec.name] = sample(spec.struct, version)
        elif spec.kind == "array":
            if spec.elem == "struct":
                kwargs[spec.name] = [sample(spec.struct, version)]
            elif spec.elem == "uuid":
                kwargs[spec.name] = [uuid.UUID(int=7)]
            else:
                kwargs[spec.name] = [_SAMPLE_SCALARS[spec.elem]]
        elif spec.kind == "uuid":
            kwargs[spec.name] = uuid.UUID(int=1)
        else:
            kwargs[spec.name] = _SAMPLE_SCALARS[spec.kind]
    return cls(**kwargs)


def seed_inputs() -> dict[str, bytes]:
    """Seeds: every response at its lowest, middle and highest version, both as
    defaults and with every field populated."""
    seeds: dict[str, bytes] = {}
    for index, cls in enumerate(CLASSES):
        lo, hi = cls.MIN_VERSION, cls.MAX_VERSION  # type: ignore[attr-defined]
        for version in sorted({lo, hi, (lo + hi) // 2}):
            prefix = bytes([index, version - lo])
            seeds[f"{cls.__name__}-v{version}"] = prefix + cls().encode(version)
            full = sample(cls, version).encode(version)  # type: ignore[attr-defined]
            seeds[f"{cls.__name__}-v{version}-full"] = prefix + full
    return seeds


if __name__ == "__main__":
    main(test_one_input, seed_inputs)

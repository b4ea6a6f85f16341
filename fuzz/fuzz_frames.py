"""Fuzz the response framing (size prefix) and header parsing.

Input layout: byte 0 picks the API, byte 1 the version, byte 2 a split point;
the rest is a byte stream as it would arrive from a broker. The stream is cut
into frames with ``read_frame`` both whole and in two chunks (as a connection
buffers it), and each frame is decoded with ``decode_response``. Only
``kproto.errors.DecodeError`` may escape, and both ways of feeding the stream
must yield the same frames.

Run::

    python fuzz/fuzz_frames.py -max_total_time=30 fuzz/corpus/frames
    python fuzz/fuzz_frames.py --write-seeds fuzz/corpus/frames
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from kproto.errors import DecodeError
    from kproto.protocol.headers import (
        decode_response,
        decode_response_header,
        read_frame,
        response_header_version,
    )
    from kproto.protocol.messages import RESPONSE_TYPES

    KEYS = sorted(RESPONSE_TYPES)
    CLASSES = [RESPONSE_TYPES[k] for k in KEYS]

#: Small on purpose: the fuzzer should hit the limit check often.
MAX_FRAME = 1 << 12


def _frames(stream: bytes) -> tuple[list[bytes], bool]:
    """All whole frames in ``stream``; the flag says a size was rejected."""
    view = memoryview(stream)
    pos = 0
    frames: list[bytes] = []
    while True:
        try:
            got = read_frame(view, pos, MAX_FRAME)
        except DecodeError:
            return frames, True
        if got is None:
            return frames, False
        frame, pos = got
        frames.append(bytes(frame))


def _frames_in_two_chunks(stream: bytes, split: int) -> tuple[list[bytes], bool]:
    """The same, buffering the way a connection does: append, split, compact."""
    buffer = bytearray()
    frames: list[bytes] = []
    for chunk in (stream[:split], stream[split:]):
        buffer += chunk
        view = memoryview(bytes(buffer))
        pos = 0
        while True:
            try:
                got = read_frame(view, pos, MAX_FRAME)
            except DecodeError:
                return frames, True
            if got is None:
                break
            frame, pos = got
            frames.append(bytes(frame))
        del buffer[:pos]
    return frames, False


def test_one_input(data: bytes) -> None:
    """One fuzz iteration; raises only on a bug."""
    if len(data) < 3:
        return
    cls = CLASSES[data[0] % len(CLASSES)]
    lo, hi = cls.MIN_VERSION, cls.MAX_VERSION  # type: ignore[attr-defined]
    version = lo + data[1] % (hi - lo + 1)
    stream = data[3:]
    split = data[2] % (len(stream) + 1)
    whole, rejected = _frames(stream)
    chunked, rejected2 = _frames_in_two_chunks(stream, split)
    if (whole, rejected) != (chunked, rejected2):
        raise AssertionError("framing depends on how the stream was chunked")
    for frame in whole:
        view = memoryview(frame)
        try:
            correlation_id, body = decode_response_header(view, cls.API_KEY, version)  # type: ignore[attr-defined]
        except DecodeError:
            continue
        if not 4 <= body <= len(frame):
            raise AssertionError("body offset outside the frame")
        if response_header_version(cls.API_KEY, version) == 0 and body != 4:  # type: ignore[attr-defined]
            raise AssertionError("header v0 is exactly the correlation id")
        try:
            cid, _response = decode_response(view, cls, version)  # type: ignore[type-var]
        except DecodeError:
            continue
        if cid != correlation_id:
            raise AssertionError("correlation id differs between header and full decode")


def seed_inputs() -> dict[str, bytes]:
    """Seeds: framed default responses (two per stream) for every API."""
    seeds: dict[str, bytes] = {}
    for index, cls in enumerate(CLASSES):
        lo, hi = cls.MIN_VERSION, cls.MAX_VERSION  # type: ignore[attr-defined]
        for version in sorted({lo, hi}):
            header = b"\x00\x00\x00\x07"
            if response_header_version(cls.API_KEY, version) == 1:  # type: ignore[attr-defined]
                header += b"\x00"
            frame = header + cls().encode(version)  # type: ignore[attr-defined]
            framed = len(frame).to_bytes(4, "big") + frame
            seeds[f"{cls.__name__}-v{version}"] = bytes([index, version - lo, 5]) + framed * 2
    return seeds


if __name__ == "__main__":
    main(test_one_input, seed_inputs)

"""Fuzz the legacy (magic 0/1) message set reader: only DecodeError may escape.

Run: python fuzz/fuzz_legacy.py -max_total_time=30 fuzz/corpus/legacy

The first input byte picks CRC checking and the decompression bound; the
rest is the message set. Top-level and inner CRC-32s are re-stamped in a
second pass so mutations reach the wrapper and offset logic.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from kproto.errors import DecodeError
    from kproto.protocol.legacy_records import read_legacy_message_set
    from kproto.protocol.records import read_batches


def _consume(blob: bytes, check_crcs: bool, bound: int) -> None:
    for reader in (read_legacy_message_set, read_batches):
        try:
            for batch in reader(blob, check_crcs=check_crcs, max_decompressed=bound):
                for record in batch.records():
                    assert isinstance(record.offset, int)
                _ = (batch.base_offset, batch.last_offset, batch.timestamp_type, batch.record_count)
        except DecodeError:
            pass


def test_one_input(data: bytes) -> None:
    """Feed one input to the legacy readers in several configurations."""
    if not data:
        return
    opts, blob = data[0], data[1:]
    bound = 1 << 16 if opts & 2 else 1 << 26
    _consume(blob, bool(opts & 1), bound)
    if len(blob) >= 26:
        size = struct.unpack_from(">i", blob, 8)[0]
        end = 12 + size
        if 14 <= size and end <= len(blob):
            fixed = bytearray(blob)
            struct.pack_into(">I", fixed, 12, zlib.crc32(bytes(fixed[16:end])))
            _consume(bytes(fixed), True, bound)


if __name__ == "__main__":
    main(test_one_input)

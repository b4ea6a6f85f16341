"""Fuzz the v2 record batch reader: only DecodeError (and subclasses) may escape.

Run: python fuzz/fuzz_records.py -max_total_time=30 fuzz/corpus/records

The first input byte picks the options (CRC checking on or off, a small or
the default decompression bound); the rest is the fetch ``records`` blob.
With CRC checks on, most mutations stop at the CRC, so the harness also
re-stamps the CRC of the first batch to reach the record decoder.
"""

from __future__ import annotations

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crc32c  # noqa: E402
from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from kproto.errors import DecodeError
    from kproto.protocol.records import read_batches


def _consume(blob: bytes, check_crcs: bool, bound: int) -> None:
    try:
        for batch in read_batches(blob, check_crcs=check_crcs, max_decompressed=bound):
            for record in batch.records():
                assert record.key is None or isinstance(record.key, bytes)
            batch.control_record()
            _ = (batch.last_offset, batch.next_offset, batch.last_sequence, batch.timestamp_type)
    except DecodeError:
        pass


def test_one_input(data: bytes) -> None:
    """Feed one input to the reader in several configurations."""
    if not data:
        return
    opts, blob = data[0], data[1:]
    bound = 1 << 16 if opts & 2 else 1 << 26
    _consume(blob, bool(opts & 1), bound)
    # Re-stamp the first batch's CRC so mutated records get past the check.
    if len(blob) >= 61 and blob[16] == 2:
        fixed = bytearray(blob)
        struct.pack_into(
            ">I", fixed, 17, crc32c.crc32c(bytes(fixed[21 : 12 + struct.unpack_from(">i", fixed, 8)[0]]))
        )
        _consume(bytes(fixed), True, bound)


if __name__ == "__main__":
    main(test_one_input)

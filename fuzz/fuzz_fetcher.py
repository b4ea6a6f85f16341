"""Fuzz the consumer's fetch-blob reader: only DecodeError (and subclasses) may escape.

Run: python fuzz/fuzz_fetcher.py -max_total_time=30 fuzz/corpus/fetcher

The path the consumer takes for a Fetch response's ``records`` blob:
:class:`~kproto.consumer.fetcher.PartitionRecords` (batch header walk, CRC,
transaction markers, the shared v2 record reader, legacy messages), drained
in small takes. The first input byte picks the options (CRC checks,
read_committed with an aborted transaction, the fetch offset, the take
size); the rest is the blob. As in ``fuzz_records.py`` the first batch's CRC
is also re-stamped so that mutated records reach the decoder.
"""

from __future__ import annotations

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crc32c  # noqa: E402
from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from kproto.consumer.fetcher import PartitionRecords
    from kproto.consumer.types import TopicPartition
    from kproto.errors import DecodeError

_TP = TopicPartition("t", 0)


def _consume(blob: bytes, opts: int) -> None:
    try:
        pr = PartitionRecords(
            _TP, 0, blob, (opts >> 2) & 3, check_crcs=bool(opts & 1), read_committed=bool(opts & 2),
            aborted=[(0, 1)] if opts & 2 else None, max_decompressed=1 << 16,
        )
        take = 1 + (opts >> 4)
        while True:
            got = pr.take(take)
            if not got:
                break
            assert len(got) <= take
            for r in got:
                assert r.key is None or isinstance(r.key, bytes)
                assert r.value is None or isinstance(r.value, bytes)
        assert pr.exhausted
    except DecodeError:
        pass


def test_one_input(data: bytes) -> None:
    """Feed one input to the reader in several configurations."""
    if not data:
        return
    opts, blob = data[0], data[1:]
    _consume(blob, opts)
    if len(blob) >= 61 and blob[16] == 2:
        fixed = bytearray(blob)
        end = 12 + struct.unpack_from(">i", fixed, 8)[0]
        if 21 <= end <= len(fixed):
            struct.pack_into(">I", fixed, 17, crc32c.crc32c(bytes(fixed[21:end])))
            _consume(bytes(fixed), opts | 1)


if __name__ == "__main__":
    main(test_one_input)

"""Produce one record per input line. A summary (records, bytes, rate, errors) goes to stderr;
-q silences it. The exit status is 1 if any record failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from typing import Any, BinaryIO

from kproto.errors import KafkaError, KafkaTimeoutError
from kproto_cli.clients import check_reachable, explain, make_client
from kproto_cli.errors import EXIT_INTERRUPTED, NotFound, Unreachable, UsageError
from kproto_cli.options import add_repeatable, parse_assignment, topic_command
from kproto_cli.progress import Progress, rate_text

__all__ = ["add_parser", "run"]

#: Lines between two looks at the acknowledged futures and the status line: the
#: check is a few attribute reads, so every 1024 records costs nothing measurable.
_CHECK_EVERY = 1024


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    # The module docstring is the subcommand's description (as for ``kproto demo``).
    p = topic_command(sub, common, "produce", "produce lines of stdin (or a file) as records", __doc__)
    p.add_argument("-l", "--file", metavar="PATH", help="read lines from PATH instead of stdin")
    p.add_argument(
        "-K", dest="key_delimiter", metavar="SEP", help="split each line at the first SEP into key and value"
    )
    add_repeatable(p, "-H", dest="headers", metavar="NAME=VALUE", help="add this header to every record (repeatable)")
    p.add_argument(
        "-p", "--partition", type=int, help="produce to this partition (default: the partitioner's choice)"
    )
    p.add_argument(
        "-z", "--compression", choices=["none", "gzip", "snappy", "lz4", "zstd"], help="compression codec"
    )
    p.add_argument("--acks", choices=["0", "1", "all", "-1"], help="acknowledgements to wait for (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from transports.sync import KafkaProducer

    check_reachable(config["bootstrap_servers"])
    config = dict(config)
    config.setdefault("linger_ms", 5)  # librdkafka's (kcat's) default: lines arrive one by one
    if args.compression:
        config["compression_type"] = None if args.compression == "none" else args.compression
    if args.acks:
        config["acks"] = "all" if args.acks == "all" else int(args.acks)
    headers = [(k, v.encode()) for k, v in (parse_assignment(h, "-H header") for h in args.headers)] or None
    source: BinaryIO
    if args.file:
        try:
            source = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot read {args.file!r}: {exc.strerror or exc}") from None
    else:
        source = sys.stdin.buffer
    producer = make_client(KafkaProducer, config, "producer")
    try:
        try:
            partitions = producer.partitions_for(args.topic)
        except KafkaTimeoutError as exc:
            error = explain(exc)
            if isinstance(error, Unreachable):
                raise error from None
            raise NotFound(f"topic {args.topic!r} not found (and not created by the broker)") from None
        if args.partition is not None and args.partition not in partitions:
            raise NotFound(
                f"topic {args.topic!r} has no partition {args.partition} (it has {len(partitions)})"
            )
        return _produce(producer, args, source, headers)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        producer.close()


def _produce(producer: Any, args: argparse.Namespace, source: BinaryIO, headers: Any) -> int:
    progress = Progress()
    if progress.enabled and source.isatty():
        print("kproto: one record per line; Ctrl-D ends", file=sys.stderr)
    topic, partition = args.topic, args.partition
    sep = args.key_delimiter.encode() if args.key_delimiter else None
    send = producer.send
    pending: deque[Any] = deque()
    records = nbytes = failed = 0
    first_error: BaseException | None = None
    started = time.monotonic()

    def reap() -> None:
        nonlocal failed, first_error
        while pending and pending[0].is_done:
            future = pending.popleft()
            if future.failed():
                failed += 1
                first_error = first_error or future.exception

    interrupted = False
    try:
        for line in source:
            if line[-1:] == b"\n":
                line = line[:-1]
            key = None
            if sep is not None:
                head, found, tail = line.partition(sep)
                if found:
                    key, line = head, tail
            try:
                pending.append(send(topic, line, key, headers, partition))
            except KafkaTimeoutError:
                raise
            except KafkaError as exc:  # this record only (too large...): count it, go on
                failed += 1
                first_error = first_error or exc
            records += 1
            nbytes += len(line) + (len(key) if key is not None else 0)
            if not records % _CHECK_EVERY:
                reap()
                if progress.due():
                    progress.show(records, nbytes, f"{failed:,} errors" if failed else "")
    except KeyboardInterrupt:  # Ctrl-C: what was read is still delivered and summed up, as kcat flushes
        interrupted = True
    producer.flush()
    reap()
    progress.clear()
    if not args.quiet:
        summary = f"produced {rate_text(records, nbytes, time.monotonic() - started)}; {failed:,} errors"
        if first_error is not None:
            summary += f"; first: {type(first_error).__name__}: {first_error}"
        print(summary, file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    return 1 if failed else 0

"""Print records of TOPIC, one per line by default (the value), by --format or as JSON lines.
Without -G the partitions are assigned directly; with -G the consumer joins the group and commits
what it printed. Progress goes to stderr only when it is a terminal.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from typing import Any

from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto_cli.clients import check_reachable, make_client
from kproto_cli.errors import NotFound, UsageError
from kproto_cli.options import topic_command
from kproto_cli.progress import Progress, rate_text
from kproto_cli.render import FORMAT_HELP, compile_format, json_line

__all__ = ["add_parser", "run"]

#: Seconds between two commits of what was printed, in a group (the Java client's auto-commit interval).
_COMMIT_INTERVAL_S = 5.0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    # The module docstring is the subcommand's description (as for ``kproto demo``).
    p = topic_command(sub, common, "consume", "print a topic's records", __doc__)
    p.add_argument(
        "-o",
        "--offset",
        default=None,
        metavar="WHERE",
        help="where to start: beginning (default), end, stored (the group's committed offsets), "
        "OFFSET, -N (N before the end), s@MS or s@ISO-8601 (first record at or after that time)",
    )
    p.add_argument("-G", "--group", help="consume in this group (subscribe; commit what was printed)")
    p.add_argument("-p", "--partition", type=int, action="append", help="only this partition (repeatable)")
    p.add_argument("-n", "--count", type=int, help="exit after this many records")
    p.add_argument(
        "-e", "--exit-at-end", action="store_true", help="exit once every partition is read to its end"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("-f", "--format", dest="format", metavar="FMT", help=f"output format: {FORMAT_HELP}")
    out.add_argument("--json", "-J", action="store_true", help="one JSON object per record")
    p.set_defaults(run=run)


def _timestamp_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"-o s@{text}: not milliseconds since the epoch nor an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp() * 1000)


def _start(where: str | None, group: str | None) -> tuple[str, int]:
    """``(kind, value)``: kind is beginning, end, stored, offset, relative or time."""
    if where is None:
        return ("stored", 0) if group else ("beginning", 0)
    if where in ("beginning", "end", "stored"):
        if where == "stored" and not group:
            raise UsageError("-o stored needs a group (-G)")
        return where, 0
    if group:
        raise UsageError("with -G, -o takes beginning, end or stored")
    if where.startswith("s@"):
        return "time", _timestamp_ms(where[2:])
    try:
        n = int(where)
    except ValueError:
        raise UsageError(f"-o {where!r}: beginning, end, stored, OFFSET, -N or s@TIME") from None
    return ("relative", -n) if n < 0 else ("offset", n)


def run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from transports.sync import KafkaConsumer

    if args.count is not None and args.count < 1:
        raise UsageError("-n must be at least 1")
    kind, value = _start(args.offset, args.group)
    render = json_line if args.json else compile_format(args.format or "%v\\n")
    check_reachable(config["bootstrap_servers"])
    config = dict(config)
    if args.group:
        config["group_id"] = args.group
        config.setdefault("enable_auto_commit", False)  # commit exactly what was printed (below)
        config.setdefault("auto_offset_reset", "latest" if kind == "end" else "earliest")
    consumer = make_client(KafkaConsumer, config, "consumer")
    try:
        partitions = consumer.partitions_for_topic(args.topic, timeout_ms=args.timeout * 1000)
        if partitions is None:
            raise NotFound(f"topic {args.topic!r} not found")
        wanted = sorted(partitions)
        if args.partition:
            missing = sorted(set(args.partition) - partitions)
            if missing:
                raise NotFound(
                    f"topic {args.topic!r} has no partition {missing[0]} (it has {len(partitions)})"
                )
            wanted = sorted(set(args.partition))
        if args.group and not args.partition:
            consumer.subscribe([args.topic])
        else:
            tps = [TopicPartition(args.topic, p) for p in wanted]
            consumer.assign(tps)
            _seek(consumer, tps, kind, value, args.timeout)
        return _consume(consumer, args, render)
    finally:
        consumer.close(autocommit=False)


def _seek(consumer: Any, tps: list[TopicPartition], kind: str, value: int, timeout: float) -> None:
    if kind == "beginning":
        consumer.seek_to_beginning(*tps)
    elif kind == "end":
        consumer.seek_to_end(*tps)
    elif kind == "offset":
        for tp in tps:
            consumer.seek(tp, value)
    elif kind == "relative":
        ends = consumer.end_offsets(tps, timeout_ms=timeout * 1000)
        starts = consumer.beginning_offsets(tps, timeout_ms=timeout * 1000)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - value))
    elif kind == "time":
        found = consumer.offsets_for_times(dict.fromkeys(tps, value), timeout_ms=timeout * 1000)
        ends = consumer.end_offsets(tps, timeout_ms=timeout * 1000)
        for tp in tps:
            at = found.get(tp)
            consumer.seek(tp, ends[tp] if at is None else at.offset)


def _consume(consumer: Any, args: argparse.Namespace, render: Any) -> int:
    out = sys.stdout.buffer
    progress = Progress()
    limit = args.count
    group = bool(args.group)
    #: Next offset after the last record printed, per partition (what a group commits).
    printed: dict[TopicPartition, int] = {}
    #: -e: the partitions read to their end (the high watermark of a fetch) at least once, as kcat.
    at_end: set[TopicPartition] = set()
    records = nbytes = 0
    started = time.monotonic()
    next_commit = started + _COMMIT_INTERVAL_S
    try:
        while True:
            batches = consumer.poll(timeout_ms=200)
            chunks: list[bytes] = []
            for tp, batch in batches.items():
                if limit is not None and records + len(batch) > limit:
                    batch = batch[: limit - records]
                if not batch:
                    continue
                chunks.extend(map(render, batch))
                records += len(batch)
                last = batch[-1].offset + 1
                printed[tp] = last
            if chunks:
                data = b"".join(chunks)
                nbytes += len(data)
                out.write(data)
                out.flush()
            if limit is not None and records >= limit:
                break
            redraw = progress.due()
            if args.exit_at_end or redraw:
                assigned = consumer.assignment()
                lag = 0
                for tp in assigned:
                    high = consumer.highwater(tp)
                    if high is not None:
                        behind = high - consumer.position(tp)
                        lag += max(0, behind)
                        if behind <= 0:
                            at_end.add(tp)
                if args.exit_at_end and assigned and assigned <= at_end:
                    break
                if redraw:
                    progress.show(records, nbytes, f"lag {lag:,}")
            if group and printed and time.monotonic() >= next_commit:
                _commit(consumer, printed)
                next_commit = time.monotonic() + _COMMIT_INTERVAL_S
    finally:
        if group and printed:
            _commit(consumer, printed)
        progress.clear()
    if progress.enabled:
        print(f"consumed {rate_text(records, nbytes, time.monotonic() - started)}", file=sys.stderr)
    return 0


def _commit(consumer: Any, printed: dict[TopicPartition, int]) -> None:
    consumer.commit({tp: OffsetAndMetadata(offset) for tp, offset in printed.items()})
    printed.clear()

"""The ``kproto`` command: argument parsing, dispatch, and one-line errors with stable exit statuses.

``kproto SUBCOMMAND [options]``; ``kproto SUBCOMMAND --help`` for each. The
exit statuses are listed in :mod:`kproto_cli.errors` (0 ok, 1 Kafka or runtime
error, 2 usage, 3 not found, 4 unreachable, 130 interrupted). Set
``KPROTO_DEBUG=1`` (or pass ``--debug``) to see the traceback behind an error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from kproto import __version__
from kproto.errors import KafkaError
from kproto_cli import admin, consume, demo, produce
from kproto_cli.clients import explain
from kproto_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, CliError
from kproto_cli.options import add_repeatable, client_config

__all__ = ["build_parser", "main"]

_EPILOG = """\
exit status: 0 ok, 1 Kafka or runtime error, 2 usage error (arguments, -X, -F),
3 unknown topic or group, 4 no broker reachable, 130 interrupted.

examples:
  seq 5 | kproto produce events
  kproto consume events -e -f '%p:%o %k=%v\\n'
  kproto consume events -G billing -n 10 --json
  kproto lag billing
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (each shares -b, -X, -F, -t and --debug)."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("connection")
    g.add_argument(
        "-b",
        "--bootstrap-server",
        metavar="HOST:PORT[,...]",
        help="brokers to bootstrap from (default: localhost:9092, or bootstrap_servers from -F)",
    )
    add_repeatable(
        g,
        "-X",
        dest="option",
        metavar="KEY=VALUE",
        help="any client option, e.g. security_protocol=SASL_SSL, sasl_mechanism=SCRAM-SHA-256, "
        "ssl_cafile=ca.pem (librdkafka's dotted names work too); repeatable",
    )
    add_repeatable(
        g,
        "-F",
        dest="config_file",
        metavar="PATH",
        help="read client options from a file of KEY=VALUE lines (# comments); -X wins",
    )
    g.add_argument(
        "-t",
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for metadata and admin answers (default 10)",
    )
    g.add_argument("--debug", action="store_true", help="show tracebacks")

    parser = argparse.ArgumentParser(
        prog="kproto",
        description="Produce, consume and administer Kafka topics (kproto's blocking client).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kproto {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    produce.add_parser(sub, common)
    consume.add_parser(sub, common)
    admin.add_parsers(sub, common)
    demo.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kproto`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Argument errors exit 2 through argparse, with its usage line.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    debug = getattr(args, "debug", False) or os.environ.get("KPROTO_DEBUG") == "1"
    try:
        # (``demo`` takes no connection options: it starts its own broker)
        config = (
            client_config(args.bootstrap_server, args.option, args.config_file)
            if hasattr(args, "option")
            else {}
        )
        status: int = args.run(args, config)
        return status
    except CliError as exc:
        return _fail(exc, debug)
    except KafkaError as exc:
        return _fail(explain(exc), debug)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``kproto consume t | head``): nothing more to say.
        # Point stdout at /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if debug:
            raise
        print(
            f"kproto: unexpected {type(exc).__name__}: {exc} (--debug shows the traceback)", file=sys.stderr
        )
        return EXIT_ERROR


def _fail(error: CliError, debug: bool) -> int:
    if debug and (error.__cause__ or error.__context__):
        import traceback

        traceback.print_exception(error.__cause__ or error.__context__)
    print(f"kproto: {error}", file=sys.stderr)
    return error.status


if __name__ == "__main__":
    raise SystemExit(main())

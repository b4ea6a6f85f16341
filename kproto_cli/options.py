"""Client options from the command line: ``-b``, ``-X key=value`` and ``-F`` config files.

Every option of the clients (``security_protocol``, ``sasl_*``, ``ssl_*``,
``linger_ms``...) can be given with ``-X`` or in a config file of
``key=value`` lines; ``-X`` wins over the file, and ``-b`` over both. Values
are read as the literal they look like: ``true``/``false``, an int, a float,
else a string. librdkafka's dotted names (as kcat takes them) are accepted
too: ``security.protocol`` is ``security_protocol``, and the few names that
differ are mapped (``sasl.username`` is ``sasl_plain_username``...).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from typing import Any

from kproto_cli.errors import UsageError

__all__ = [
    "add_repeatable",
    "client_config",
    "parse_assignment",
    "parse_value",
    "read_config_file",
    "topic_command",
]

#: librdkafka (kcat) names whose kafka-python names differ by more than the dots.
_LIBRDKAFKA_NAMES = {
    "sasl_mechanisms": "sasl_mechanism",
    "sasl_username": "sasl_plain_username",
    "sasl_password": "sasl_plain_password",
    "ssl_ca_location": "ssl_cafile",
    "ssl_certificate_location": "ssl_certfile",
    "ssl_key_location": "ssl_keyfile",
    "ssl_key_password": "ssl_password",
    "client_rack": "client_rack",
}


def topic_command(
    sub: Any, common: argparse.ArgumentParser, name: str, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """The subcommand ``name TOPIC ...``, with the connection options of ``common``."""
    p: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=help, description=description)
    p.add_argument("topic")
    return p


def add_repeatable(group: Any, *flags: str, dest: str, metavar: str, help: str) -> None:
    """Add an option that may be given again and again: its values collect in a list ([] if none)."""
    group.add_argument(*flags, dest=dest, action="append", default=[], metavar=metavar, help=help)


def parse_value(text: str) -> object:
    """``true``/``false`` as bools, ints and floats as numbers, anything else as the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_assignment(item: str, what: str) -> tuple[str, str]:
    """``key=value`` split at the first ``=``; UsageError naming ``what`` otherwise."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"{what} {item!r} is not key=value")
    return key, value


def _option_name(key: str) -> str:
    name = key.strip().replace(".", "_").replace("-", "_")
    return _LIBRDKAFKA_NAMES.get(name, name)


def read_config_file(path: str) -> dict[str, object]:
    """``key=value`` lines of ``path``; blank lines and lines starting with ``#`` are skipped."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path!r}: {exc.strerror or exc}") from None
    out: dict[str, object] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, value = parse_assignment(line, f"{path}:{number}:")
        out[_option_name(key)] = parse_value(value.strip())
    return out


def client_config(
    bootstrap: str | None,
    options: Iterable[str],
    files: Iterable[str],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The clients' keyword arguments: ``defaults``, then each ``-F`` file, then ``-X``, then ``-b``.

    Raises:
        UsageError: A ``-X`` that is not ``key=value``, or a file that cannot be read or parsed.
    """
    config: dict[str, Any] = dict(defaults or {})
    for path in files:
        config.update(read_config_file(path))
    for item in options:
        key, value = parse_assignment(item, "-X option")
        config[_option_name(key)] = parse_value(value)
    if bootstrap is not None:
        config["bootstrap_servers"] = bootstrap
    config.setdefault("bootstrap_servers", "localhost:9092")
    servers = config["bootstrap_servers"]
    if isinstance(servers, str):
        config["bootstrap_servers"] = [s.strip() for s in servers.split(",") if s.strip()]
    return config

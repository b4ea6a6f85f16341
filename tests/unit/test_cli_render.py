"""The command line's pure parts: ``--format`` strings, JSON lines, ``-X``/``-F`` options, tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kproto.consumer import ConsumerRecord
from kproto_cli.errors import UsageError
from kproto_cli.options import client_config
from kproto_cli.render import compile_format, json_line, table


def record(
    key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes | None], ...] = ()
) -> ConsumerRecord:
    return ConsumerRecord("events", 3, 42, 1700000000123, 0, key, value, headers, None, -1, -1, -1)


def test_format_tokens_like_kcat() -> None:
    r = record(b"k", b"v%s", (("a", b"1"), ("b", None)))
    fmt = compile_format("%T/%p@%o %t [%k=%v] %h %K %S 100%%\\t\\n")
    assert fmt(r) == b"events/3@42 1700000000123 [k=v%s] a=1,b= 1 3 100%\t\n"
    assert compile_format("%k|%v|%K|%S\\n")(record(None, None)) == b"||-1|-1\n"
    assert compile_format("plain\\n")(r) == b"plain\n"


@pytest.mark.parametrize("bad", ["%q", "tail %", "x\\", "\\x"])
def test_bad_format_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        compile_format(bad)


def test_json_line_text_and_base64() -> None:
    out = json.loads(json_line(record(b"\xff\xfe", "é".encode(), (("h", b"\x00\x81"),))))
    assert out == {
        "topic": "events",
        "partition": 3,
        "offset": 42,
        "timestamp": 1700000000123,
        "key": None,
        "key_base64": "//4=",
        "value": "é",
        "headers": {"h": None, "h_base64": "AIE="},
    }


def test_options_from_file_then_x_then_b(tmp_path: Path) -> None:
    conf = tmp_path / "c.properties"
    conf.write_text(
        "# comment\nbootstrap.servers=a:1,b:2\nsecurity.protocol=SASL_SSL\nsasl.username=u\n\nlinger.ms=5\n"
    )
    got = client_config(
        None, ["sasl.mechanisms=PLAIN", "ssl_check_hostname=false", "linger_ms=7"], [str(conf)]
    )
    assert got == {
        "bootstrap_servers": ["a:1", "b:2"],
        "security_protocol": "SASL_SSL",
        "sasl_plain_username": "u",
        "sasl_mechanism": "PLAIN",
        "ssl_check_hostname": False,
        "linger_ms": 7,
    }
    assert client_config("c:3", [], [str(conf)])["bootstrap_servers"] == ["c:3"]
    assert client_config(None, [], [])["bootstrap_servers"] == ["localhost:9092"]
    with pytest.raises(UsageError, match="not key=value"):
        client_config(None, ["acks"], [])
    with pytest.raises(UsageError, match="cannot read config file"):
        client_config(None, [], [str(tmp_path / "missing")])


def test_table_aligns_numbers_right() -> None:
    assert table(("NAME", "N"), [("a", 1), ("bbb", 100), ("c", None)]).splitlines() == [
        "NAME    N",
        "a       1",
        "bbb   100",
        "c       -",
    ]


def test_where_consume_starts() -> None:
    from kproto_cli.consume import _start

    assert _start(None, None) == ("beginning", 0) and _start(None, "g") == ("stored", 0)
    assert _start("end", "g") == ("end", 0) and _start("12", None) == ("offset", 12)
    assert _start("-5", None) == ("relative", 5)
    assert _start("s@1700000000123", None) == ("time", 1700000000123)
    assert _start("s@2023-11-14T22:13:20.123+00:00", None) == ("time", 1700000000123)
    assert _start("s@2023-11-14T22:13:20", None) == ("time", 1700000000000)  # no zone: UTC
    for where, group in (("12", "g"), ("stored", None), ("soon", None), ("s@yesterday", None)):
        with pytest.raises(UsageError):
            _start(where, group)

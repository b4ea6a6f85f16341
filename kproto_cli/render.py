"""How records and tables are printed: ``--format`` strings, JSON lines, aligned columns.

The tokens are kcat's, except that ``%t`` is the timestamp and ``%T`` the
topic (kcat has those two the other way round). A format string is compiled
once into one bytes ``%`` template and one function that picks the record's
fields, so a record costs one tuple and one ``%`` (no per-token loop on the
consume path).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from kproto_cli.errors import UsageError

__all__ = ["FORMAT_HELP", "compile_format", "json_line", "table"]

#: Token -> (its place in the bytes template, the expression of the record ``r`` that fills it).
#: Only these fixed snippets reach ``eval`` below; the user's text goes into the template.
_TOKENS: dict[str, tuple[bytes, str]] = {
    "k": (b"%s", "r.key or b''"),
    "v": (b"%s", "r.value or b''"),
    "p": (b"%d", "r.partition"),
    "o": (b"%d", "r.offset"),
    "t": (b"%d", "r.timestamp"),
    "T": (b"%s", "r.topic.encode()"),
    "h": (b"%s", "_headers(r.headers)"),
    "K": (b"%d", "-1 if r.key is None else len(r.key)"),
    "S": (b"%d", "-1 if r.value is None else len(r.value)"),
}
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "0": b"\0", "\\": b"\\"}

FORMAT_HELP = (
    "%%k key, %%v value, %%p partition, %%o offset, %%t timestamp (ms), %%T topic, "
    "%%h headers (k=v,...), %%K key length, %%S value length (-1: null), %%%% a percent sign; "
    "\\n \\t \\r \\0 \\\\ escapes"
)


def _headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    return b",".join(k.encode() + b"=" + (v or b"") for k, v in headers)


def compile_format(fmt: str) -> Callable[[Any], bytes]:
    """A function from a consumer record to the bytes ``fmt`` describes (kcat's tokens, see FORMAT_HELP).

    Raises:
        UsageError: An unknown ``%`` token or a dangling ``%``/``\\``.
    """
    template = bytearray()
    fields: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch in "%\\" and i + 1 == len(fmt):
            raise UsageError(f"--format {fmt!r} ends with a lone {ch!r}")
        if ch == "%":
            token = fmt[i + 1]
            if token == "%":
                template += b"%%"
            elif token in _TOKENS:
                place, expr = _TOKENS[token]
                template += place
                fields.append(expr)
            else:
                raise UsageError(
                    f"--format: unknown token %{token} (allowed: {FORMAT_HELP.replace('%%', '%')})"
                )
            i += 2
        elif ch == "\\":
            esc = _ESCAPES.get(fmt[i + 1])
            if esc is None:
                raise UsageError(f"--format: unknown escape \\{fmt[i + 1]}")
            template += esc
            i += 2
        else:
            template += ch.encode().replace(b"%", b"%%")
            i += 1
    tmpl = bytes(template)
    if not fields:
        return lambda r: tmpl % ()
    # One generated lambda from the fixed snippets above (as collections.namedtuple builds its methods).
    pick = eval(f"lambda r: ({', '.join(fields)},)", {"_headers": _headers})  # noqa: S307
    return lambda r: tmpl % pick(r)


def _text(data: bytes | None, name: str, out: dict[str, Any]) -> None:
    """``out[name]``: the UTF-8 text, or None with ``name_base64`` for bytes that are not UTF-8."""
    if data is None:
        out[name] = None
        return
    try:
        out[name] = data.decode()
    except UnicodeDecodeError:
        out[name] = None
        out[name + "_base64"] = base64.b64encode(data).decode()


def json_line(r: Any) -> bytes:
    """One record as a JSON object and a newline (keys and values as text; base64 when not UTF-8)."""
    out: dict[str, Any] = {
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
    }
    _text(r.key, "key", out)
    _text(r.value, "value", out)
    headers: dict[str, Any] = {}
    for k, v in r.headers:
        _text(v, k, headers)
    out["headers"] = headers
    return json.dumps(out, ensure_ascii=False).encode() + b"\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Text columns left-aligned, number columns (None: ``-``) right-aligned, two spaces apart."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    numeric = [
        any(isinstance(row[i], int) for row in rows)
        and all(row[i] is None or isinstance(row[i], int) for row in rows)
        for i in range(len(headers))
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)

"""kproto is a sans-I/O core: no I/O or runtime modules, no clock, no global randomness.

Checked on the syntax tree of every module under ``kproto/`` (generated ones
included), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KPROTO = Path(__file__).resolve().parents[2] / "kproto"
MODULES = sorted(KPROTO.rglob("*.py"))

#: Modules that do I/O, run threads or event loops.
FORBIDDEN_MODULES = {
    "socket",
    "ssl",
    "select",
    "selectors",
    "threading",
    "asyncio",
    "trio",
    "anyio",
    "_thread",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "signal",
}
#: Clocks: the core takes ``now`` from its driver.
CLOCK_MODULES = {"time"}
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}
#: The global generator's functions; a seeded ``random.Random`` instance is fine.
ALLOWED_RANDOM_NAMES = {"Random"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in FORBIDDEN_MODULES | CLOCK_MODULES:
                    found.append(f"{path.name}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES | CLOCK_MODULES:
                found.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
            if root == "random":
                for alias in node.names:
                    if alias.name not in ALLOWED_RANDOM_NAMES:
                        found.append(f"{path.name}:{node.lineno}: from random import {alias.name}")
        elif isinstance(node, ast.Attribute):
            owner = node.value
            name = (
                owner.id
                if isinstance(owner, ast.Name)
                else owner.attr
                if isinstance(owner, ast.Attribute)
                else ""
            )
            if isinstance(owner, ast.Name) and name == "random" and node.attr not in ALLOWED_RANDOM_NAMES:
                found.append(f"{path.name}:{node.lineno}: random.{node.attr}")
            if (name, node.attr) in CLOCK_CALLS:
                found.append(f"{path.name}:{node.lineno}: {name}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            found.append(f"{path.name}:{node.lineno}: __import__()")
    return found


#: Packages above the core: ``kproto`` never imports them (``kproto/__main__.py``, the
#: ``python -m kproto`` shim that runs the command line, is a program, never imported).
UPPER_PACKAGES = {"transports", "kproto_cli"}


def _upper_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [f"{path.name}:{node.lineno}: {n}" for n in names if n.split(".")[0] in UPPER_PACKAGES]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(KPROTO).as_posix())
def test_core_does_not_import_the_layers_above(path: Path) -> None:
    if path == KPROTO / "__main__.py":
        assert _upper_imports(path) == ["__main__.py:3: kproto_cli.main"]
    else:
        assert _upper_imports(path) == []


def test_every_module_is_checked() -> None:
    names = {p.relative_to(KPROTO).as_posix() for p in MODULES}
    assert {"client.py", "connection.py", "driving.py", "errors.py"} <= names
    assert any(n.startswith("protocol/messages/") for n in names)  # generated code too


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(KPROTO).as_posix())
def test_module_is_sans_io(path: Path) -> None:
    assert _violations(path) == []


def test_checker_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import socket\nfrom asyncio import sleep\nimport time\nimport random\n"
        "def f():\n    import trio.lowlevel\n    return random.random() + time.monotonic()\n"
        "from random import choice\nimport datetime\nx = datetime.datetime.now()\n"
    )
    assert len(_violations(bad)) == 7
    good = tmp_path / "good.py"
    good.write_text("import random\nrng = random.Random(4)\nfrom random import Random\n")
    assert _violations(good) == []

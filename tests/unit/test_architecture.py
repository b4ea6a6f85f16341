"""Issue 14's structure figures over kproto/ and transports/ (tools/arch_check.py):
no class over 800 lines, no import cycle between modules, no ``Any`` in kproto's
public signatures (outside the few the tool keeps on purpose, each with why)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _arch_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("arch_check", ROOT / "tools" / "arch_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["arch_check"] = module
    spec.loader.exec_module(module)
    return module


arch_check = _arch_check()

def test_no_class_over_800_lines() -> None:
    report = arch_check.check(ROOT)
    assert report.modules > 50  # both packages were read
    assert any(c.module == "kproto.client" and c.name == "Client" for c in report.classes)
    too_long = {f"{c.module}.{c.name}" for c in report.classes if c.lines > 800}
    assert too_long == set()


def test_no_import_cycle() -> None:
    cycles = {tuple(sorted(set(cycle))) for cycle in arch_check.check(ROOT).cycles}
    assert cycles == set()


def test_no_any_in_kprotos_public_signatures() -> None:
    report = arch_check.check(ROOT)
    assert [str(a) for a in report.unexpected_any()] == []
    assert report.stale_allowances() == []
    # The rule reads the real tree: the kept ones are found where they are.
    assert "kproto.connection.Callback" in {a.key for a in report.public_any}


def test_the_checker_sees_public_any(tmp_path: Path) -> None:
    pkg = tmp_path / "kproto"
    (pkg / "_private").mkdir(parents=True)
    (pkg / "protocol" / "messages").mkdir(parents=True)
    (tmp_path / "transports").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_private" / "__init__.py").write_text("from typing import Any\ndef f(x: Any) -> None: ...\n")
    (pkg / "protocol" / "messages" / "m.py").write_text("from typing import Any\ndef f(x: Any) -> None: ...\n")
    (tmp_path / "transports" / "t.py").write_text("from typing import Any\ndef f(x: Any) -> None: ...\n")
    (pkg / "m.py").write_text(
        "import typing\nfrom typing import TYPE_CHECKING, Any\n"
        "Alias = dict[str, Any]\n"
        "limit: 'list[Any]' = []\n"
        "AnyBatch = int\n"
        "def f(*args: int, **kw: typing.Any) -> None: ...\n"
        "def g(b: AnyBatch) -> AnyBatch: ...\n"
        "def _h(x: Any) -> Any:\n    def inner(y: Any) -> Any: ...\n    z: Any = 1\n"
        "class C:\n"
        "    field: Any = None\n"
        "    plain = Any\n"
        "    def __init__(self, x: int) -> None:\n        self.a: Any = x\n        self._b: Any = x\n"
        "    def __eq__(self, other: Any) -> bool: ...\n"
        "    def m(self) -> list[Any]: ...\n"
        "class _Hidden:\n    def m(self, x: Any) -> None: ...\n"
        "if TYPE_CHECKING:\n    class P:\n        def m(self) -> Any: ...\n"
    )
    found = [(a.key, a.line) for a in arch_check.check(tmp_path).public_any]
    assert found == [
        ("kproto.m.Alias", 3),
        ("kproto.m.limit", 4),
        ("kproto.m.f", 6),
        ("kproto.m.C.field", 12),
        ("kproto.m.C.a", 15),
        ("kproto.m.C.m", 18),
        ("kproto.m.P.m", 23),
    ]


def test_the_checker_sees_cycles_and_long_classes(tmp_path: Path) -> None:
    pkg = tmp_path / "kproto"
    (pkg / "sub").mkdir(parents=True)
    (tmp_path / "transports").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from kproto.sub import b\n")
    (pkg / "sub" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
    )
    (pkg / "sub" / "b.py").write_text("def f():\n    import kproto.sub.a\n\nclass B:\n" + "    x = 1\n" * 900)
    (tmp_path / "transports" / "t.py").write_text("from kproto.protocol.messages import X\n")
    report = arch_check.check(tmp_path)
    assert report.modules == 5
    assert report.cycles == [["kproto.sub.a", "kproto.sub.b", "kproto.sub.a"]]
    assert [(c.module, c.name, c.lines) for c in report.classes if c.lines > 800] == [
        ("kproto.sub.b", "B", 901)
    ]


def test_imports_resolve_modules_and_packages() -> None:
    known = {"kproto", "kproto.admin", "kproto.admin.types", "kproto.protocol"}
    tree = ast.parse(
        "from kproto.admin import types as t\nfrom kproto.admin import AdminCore\n"
        "import kproto.protocol.messages.produce\nfrom . import x\n"
    )
    found = arch_check.imports_of("kproto.admin.core", tree, known, is_package=False)
    assert found == {"kproto.admin.types", "kproto.admin"}


def test_no_module_reaches_into_anothers_private_names() -> None:
    assert [str(r) for r in arch_check.check(ROOT).reaches] == []


def test_the_checker_sees_private_reaches(tmp_path: Path) -> None:
    (tmp_path / "kproto").mkdir()
    (tmp_path / "transports").mkdir()
    (tmp_path / "kproto" / "__init__.py").write_text("")
    (tmp_path / "kproto" / "_mod.py").write_text("def _helper() -> None: ...\n")
    (tmp_path / "kproto" / "a.py").write_text(
        "from collections import namedtuple\n"
        "def _helper() -> None: ...\n"
        "class A:\n"
        "    __slots__ = ('_slot',)\n"
        "    _klass = 1\n"
        "    def __init__(self) -> None:\n        self._mine = 1\n"
        "    def _method(self) -> None: ...\n"
        "    def peer(self, other: 'A') -> int:\n"
        "        return other._mine + other._slot + other._klass + self._anything\n"
    )
    (tmp_path / "transports" / "t.py").write_text(
        "from kproto import _mod\n"
        "from kproto._mod import _helper\n"
        "from kproto.a import A as _A\n"
        "def f(core: object, rec: object) -> object:\n"
        "    core._client.close()\n"
        "    rec._replace(x=1)\n"
        "    return core.__dict__\n"
    )
    found = [(r.path, r.line, r.what) for r in arch_check.check(tmp_path).reaches]
    assert found == [
        ("transports/t.py", 2, "from kproto._mod import _helper"),
        ("transports/t.py", 5, "core._client"),
    ]

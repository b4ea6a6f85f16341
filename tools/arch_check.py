"""Architecture check (issue 14): class sizes, module import cycles, public ``Any``, private reaches.

Reads the syntax trees of every module under ``kproto/`` and ``transports/``
(the generated ``kproto/protocol/messages`` left out) and prints:

- the largest classes, and every class over ``--max-class-lines`` (800);
- the import cycles between those modules: each strongly connected group of
  modules, with one cycle through it. Every ``import``/``from ... import``
  counts, those under ``if TYPE_CHECKING:`` and inside functions included
  (a cycle there is still two modules that cannot be read apart).
  ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
  else to ``pkg`` (its ``__init__``);
- every public signature of ``kproto/`` that mentions ``typing.Any``
  (issue 14: "no ``Any`` in kproto's public signatures"). Public means: a
  module none of whose dotted parts starts with ``_`` (``__init__`` is the
  package itself), and in it a name without a leading underscore: a
  function, a method of a class whose name (and every enclosing class's
  name) has none, ``__init__`` included (other dunders are not API); a
  module-level variable or type alias; a class attribute (an annotated
  class-body name: attrs/NamedTuple fields, which are ``__init__``'s
  parameters too) or an instance attribute annotated in ``__init__``
  (``self.x: T``). Their annotations (parameters, ``*args``/``**kwargs``,
  return; a type alias's value) count when they name ``Any`` or
  ``typing.Any`` (a whole name, so ``AnyBatch`` does not count; string
  annotations are parsed too); names under a module-level ``if`` (such as
  ``if TYPE_CHECKING:`` Protocols) count as well. Not counted: the
  generated ``kproto/protocol/messages`` and function bodies (nested
  functions, local annotations); aliases are not followed (an alias naming
  ``Any`` counts once, where it is defined). ``transports/`` is a client of
  the core, not its API, and is left out. :data:`ALLOWED_ANY` lists the few
  kept on purpose, each with why: they are printed but do not fail;
- every reach of a module into another's private names (:func:`foreign_private`).

Exits 1 when a class is too long, a cycle exists, a public ``Any`` outside
:data:`ALLOWED_ANY` is found (or an entry there matches nothing any more), or a
module reaches into another's private names.
Run from the repository root: ``python tools/arch_check.py``.
``tests/unit/test_architecture.py`` runs :func:`check` and asserts that
none of these is found.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kproto", "transports")
EXCLUDED = ("kproto.protocol.messages",)
MAX_CLASS_LINES = 800

#: Public ``Any`` kept on purpose (``module.qualified.name`` -> why). Precise
#: types there would need a runtime change or a refactor of the readers.
ALLOWED_ANY: dict[str, str] = {
    "kproto.connection.Callback": (
        "a response callback as stored with its request, whatever the response type "
        "(no existential types in Python); send() pairs each callback with its request's "
        "response type, and a typed wrapper would cost a call per response"
    ),
    "kproto.consumer.types.ConsumerRecord.key": (
        "what the user's key_deserializer returns; a generic NamedTuple needs Python 3.11 "
        "(kproto supports 3.10), and object would make every record.key.decode() a type error"
    ),
    "kproto.consumer.types.ConsumerRecord.value": "as ConsumerRecord.key, for value_deserializer",
    "kproto.hooks.ProducerRecord.key": "the user's key as send() got it, before serialization (as ConsumerRecord.key)",
    "kproto.hooks.ProducerRecord.value": "as ProducerRecord.key",
    "kproto.admin.engine.AdminOp.results": (
        "resource -> value, both per admin call (topic name -> dict, broker id -> list...), "
        "read as such by transports/_admin.py; typing it needs AdminOp generic per call"
    ),
    "kproto.admin.engine.AdminOp.errors": "as AdminOp.results (its keys)",
    "kproto.admin.engine.Call.units": (
        "engine-internal: calls of every key type share one list, so Call keeps its callables "
        "and units key-erased; Call.__init__ and AdminEngine.add_call are generic over the key"
    ),
    "kproto.admin.engine.Call.target": "as Call.units",
    "kproto.admin.engine.Call.build": "as Call.units",
    "kproto.admin.engine.Call.parse": "as Call.units",
    "kproto.admin.engine.Call.fallback": "as Call.units",
}


class ClassSize(NamedTuple):
    module: str
    name: str
    lines: int


class PublicAny(NamedTuple):
    module: str
    #: ``Class.method``, ``function``, ``Class.attribute`` or a module-level name.
    name: str
    path: str
    line: int

    @property
    def key(self) -> str:
        return f"{self.module}.{self.name}"

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name}"


class Reach(NamedTuple):
    """A module reaching into another's private name: ``obj._x`` or ``from m import _x``."""

    module: str
    #: The expression (``core._client``) or the import (``from m import _x``).
    what: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.what}"


class Report(NamedTuple):
    #: Every class (nested ones too, named ``Outer.Inner``), longest first.
    classes: list[ClassSize]
    #: One cycle per strongly connected group of modules, as ``[a, b, ..., a]``.
    cycles: list[list[str]]
    #: How many modules were read.
    modules: int
    #: ``PublicAny`` of each public signature naming ``Any`` (kproto only), in file order.
    public_any: list[PublicAny] = []
    #: Every reach into another module's private names (:func:`foreign_private`), in file order.
    reaches: list[Reach] = []

    def unexpected_any(self) -> list[PublicAny]:
        """The public ``Any`` not in :data:`ALLOWED_ANY`."""
        return [a for a in self.public_any if a.key not in ALLOWED_ANY]

    def stale_allowances(self) -> list[str]:
        """:data:`ALLOWED_ANY` entries that match nothing any more (to delete)."""
        found = {a.key for a in self.public_any}
        return sorted(k for k in ALLOWED_ANY if k not in found)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(path, root)
            if not any(name == e or name.startswith(e + ".") for e in EXCLUDED):
                found[name] = path
    return found


def _resolve(name: str, known: Iterable[str]) -> str | None:
    """``name`` or its longest prefix that is a module we read (None: not ours, or left out)."""
    if any(name == e or name.startswith(e + ".") for e in EXCLUDED):
        return None
    known_set = set(known)
    while name:
        if name in known_set:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, tree: ast.Module, known: set[str], is_package: bool) -> set[str]:
    """The modules among ``known`` that ``module`` imports."""
    out: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name, known)
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                target = sub if sub in known else _resolve(source, known)
                if target:
                    out.add(target)
    out.discard(module)
    return out


def class_sizes(module: str, tree: ast.Module) -> list[ClassSize]:
    out: list[ClassSize] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                name = prefix + child.name
                out.append(ClassSize(module, name, (child.end_lineno or child.lineno) - child.lineno + 1))
                visit(child, name + ".")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, f"{prefix}{child.name}.<locals>.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _is_private_module(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def _names_any(node: ast.expr | None) -> bool:
    """True when the annotation ``node`` names ``Any`` / ``typing.Any`` (string annotations parsed)."""
    if node is None:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id == "Any":
            return True
        if isinstance(sub, ast.Attribute) and sub.attr == "Any":
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            try:
                inner = ast.parse(sub.value, mode="eval").body
            except SyntaxError:
                continue
            if _names_any(inner):
                return True
    return False


def _signature_any(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    a = fn.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(p for p in (a.vararg, a.kwarg) if p is not None)]
    return any(_names_any(p.annotation) for p in params) or _names_any(fn.returns)


def public_any(module: str, tree: ast.Module, path: str = "") -> list[PublicAny]:
    """The public signatures of ``module`` that mention ``Any`` (see the module docstring)."""
    if _is_private_module(module):
        return []
    out: list[PublicAny] = []
    where = path or module

    def hit(name: str, line: int) -> None:
        out.append(PublicAny(module, name, where, line))

    def public(name: str) -> bool:
        return not name.startswith("_")

    def assigned(node: ast.stmt) -> tuple[str, ast.expr | None, ast.expr | None] | None:
        """``(name, annotation, value)`` of a one-name assignment, else None."""
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            return node.target.id, node.annotation, node.value
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            return node.targets[0].id, None, node.value
        return None

    def visit(body: list[ast.stmt], prefix: str, in_class: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                if public(node.name):
                    visit(node.body, prefix + node.name + ".", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not (public(node.name) or node.name == "__init__"):
                    continue
                if _signature_any(node):
                    hit(prefix + node.name, node.lineno)
                if in_class and node.name == "__init__":
                    for stmt in ast.walk(node):
                        if (
                            isinstance(stmt, ast.AnnAssign)
                            and isinstance(stmt.target, ast.Attribute)
                            and isinstance(stmt.target.value, ast.Name)
                            and stmt.target.value.id == "self"
                            and public(stmt.target.attr)
                            and _names_any(stmt.annotation)
                        ):
                            hit(prefix + stmt.target.attr, stmt.lineno)
            elif (found := assigned(node)) is not None:
                name, annotation, value = found
                # A module-level value naming Any is a type alias; a class body's
                # plain values are data, only its annotations are types.
                if public(name) and (
                    _names_any(annotation) or (not in_class and value is not None and _names_any(value))
                ):
                    hit(prefix + name, node.lineno)
            elif isinstance(node, ast.If):  # ``if TYPE_CHECKING:`` / version switches at module level
                visit(node.body + node.orelse, prefix, in_class)

    visit(tree.body, "", False)
    return out


#: ``namedtuple``'s public API spells its names with an underscore.
_NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})


def _own_names(tree: ast.Module) -> set[str]:
    """The names a module gives its own objects: ``self.x = ...``, class-body names, methods, ``__slots__``."""
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                own.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    own.add(stmt.name)
                targets = stmt.targets if isinstance(stmt, ast.Assign) else (
                    [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            own.add(name.id)
                        elif isinstance(name, ast.Constant) and isinstance(name.value, str):
                            own.add(name.value)  # in a __slots__ tuple
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__slots__" for t in stmt.targets
                ):
                    own.update(c.value for c in ast.walk(stmt.value)
                               if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return own


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def foreign_private(module: str, tree: ast.Module, known: set[str], path: str = "") -> list[Reach]:
    """Where ``module`` reaches into another module's private names (issue 14: "no module reaches
    into another's private attributes").

    - ``obj._x`` on an object other than ``self``/``cls`` when ``module`` does not define ``_x``
      itself (``self._x = ...``, a class-body name or method, a ``__slots__`` entry);
      ``namedtuple``'s ``_replace``/``_asdict``... are public API;
    - ``from pkg.mod import _x`` of a name that is not a module of ``known`` (private modules are
      the packages' own business; an ``as _alias`` of a public name is a local name).
    """
    own = _own_names(tree) | _NAMEDTUPLE_API
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own and not (
            isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
        ):
            found.append(Reach(module, ast.unparse(node), path, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found.extend(
                Reach(module, f"from {node.module} import {alias.name}", path, node.lineno)
                for alias in node.names
                if _private(alias.name) and f"{node.module}.{alias.name}" not in known
            )
    return sorted(found, key=lambda r: r.line)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def connect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(groups)


def _one_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest cycle through ``group[0]`` inside ``group`` (breadth first)."""
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return group


def check(root: Path = ROOT) -> Report:
    modules = _modules(root)
    trees = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in modules.items()}
    known = set(modules)
    graph = {
        name: imports_of(name, tree, known, modules[name].name == "__init__.py")
        for name, tree in trees.items()
    }
    classes = sorted(
        (c for name, tree in trees.items() for c in class_sizes(name, tree)),
        key=lambda c: (-c.lines, c.module),
    )
    cycles = [_one_cycle(graph, group) for group in _strongly_connected(graph)]
    anys = [
        hit
        for name, tree in trees.items()
        if name == "kproto" or name.startswith("kproto.")
        for hit in public_any(name, tree, modules[name].relative_to(root).as_posix())
    ]
    reaches = [
        hit for name, tree in trees.items()
        for hit in foreign_private(name, tree, known, modules[name].relative_to(root).as_posix())
    ]
    return Report(classes, cycles, len(modules), anys, reaches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-class-lines", type=int, default=MAX_CLASS_LINES)
    parser.add_argument("--top", type=int, default=8, help="how many of the largest classes to list")
    args = parser.parse_args(argv)
    report = check()
    too_long = [c for c in report.classes if c.lines > args.max_class_lines]
    print(f"{report.modules} modules read (kproto/, transports/; not {', '.join(EXCLUDED)})")
    print(f"largest classes (limit {args.max_class_lines} lines):")
    for c in report.classes[: args.top]:
        print(f"  {c.lines:5d}  {c.module}.{c.name}")
    listed = ", ".join(f"{c.module}.{c.name} ({c.lines})" for c in too_long)
    print(f"classes over {args.max_class_lines} lines: {listed or 'none'}")
    print(f"import cycles: {len(report.cycles) or 'none'}")
    for cycle in report.cycles:
        print("  " + " -> ".join(cycle))
    unexpected = report.unexpected_any()
    stale = report.stale_allowances()
    print(f"Any in kproto's public signatures: {len(unexpected) or 'none'}"
          f" (and {len(report.public_any) - len(unexpected)} kept on purpose, see ALLOWED_ANY)")
    for a in unexpected:
        print(f"  {a}")
    for a in report.public_any:
        if a.key in ALLOWED_ANY:
            print(f"  kept: {a}")
    for key in stale:
        print(f"  ALLOWED_ANY entry matching nothing (delete it): {key}")
    print(f"reaches into another module's private names: {len(report.reaches) or 'none'}")
    for reach in report.reaches:
        print(f"  {reach}")
    return 1 if too_long or report.cycles or unexpected or stale or report.reaches else 0


if __name__ == "__main__":
    raise SystemExit(main())

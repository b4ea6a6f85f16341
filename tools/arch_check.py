"""Architecture check (issue 14): class sizes and module import cycles.

Reads the syntax trees of every module under ``kproto/`` and ``transports/``
(the generated ``kproto/protocol/messages`` left out) and prints:

- the largest classes, and every class over ``--max-class-lines`` (800);
- the import cycles between those modules: each strongly connected group of
  modules, with one cycle through it. Every ``import``/``from ... import``
  counts, those under ``if TYPE_CHECKING:`` and inside functions included
  (a cycle there is still two modules that cannot be read apart).
  ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
  else to ``pkg`` (its ``__init__``).

Exits 1 when a class is too long or a cycle exists. Run from the repository
root: ``python tools/arch_check.py``. ``tests/unit/test_architecture.py``
runs :func:`check` and asserts both lists are empty.
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


class ClassSize(NamedTuple):
    module: str
    name: str
    lines: int


class Report(NamedTuple):
    #: Every class (nested ones too, named ``Outer.Inner``), longest first.
    classes: list[ClassSize]
    #: One cycle per strongly connected group of modules, as ``[a, b, ..., a]``.
    cycles: list[list[str]]
    #: How many modules were read.
    modules: int


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
    return Report(classes, cycles, len(modules))


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
    return 1 if too_long or report.cycles else 0


if __name__ == "__main__":
    raise SystemExit(main())

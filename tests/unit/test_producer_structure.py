"""The producer package's structure (issue 14): no import cycle, no reach-in, no god class.

Checked on the syntax tree of every module under ``kproto/producer/``, imports
under ``TYPE_CHECKING`` included (a cycle there is still two modules that
cannot be read apart).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PRODUCER = Path(__file__).resolve().parents[2] / "kproto" / "producer"
MODULES = {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in sorted(PRODUCER.glob("*.py"))}
#: The longest class allowed (issue 14: none over 800 lines).
MAX_CLASS_LINES = 800


def _imports(tree: ast.Module) -> set[str]:
    """The sibling modules of kproto.producer that ``tree`` imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kproto.producer."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kproto.producer."):
                    found.add(alias.name.split(".")[2])
    return found


def test_no_import_cycle_in_the_producer() -> None:
    graph = {name: _imports(tree) - {name} for name, tree in MODULES.items() if name != "__init__"}
    assert {"core", "accumulator", "sink", "idempotence", "transactions"} <= set(graph)
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            visit(dep, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert "core" not in graph["transactions"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_attribute_of_another_object(module: str) -> None:
    # ``x._name`` where x is not self/cls: a module reaching into another
    # object's private state (TransactionOp._finish is its own module's).
    allowed = {("transactions", "_finish")}
    found = []
    for node in ast.walk(MODULES[module]):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            and (module, node.attr) not in allowed
        ):
            found.append(f"{module}.py:{node.lineno}: .{node.attr}")
    assert found == []


def test_no_class_over_800_lines() -> None:
    sizes = {
        f"{module}.{node.name}": (node.end_lineno or node.lineno) - node.lineno + 1
        for module, tree in MODULES.items()
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    assert sizes["core.ProducerCore"] > 0 and sizes["accumulator.RecordAccumulator"] > 0
    assert {name: n for name, n in sizes.items() if n > MAX_CLASS_LINES} == {}

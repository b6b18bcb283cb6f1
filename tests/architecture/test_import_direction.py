"""The package's rooms import one way: cli > operations > landing > core, with local and sample_data as leaves
that only the CLI (and tests and bench, outside the package) use, and no cycle between modules.

Every import counts, also those under TYPE_CHECKING and inside functions: a cycle hidden in a function is
still a cycle a reader has to untangle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "extract"

# A room may import its own modules and the rooms listed for it, nothing else of the package.
ALLOWED = {
    "cli": {"operations", "landing", "core", "local", "sample_data"},
    "operations": {"landing", "core"},
    "landing": {"core"},
    "core": set(),
    "local": {"core"},
    "sample_data": {"core"},
}
# demo drives the local default, the sample data and the pipeline, build the dbt build: commands of the CLI in
# modules of their own.
TOP_LEVEL_ROOMS = {"cli": "cli", "__main__": "cli", "demo": "cli", "build": "cli", "__init__": "core"}
MAX_LINES = 500


def module_name(package: Path, path: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "core"
    return TOP_LEVEL_ROOMS.get(parts[1], parts[1])


def imported_modules(path: Path, module: str, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module) for every import of a package module, resolved to the most specific module known."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = name
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                yield node.lineno, target
                break


def import_graph(package: Path) -> dict[str, dict[str, int]]:
    paths = {module_name(package, path): path for path in package.rglob("*.py")}
    known = set(paths)
    return {
        module: dict((target, line) for line, target in imported_modules(path, module, known))
        for module, path in paths.items()
    }


def wrong_way_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        room = room_of(module)
        for target, line in sorted(targets.items()):
            target_room = room_of(target)
            if target == module.partition(".")[0]:
                problems.append(f"{module}:{line} imports the package root {target}")
            elif target_room != room and target_room not in ALLOWED[room]:
                problems.append(f"{module}:{line} ({room}) imports {target} ({target_room})")
    return problems


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_room() -> None:
    graph = import_graph(PACKAGE)
    assert {room_of(module) for module in graph} <= set(ALLOWED), sorted(graph)


def test_imports_run_one_way() -> None:
    assert wrong_way_imports(import_graph(PACKAGE)) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_long_modules_say_why() -> None:
    """Over MAX_LINES lines a module must give its reason at the top (in its docstring)."""
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        if source.count("\n") > MAX_LINES:
            docstring = ast.get_docstring(ast.parse(source)) or ""
            if f"over {MAX_LINES} lines" not in docstring:
                unexplained.append(f"{path.relative_to(PACKAGE.parent)}: {source.count(chr(10))} lines")
    assert unexplained == []


@pytest.fixture
def toy_package(tmp_path: Path) -> Path:
    package = tmp_path / "extract"
    for room in ("core", "landing", "operations", "local"):
        (package / room).mkdir(parents=True)
        (package / room / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("from extract.operations import service\nfrom extract.local import embedded\n")
    (package / "core" / "db.py").write_text("import os\n")
    (package / "landing" / "sink.py").write_text("from extract.core import db\n")
    (package / "operations" / "service.py").write_text("from .. landing import sink\n")
    (package / "local" / "embedded.py").write_text("from extract.core.db import connect\n")
    return package


def test_the_checks_catch_what_they_are_for(toy_package: Path) -> None:
    assert wrong_way_imports(import_graph(toy_package)) == []
    assert cycles(import_graph(toy_package)) == []

    (toy_package / "core" / "db.py").write_text("def f():\n    from extract.landing.sink import x\n")
    (toy_package / "landing" / "rules.py").write_text("from extract.local import embedded\n")
    graph = import_graph(toy_package)
    assert wrong_way_imports(graph) == [
        "extract.core.db:2 (core) imports extract.landing.sink (landing)",
        "extract.landing.rules:1 (landing) imports extract.local.embedded (local)",
    ]
    assert cycles(graph) == [["extract.core.db", "extract.landing.sink"]]

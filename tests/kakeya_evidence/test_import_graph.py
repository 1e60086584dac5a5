"""The pipeline's import graph: a floor, wings above it that do not reach each other, no cycle.

Every import counts, those inside functions too: a lazy import hides a dependency from
the reader, not from the graph. Modules are the nodes; a package's ``__init__`` is its
own node, so ``from kakeya_evidence.stages import STAGES`` points at it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "kakeya_evidence"
WINGS = ("stages", "report", "bench", "github")
FLOOR = "common"
# What the floor may stand on: itself, the package's error tree, and the runtime's
# torch-free constants and validators.
FLOOR_MAY_IMPORT = ("kakeya_evidence.common", "kakeya_evidence.errors")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The pipeline modules a file imports: ``from pkg import mod`` points at ``pkg.mod``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
    return found & set(modules)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in (*WINGS, FLOOR) else None


def test_no_import_cycle_anywhere_in_the_pipeline():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_wing_imports_another_and_the_floor_imports_no_wing():
    crossings = []
    for module, targets in _graph().items():
        wing = _wing(module)
        for target in targets:
            other = _wing(target)
            floor_leans = wing == FLOOR and not target.startswith(FLOOR_MAY_IMPORT)
            wing_reaches = wing and other and other not in (wing, FLOOR)
            if floor_leans or wing_reaches:
                crossings.append(f"{module} -> {target}")
    assert crossings == []


def test_the_floor_is_imported_by_both_wings_it_carries():
    graph = _graph()
    users = {_wing(m) for m, targets in graph.items() for t in targets if _wing(t) == FLOOR}
    assert {"stages", "report"} <= users


def test_the_walk_sees_lazy_imports():
    """The check can fail: an import inside a function is an edge like any other."""
    path = PACKAGE / "cli.py"
    assert "kakeya_evidence.runner" in _imports(path, _modules())  # imported in a function

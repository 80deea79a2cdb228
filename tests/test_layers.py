"""The layers point one way: ui -> rag/ingest -> pubmed_rag (and ingest never reaches into rag)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"pubmed_rag": {"ingest", "rag", "ui"}, "ingest": {"rag", "ui"}, "rag": {"ui"}}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages imported anywhere in ``path`` (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) >= 5
    wrong = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & FORBIDDEN[package]) for f in files}
    assert {f: w for f, w in wrong.items() if w} == {}


def test_the_cli_lives_with_the_other_front_end():
    assert (ROOT / "ui" / "cli" / "main.py").is_file() and not (ROOT / "pubmed_rag" / "cli.py").exists()
    assert imported_packages(ROOT / "ui" / "cli" / "main.py") >= {"pubmed_rag"}


def module_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (function-level imports included)."""
    modules = {}
    for package in ("pubmed_rag", "ingest", "rag", "ui"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names)
        graph[name] &= set(modules)
    return graph


def test_no_import_cycles():
    graph = module_graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert len(graph) > 80 and cycles == []

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

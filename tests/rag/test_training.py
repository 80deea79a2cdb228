"""``pubmed-rag train verifier`` end to end on a tiny slice of the shared data: seeded and deterministic."""

from __future__ import annotations

import json
import random

import pytest

from rag.training.verifier import (
    CONTRADICTED,
    NEI,
    SUPPORTED,
    build_examples,
    change_number,
    contradict,
    restate,
)
from tests.conftest import ROOT
from ui.cli import main

DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "citation_integrity").is_dir(), reason="../shared/data is absent")


def test_contradictions_are_made_from_real_sentences():
    rng = random.Random(0)
    assert contradict("Budesonide-formoterol was superior to terbutaline.", rng) in (
        ("Budesonide-formoterol was inferior to terbutaline.", "direction"),
        ("Budesonide-formoterol was not superior to terbutaline.", "negation-added"))
    assert contradict("Obesity was not associated with asthma control.", random.Random(1))[0] in (
        "Obesity was associated with asthma control.", "Obesity was not associated with asthma control.")
    assert contradict("We failed to find an association.", rng) == ("We managed to find an association.",
                                                                    "negation-removed")
    changed = change_number("Mortality was 32% with cirrhosis (p = 0.03).", random.Random(2))
    assert changed and changed != "Mortality was 32% with cirrhosis (p = 0.03)." and "cirrhosis" in changed
    assert restate("These data suggest that X reduced Y in adults (n = 20).") == "X reduced Y in adults."


@needs_data
def test_examples_cover_every_source_with_three_labels():
    examples = build_examples(DATA, seed=13, limit=3)
    sources = {e.source for e in examples}
    assert {"citint-support", "citint-refute", "citint-nei", "pubmedqa-support", "pubmedqa-nei-other"} <= sources
    assert {e.label for e in examples} == {SUPPORTED, CONTRADICTED, NEI}
    assert examples == build_examples(DATA, seed=13, limit=3)


def train_tiny_twice(task: str, root, capsys, limit: int = 2) -> list[dict]:
    """``pubmed-rag train TASK`` on a tiny slice, twice with the same seed; each run's training.json (checked for
    the summary, the seed and the model card on the way)."""
    records = []
    for name in ("a", "b"):
        out = root / name
        code = main(["train", task, "--data", str(DATA), "--out", str(out), "--limit", str(limit), "--seed", "5",
                     "--max-length", "48", "--no-eval"])
        assert code == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["task"] == task and summary["examples"] > 10 and summary["out"] == str(out)
        record = json.loads((out / "training.json").read_text())
        assert record["config"]["seed"] == 5 and (out / "README.md").read_text().startswith("# pubmed-rag ")
        records.append({**record, "card": (out / "README.md").read_text()})
    return records


@needs_data
def test_train_verifier_tiny_slice_is_deterministic(tmp_path, capsys):
    a, b = train_tiny_twice("verifier", tmp_path, capsys)
    assert a["labels"][1] == "contradicted" and a["card"].startswith("# pubmed-rag citation verifier")
    assert a["sha256"] == b["sha256"]  # same seed, same slice: the same weights, byte for byte

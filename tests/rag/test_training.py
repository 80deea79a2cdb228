"""``pubmed-rag train verifier`` end to end on real claim-verification records (tests/fixtures/claim_data): seeded and
deterministic; it never writes over the shipped model unless asked."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from pubmed_rag.paths import SHARED_DATA
from rag.cross_encoder import TRAINED_FILE, unpack_trained
from rag.evaluation.flips import contradict
from rag.training.verifier import (
    CONTRADICTED,
    NEI,
    SUPPORTED,
    balanced_weights,
    build_claim_examples,
    calibration_items,
)
from tests.conftest import FIXTURES
from ui.cli import main

DATA = SHARED_DATA
CLAIM_DATA = FIXTURES / "claim_data"


def test_contradictions_are_made_from_real_sentences():
    rng = random.Random(0)
    assert contradict("Budesonide-formoterol was superior to terbutaline.", rng) in (
        ("Budesonide-formoterol was inferior to terbutaline.", "direction"),
        ("Budesonide-formoterol was not superior to terbutaline.", "negation-added"))
    for seed in range(5):  # whatever the draw, the negation goes: an unchanged sentence is never a contradiction
        assert contradict("Obesity was not associated with asthma control.", random.Random(seed)) == (
            "Obesity was associated with asthma control.", "negation-removed")
    assert contradict("We failed to find an association.", rng) == ("We managed to find an association.",
                                                                    "negation-removed")


def test_examples_see_each_pair_three_ways_and_leave_calibration_claims_out():
    examples = build_claim_examples(CLAIM_DATA, seed=13)
    assert examples == build_claim_examples(CLAIM_DATA, seed=13)
    sources = {e.source.rsplit("-", 1)[0] for e in examples}
    assert sources == {"scifact", "healthver", "check-covid", "citation-integrity"}
    assert {e.label for e in examples} == {SUPPORTED, CONTRADICTED, NEI}
    claim = "1 in 5 million in UK have abnormal PrP positivity."  # SciFact train, CONTRADICT, rationale sentence 4
    views = [e for e in examples if e.first == claim]
    assert len(views) >= 2 and views[0].label == CONTRADICTED
    assert views[0].second.startswith("RESULTS Of the 32,441 appendix samples")  # the rationale sentence alone
    assert max(len(v.second) for v in views) > 3 * len(views[0].second)  # and the abstract, cut by the tokenizer
    held_out = {i.claim for i in calibration_items(CLAIM_DATA)}
    assert held_out and not held_out & {e.first for e in examples}
    weights = balanced_weights(examples)
    assert abs(sum(w * sum(e.label == c for e in examples) for c, w in enumerate(weights)) / len(examples) - 1) < 0.01


def train_tiny(task: str, out, capsys, limit: int, seed: int = 5, data=None) -> dict:
    """``pubmed-rag train TASK`` on a tiny slice into ``out``; its training.json plus the model card and the rebuilt
    weights (checked for the summary, the seed and the card on the way)."""
    data = data or (CLAIM_DATA if task == "verifier" else DATA)
    code = main(["train", task, "--data", str(data), "--out", str(out), "--limit", str(limit), "--seed", str(seed),
                 "--max-length", "48", "--no-eval"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == task and summary["examples"] > 10 and summary["out"] == str(out)
    record = json.loads((out / "training.json").read_text())
    assert record["config"]["seed"] == seed and (out / "README.md").read_text().startswith("# pubmed-rag ")
    return {**record, "card": (out / "README.md").read_text(), "weights": unpack_trained(out / TRAINED_FILE)}


def train_tiny_twice(task: str, root, capsys, limit: int = 2) -> list[dict]:
    """``train_tiny`` twice with the same seed."""
    return [train_tiny(task, root / name, capsys, limit) for name in ("a", "b")]


def difference_ratio(a: dict, b: dict) -> float:
    """How far run ``b``'s weights are from run ``a``'s, as a fraction of what training changed in ``a`` (its
    distance from the installed base weights; from zero for the new classification head): norms over all tensors."""
    from safetensors.numpy import load_file

    from rag.cross_encoder import base_weights_file

    assert a["weights"].keys() == b["weights"].keys()
    base = {"bert." + k: v for k, v in load_file(str(base_weights_file())).items()}
    apart = sum(float(np.sum((a["weights"][k] - b["weights"][k]) ** 2)) for k in a["weights"])
    trained = sum(float(np.sum((v - base.get(k, 0.0)) ** 2)) for k, v in a["weights"].items())
    return (apart / trained) ** 0.5


def assert_same_training(a: dict, b: dict) -> None:
    """Two runs with the same seed made the same examples, in the same batches, with the same losses, and shipped
    the same weights. Byte for byte on this machine; but on the CI machine (machines of this kind differ in CPU
    features) two runs in one process shipped different bytes with the same losses: float32's last bits differed,
    and the fp16 and int8 rounding of the shipped form turns that into one-step differences. So the weights must be
    the same up to 5% of what training changed; another seed is about 140% apart (the verifier's test checks that)."""
    for key in ("task", "labels", "examples", "by_source", "steps", "config"):
        assert a[key] == b[key], key
    assert abs(a["final_loss"] - b["final_loss"]) <= 1e-3
    assert difference_ratio(a, b) <= 0.05


def test_train_verifier_tiny_slice_is_deterministic(tmp_path, capsys):
    a, b = train_tiny_twice("verifier", tmp_path, capsys)
    assert a["labels"][1] == "contradicted" and a["card"].startswith("# pubmed-rag citation verifier")
    assert_same_training(a, b)
    # Another seed draws another head and other dropout masks: the comparison above tells it apart.
    other = train_tiny("verifier", tmp_path / "other", capsys, limit=2, seed=6)
    assert difference_ratio(a, other) > 0.5


def test_training_never_writes_over_the_shipped_verifier_unless_asked(tmp_path, capsys, monkeypatch):
    import rag.training
    from rag.cross_encoder import check_weights
    from rag.verify import SHIPPED

    assert main(["train", "verifier", "--data", str(CLAIM_DATA), "--out", str(SHIPPED), "--limit", "1"]) == 2
    assert "holds the shipped verifier; train into a new folder" in capsys.readouterr().err
    assert main(["train", "verifier", "--replace-shipped", "--out", str(tmp_path / "x")]) == 2
    capsys.readouterr()
    # Asked for: it writes the shipped folder (here a stand-in for models/), with a checksum of every loaded file.
    monkeypatch.setattr(rag.training, "MODELS", tmp_path)
    (tmp_path / "verifier").mkdir()
    (tmp_path / "verifier" / "training.json").write_text("{}")
    assert main(["train", "verifier", "--data", str(CLAIM_DATA), "--replace-shipped", "--limit", "1",
                 "--max-length", "32", "--no-eval"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(tmp_path / "verifier")
    record = json.loads((tmp_path / "verifier" / "training.json").read_text())
    assert {"trained.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"} <= set(record["files"])
    check_weights(tmp_path / "verifier", what="verifier", remedy="")
    with open(tmp_path / "verifier" / "tokenizer.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(RuntimeError, match="tokenizer.json is corrupted"):
        check_weights(tmp_path / "verifier", what="verifier", remedy="")

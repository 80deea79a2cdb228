"""``eval verify``: metrics over three verdicts, and the command on a small SciFact-format file."""

from __future__ import annotations

import json

from rag.evaluation.claim_sets import clean_claim, load_scifact
from rag.evaluation.verify import verdict_metrics
from tests.conftest import FIXTURES
from ui.cli import main

CLAIM_DATA = FIXTURES / "claim_data"

S, C, N = "supported", "contradicted", "not enough information"


def test_verdict_metrics_by_hand():
    m = verdict_metrics([S, S, S, S, C, C, N], [S, S, S, C, S, C, S])
    assert m["per_class"][S] == {"precision": 0.6, "recall": 0.75, "f1": 0.6667, "n": 4}
    assert m["per_class"][C] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "n": 2}
    assert m["per_class"][N]["f1"] == 0.0
    assert m["macro_f1"] == round((0.6667 + 0.5 + 0.0) / 3, 4)
    assert m["refute_called_supported"] == 0.5 and m["support_kept"] == 0.75
    assert m["confusion"][C] == {S: 1, C: 1, N: 0}


def test_clean_claim_removes_citation_markers_of_real_claims():
    claims, corpus = CLAIM_DATA / "citation_integrity" / "claims_dev.jsonl", CLAIM_DATA / "citation_integrity" / \
        "corpus.jsonl"
    items = load_scifact(claims, corpus)
    assert items[0].claim == ("It has been proposed that COVID-19 leads to deterioration of hepatic function, leading "
                              "to AD and ACLF in cirrhotic patients.")
    assert clean_claim("ranging from 9% to 42.3% (Table <|multi_cit|>].") == "ranging from 9% to 42.3%."


def test_eval_verify_command_side_by_side(tmp_path, capsys):
    folder = CLAIM_DATA / "claim_verification" / "scifact"
    out = tmp_path / "verify.json"
    code = main(["eval", "verify", "--claims", str(folder / "claims_dev.jsonl"), "--corpus", str(folder / "corpus.jsonl"),
                 "--scorers", "cosine,cosine+rules,verifier+rules", "--pubmedqa",
                 str(FIXTURES / "pubmedqa_pqal_30.json"), "--pubmedqa-checks", "--n", "4", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "## claims_dev.jsonl (file, 4 pairs)" in printed and "| cosine+rules |" in printed
    assert "AUC own vs random" in printed
    results = json.loads(out.read_text())["results"]["datasets"]["claims_dev.jsonl"]
    assert set(results["scorers"]) == {"cosine", "cosine+rules", "verifier+rules"} and results["n"] == 4
    # Similarity alone never says "contradicted".
    assert sum(row[C] for row in results["scorers"]["cosine"]["confusion"].values()) == 0
    for metrics in results["scorers"].values():
        assert sum(sum(row.values()) for row in metrics["confusion"].values()) == 4
        assert metrics["ms_per_pair"] > 0 and metrics["s_per_20_claim_text"] > 0
    calibration = json.loads(out.read_text())["results"]["pubmedqa_calibration"]["verifier+rules"]
    assert sum(calibration["verdicts"]["own"].values()) == calibration["claims"]
    # A conclusion is read as supported by its own abstract far more often than by a random other one.
    assert calibration["auc"] >= 0.8, calibration
    own, other = calibration["verdicts"]["own"], calibration["verdicts"]["random"]
    assert own.get("supported", 0) > other.get("supported", 0) and other.get("supported", 0) <= 1, calibration


def test_eval_verify_every_dataset_with_thresholds_from_the_calibration_claims(tmp_path, capsys):
    out = tmp_path / "verify.json"
    code = main(["eval", "verify", "--data", str(CLAIM_DATA), "--scorers", "cosine+rules,verifier+rules",
                 "--tune", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "## citation-integrity (dev, 7 pairs)" in printed and "| CONTRADICT | 1 |" in printed
    results = json.loads(out.read_text())["results"]
    assert list(results["datasets"]) == ["scifact", "healthver", "check-covid", "citation-integrity"]
    assert results["datasets"]["check-covid"]["n"] == 3 and results["datasets"]["healthver"]["n"] == 8
    assert set(results["tuned"]["verifier+rules"]) == {"candidates", "min_similarity", "contradicted",
                                                      "supported_probability"}
    kinds = results["datasets"]["citation-integrity"]["scorers"]["verifier+rules"]["refute_kinds"]
    assert set(kinds) == {"CONTRADICT", "NOT_SUBSTANTIATE", "NO_RATIONALE"} and kinds["CONTRADICT"]["n"] == 1
    assert main(["eval", "verify", "--claims", str(tmp_path / "absent.jsonl"), "--corpus", str(out)]) == 1
    assert "absent.jsonl: no such file" in capsys.readouterr().err

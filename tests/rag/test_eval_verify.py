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


def _scifact(tmp_path):
    corpus = [{"doc_id": 1, "title": "", "abstract": [
        "The annual rate of severe exacerbations was lower with budesonide-formoterol than with terbutaline.",
        "Budesonide-formoterol was inferior to budesonide maintenance therapy for symptom control."]},
        {"doc_id": 2, "title": "", "abstract": ["Metformin inhibits mitochondrial complex I in cancer cells."]}]
    claims = [
        {"id": 0, "claim": "Exacerbations were fewer with budesonide-formoterol than terbutaline [<|cit|>].",
         "evidence": {"1": [{"sentences": [0], "label": "SUPPORT"}]}, "cited_doc_ids": [1]},
        {"id": 1, "claim": "Budesonide-formoterol was noninferior to budesonide maintenance (<|multi_cit|>).",
         "evidence": {"1": [{"sentences": [1], "label": "REFUTE"}]}, "cited_doc_ids": [1]},
        {"id": 2, "claim": "Metformin lowers blood pressure in asthma.", "evidence": {}, "cited_doc_ids": [2]},
    ]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus))
    (tmp_path / "claims.jsonl").write_text("\n".join(json.dumps(c) for c in claims))
    return tmp_path / "claims.jsonl", tmp_path / "corpus.jsonl"


def test_load_scifact_cleans_markers(tmp_path):
    items = load_scifact(*_scifact(tmp_path))
    assert [i.label for i in items] == [S, C, N]
    assert items[1].claim == "Budesonide-formoterol was noninferior to budesonide maintenance."
    assert items[1].evidence == [1] and items[2].evidence == []
    assert clean_claim("ranging from 9% to 42.3% (Table <|multi_cit|>].") == "ranging from 9% to 42.3%."


def test_eval_verify_command_side_by_side(tmp_path, capsys):
    claims, corpus = _scifact(tmp_path)
    out = tmp_path / "verify.json"
    code = main(["eval", "verify", "--claims", str(claims), "--corpus", str(corpus), "--scorers",
                 "cosine,cosine+rules,verifier+rules", "--pubmedqa", str(FIXTURES / "pubmedqa_pqal_30.json"),
                 "--pubmedqa-checks", "--n", "4", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| cosine+rules |" in printed and "AUC own vs random" in printed
    results = json.loads(out.read_text())["results"]["datasets"]["claims.jsonl"]
    assert set(results["scorers"]) == {"cosine", "cosine+rules", "verifier+rules"}
    # Similarity alone never says "contradicted"; the rules and the verifier do, on the noninferior claim.
    assert results["scorers"]["cosine"]["confusion"][C][C] == 0
    assert results["scorers"]["verifier+rules"]["confusion"][C][C] == 1
    assert results["scorers"]["verifier+rules"]["confusion"][S][S] == 1
    calibration = json.loads(out.read_text())["results"]["pubmedqa_calibration"]["verifier+rules"]
    assert 0 <= calibration["auc"] <= 1 and sum(calibration["verdicts"]["own"].values()) == calibration["claims"]


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

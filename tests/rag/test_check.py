"""The citation checker: library call and CLI, offline and with permitted network access."""

from __future__ import annotations

import json

from ingest.build import FileSource, ingest
from rag.check import parse_claims
from tests.conftest import XML
from tests.eutils_server import EUtilsServer
from tests.test_cli import run
from ui.cli import main

CLAIM = "As-needed budesonide-formoterol was noninferior to budesonide maintenance"


def test_parse_claims_forms():
    text = (f"{CLAIM} [PMID:29768149]. Mitochondria move during PCD (PMID 21645374; PMID: 18222909).\n"
            "No citation here.")
    assert parse_claims(text) == [(CLAIM + ".", ["29768149"]),
                                  ("Mitochondria move during PCD (;).", ["21645374", "18222909"])]


def test_check_cli_offline_json(small_index_dir, tmp_path):
    manuscript = tmp_path / "manuscript.txt"
    manuscript.write_text(f"{CLAIM} [PMID:29768149] [PMID:21645374]. Unrelated claim PMID 99999999.")
    done = run("check", "--file", str(manuscript), "--index", "small", "--json",
               "--paths.index_dir", str(small_index_dir))
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)
    by_pmid = {r["pmid"]: r for r in first["results"]}
    nejm = by_pmid["29768149"]
    # Similar in topic (cosine 0.7), but the abstract says "inferior": the checker now says so.
    assert nejm["verdict"] == "contradicted" and nejm["score"] > 0.6 and nejm["rule"] == "direction"
    assert nejm["reason"] == "direction disagrees: 'inferior' in the abstract, 'noninferior' in the claim"
    assert "inferior to budesonide maintenance" in nejm["best_sentence"] and nejm["evidence"][0] == nejm["best_sentence"]
    assert by_pmid["21645374"]["verdict"] == "not enough information"
    assert second["results"] == [{"pmid": "99999999", "indexed": False, "fetched": False, "title": "",
                                  "score": None, "verdict": "not indexed", "probability": None, "reason": "",
                                  "rule": "", "best_sentence": "", "evidence": [], "url": ""}]


def test_check_cli_text_names_verdict_reason_and_sentence(small_index_dir, capsys):
    code = main(["check", "--claim", "Exacerbation rates were lower with as-needed budesonide-formoterol than with "
                 "terbutaline", "--pmid", "29768149", "--index", "small", "--paths.index_dir", str(small_index_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "✓ PMID 29768149 (indexed): supported (p=" in out
    assert "why: " in out and "deciding sentence: " in out and "terbutaline" in out


def test_check_cli_corrupted_verifier_names_the_fallback(small_index_dir, tmp_path, capsys):
    broken = tmp_path / "verifier"
    broken.mkdir()
    (broken / "trained.safetensors").write_bytes(b"\0" * 100)
    common = ["check", "--claim", CLAIM, "--pmid", "29768149", "--index", "small", "--paths.index_dir",
              str(small_index_dir), "--verify.model", str(broken)]
    assert main(common) == 1
    assert "verify.scorer cosine" in capsys.readouterr().err
    assert main([*common, "--verify.scorer", "cosine", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["results"][0]["verdict"] == "contradicted"


def test_check_fetches_unindexed_pmids_only_when_allowed(settings, embedder, tmp_path):
    ingest([FileSource(XML / "pubmed2.xml")], "tiny", settings, embedder=embedder)
    common = ["--index", "tiny", "--paths.index_dir", str(settings.paths.index_dir), "--json"]
    claim = ["--claim", "Kidney function in children with a solitary functioning kidney", "--pmid", "41576520"]
    with EUtilsServer() as server:
        offline = run("check", *claim, *common, "--ncbi.base_url", server.url)
        assert json.loads(offline.stdout)[0]["results"][0]["verdict"] == "not indexed"
        assert server.requests == []  # nothing left the machine
        online = run("check", *claim, *common, "--ncbi.base_url", server.url, "--allow_network", "true")
        result = json.loads(online.stdout)[0]["results"][0]
        assert result["fetched"] and not result["indexed"] and result["score"] is not None
        assert [p["id"] for e, p in server.requests] == ["41576520"]


def test_check_cli_says_when_the_verifier_falls_back_to_pytorch(small_index_dir, monkeypatch, capsys):
    import rag.onnx_cross_encoder
    from ingest.onnx_embedder import OnnxUnavailable
    from rag.verify import scoring_model

    def failed_export(*args, **kwargs):
        raise OnnxUnavailable("exporting the verifier to ONNX failed (RuntimeError: test)")

    monkeypatch.setattr(rag.onnx_cross_encoder, "load_onnx", failed_export)
    scoring_model.cache_clear()
    try:
        code = main(["check", "--claim", CLAIM, "--pmid", "29768149", "--index", "small", "--paths.index_dir",
                     str(small_index_dir), "--json"])
        out = capsys.readouterr()
        assert code == 0 and json.loads(out.out)[0]["results"][0]["verdict"] == "contradicted"
        assert out.err.strip() == ("warning: the verifier runs on PyTorch, slower: exporting the verifier to ONNX "
                                   "failed (RuntimeError: test)")
    finally:
        scoring_model.cache_clear()

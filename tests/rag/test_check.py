"""The citation checker: library call and CLI, offline and with permitted network access."""

from __future__ import annotations

import json

from ingest.build import FileSource, ingest
from rag.check import parse_claims
from tests.conftest import XML
from tests.eutils_server import EUtilsServer
from tests.test_cli import run

CLAIM = "As-needed budesonide-formoterol was noninferior to budesonide maintenance for severe exacerbations"


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
    assert by_pmid["29768149"]["verdict"] == "supported" and by_pmid["29768149"]["score"] > 0.6
    assert "annual rate of severe exacerbations" in by_pmid["29768149"]["best_sentence"]
    assert by_pmid["21645374"]["verdict"] == "unsupported"
    assert second["results"] == [{"pmid": "99999999", "indexed": False, "fetched": False, "title": "",
                                  "score": None, "verdict": "not indexed", "best_sentence": "", "url": ""}]


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

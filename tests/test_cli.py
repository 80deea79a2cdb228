"""The pubmed-rag command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, XML, pubmedqa_questions


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pubmed_rag.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_ask_json_and_unknown_index(small_index_dir, generator_cache):
    q = pubmedqa_questions()[0]
    common = ["--paths.index_dir", str(small_index_dir), "--paths.cache_dir", str(generator_cache)]
    done = run("ask", q["question"], "--index", "small", "--json", "--k", "3", "--max-new-tokens", "32", *common)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert q["pmid"] in [e["pmid"] for e in data["evidence"]] and len(data["evidence"]) == 3
    assert {c["pmid"] for s in data["sentences"] for c in s["citations"]} <= {e["pmid"] for e in data["evidence"]}

    text = run("ask", q["question"], "--index", "small", "--k", "2", "--max-new-tokens", "24", *common)
    assert text.returncode == 0 and "References:" in text.stdout or "Closest evidence:" in text.stdout
    assert f"PMID {q['pmid']}" in text.stdout and "https://pubmed.ncbi.nlm.nih.gov/" in text.stdout

    bad = run("ask", "anything", "--index", "nope", *common)
    assert bad.returncode == 1 and "unknown index 'nope'" in bad.stderr
    empty = run("ask", "  ", "--index", "small", *common)
    assert empty.returncode == 1 and "the question is empty" in empty.stderr


def test_ingest_and_index_commands(tmp_path):
    idx = ["--paths.index_dir", str(tmp_path)]
    done = run("ingest", "--index", "cli", str(XML / "pubmed2.xml"), str(tmp_path / "missing.xml"), *idx)
    assert done.returncode == 0, done.stderr
    assert "index 'cli' v0001: 2 added" in done.stdout and "missing.xml: no such file" in done.stderr
    listed = run("index", "list", *idx)
    assert listed.stdout.startswith("cli\t2 records")
    info = json.loads(run("index", "info", "cli", *idx).stdout)
    assert info["counts"]["records"] == 2 and info["embedding"]["model"] == "all-MiniLM-L6-v2"
    verified = run("index", "verify", "cli", *idx)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True
    unknown = run("index", "info", "nope", *idx)
    assert unknown.returncode == 1 and "unknown index 'nope'" in unknown.stderr


def test_settings_from_env_and_flags_and_unknown_keys_rejected():
    from pubmed_rag.settings import Settings

    env = {"PUBMED_RAG_EMBEDDING__BATCH_SIZE": "7", "NCBI_EMAIL": "a@b.org"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s = Settings.load({"retrieval.k": "9"})
        assert (s.embedding.batch_size, s.ncbi.email, s.retrieval.k) == (7, "a@b.org", 9)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings.load({"retrieval.nonsense": 1})
    bad = run("index", "list", "--retrieval.k", "0")
    assert bad.returncode != 0 and "retrieval.k" in bad.stderr


def test_eval_qa_on_real_pubmedqa_items(small_index_dir, generator_cache, tmp_path):
    from tests.conftest import FIXTURES

    common = ["--paths.index_dir", str(small_index_dir), "--paths.cache_dir", str(generator_cache)]
    out = tmp_path / "qa.json"
    done = run("eval", "qa", "--dataset", "pubmedqa", "--pubmedqa", str(FIXTURES / "pubmedqa_pqal_30.json"),
               "--index", "small", "--n", "3", "--qa-settings", "no-retrieval", "--out", str(out), *common)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())["results"]["no-retrieval"]
    items = list(json.loads((FIXTURES / "pubmedqa_pqal_30.json").read_text()))
    assert [r["id"] for r in result["per_question"]] == [items[0], items[10], items[20]]  # evenly spaced
    assert result["n"] == 3 and sum(result["argmax"]["predicted"].values()) == 3
    assert "per_question" not in json.loads(done.stdout)["no-retrieval"]  # printed summary only

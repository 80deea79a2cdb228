"""Live-query ingestion against a real HTTP server on 127.0.0.1 replaying recorded E-utilities replies."""

from __future__ import annotations

import pytest

from ingest.build import ingest
from ingest.entrez import EntrezError, QuerySource, fetch_query, ingest_query, staging_folder
from ingest.index import IndexLayout, LoadedIndex
from pubmed_rag.settings import NCBISettings
from tests.eutils_server import EUtilsServer


def ncbi(url: str, **kw) -> NCBISettings:
    return NCBISettings(base_url=url, email="librarian@example.org", batch_size=10, backoff=0.01, timeout=1.0, **kw)


def test_fetch_with_faults_then_resume(tmp_path):
    folder = tmp_path / "fetch"
    with EUtilsServer() as server:
        server.faults = {"esearch": ["429"], "efetch-0": ["500"], "efetch-10": ["timeout"], "efetch-20": ["truncated"]}
        result = fetch_query("obesity AND 2026[dp]", folder, ncbi(server.url))
        assert result.count == 30 and len(result.pmids) == 30
        assert result.retries == 4  # one per injected fault
        assert not result.problems
        assert server.served["esearch"] == 1
        # Each faulty batch (500, timeout, truncated) was requested twice; the truncated body was sent and refetched.
        assert sum(1 for e, _ in server.requests if e == "efetch.fcgi") == 6
        assert server.served["efetch-0"] == 1 and server.served["efetch-20"] == 2
        sent = [p for e, p in server.requests if e == "efetch.fcgi"]
        assert all(p["email"] == "librarian@example.org" and p["WebEnv"] == "MCID_6927d6e7fee3e90f880ec190"
                   for p in sent)
        assert sorted(int(p["retstart"]) for p in sent if "retstart" in p)[:1] == [0]


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path, settings, embedder):
    folder = tmp_path / "fetch"
    with EUtilsServer() as server:
        server.faults = {"efetch-20": ["500"] * 10}  # the third batch keeps failing: the run dies half-way
        with pytest.raises(EntrezError, match="Run the same command again to resume"):
            fetch_query("q", folder, ncbi(server.url, max_retries=1))
        assert sorted(p.name for p in folder.glob("batch-*.xml")) == ["batch-00000000.xml", "batch-00000010.xml"]
    with EUtilsServer() as server:  # started again, healthy
        result = fetch_query("q", folder, ncbi(server.url))
        assert server.served == {"efetch-20": 1}  # only the missing batch; no second esearch
        summary = ingest([QuerySource(result)], "live", settings, embedder=embedder)
    assert summary.added == 30 and summary.replaced == 0
    index = LoadedIndex(settings.paths.index_dir, "live")
    assert index.manifest["counts"]["records"] == 30
    assert index.manifest["sources"][0] == {**index.manifest["sources"][0], "kind": "query", "name": "q"}
    assert index.store.get("41576520").journal == "Pediatric neurology"


def test_bad_request_is_not_retried(tmp_path):
    with EUtilsServer() as server:
        with pytest.raises(EntrezError, match="HTTP 404"):
            fetch_query("q", tmp_path, ncbi(server.url.replace("/eutils/", "/nope/")))
        assert len(server.requests) == 1


def test_max_records(tmp_path):
    with EUtilsServer() as server:
        result = fetch_query("q", tmp_path, ncbi(server.url), max_records=15)
        assert len(result.pmids) == 15
        assert [p["retmax"] for e, p in server.requests if e == "efetch.fcgi"] == ["10", "5"]


def test_ingest_query_resumes_after_a_failure_and_removes_its_staging_folder(settings, embedder):
    query = "obesity AND 2026[dp]"
    root = IndexLayout(settings.paths.index_dir, "live").root
    folder = staging_folder(root / "fetch", query, None, "2026", 25)
    with EUtilsServer() as server:
        server.faults = {"efetch-20": ["500"] * 10}
        failing = settings.model_copy(update={"ncbi": ncbi(server.url, max_retries=1)})
        with pytest.raises(EntrezError):
            ingest_query(query, "live", failing, maxdate="2026", max_records=25, embedder=embedder)
    # A failed run keeps what it fetched, so the same query resumes.
    assert sorted(p.name for p in folder.glob("batch-*.xml")) == ["batch-00000000.xml", "batch-00000010.xml"]
    with EUtilsServer() as server:
        seen = []
        result, summary = ingest_query(query, "live", settings.model_copy(update={"ncbi": ncbi(server.url)}),
                                       maxdate="2026", max_records=25, on_fetched=seen.append, embedder=embedder)
        assert server.served == {"efetch-20": 1}
    assert seen == [result] and result.folder == folder and len(result.pmids) == 25
    assert (summary.added, summary.version) == (25, "v0001")
    assert not folder.exists() and not (root / "fetch").exists()
    index = LoadedIndex(settings.paths.index_dir, "live")
    assert index.manifest["counts"]["records"] == 25 and index.manifest["sources"][0]["name"] == query

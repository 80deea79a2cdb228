"""Index build, incremental update, deletions, verification, bad input and kill-and-resume."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from ingest.build import FileSource, RecordsSource, ingest
from ingest.index import IndexLayout, LoadedIndex, UnknownIndexError, list_indexes, verify_index
from ingest.manifest import STORE_FILE
from ingest.pubmed_xml import parse_xml_file
from pubmed_rag.records import Deletion, IngestError, Record
from pubmed_rag.settings import Settings
from tests.conftest import ROOT, SAMPLE_ABSTRACTS, XML


def test_build_update_delete_verify(settings, embedder):
    first = ingest([FileSource(XML / "pubmed26n1334.xml.gz"), FileSource(XML / "pubmed4.xml")], "t", settings,
                   embedder=embedder)
    assert (first.added, first.title_only, first.version) == (31, 3, "v0001")
    index = LoadedIndex(settings.paths.index_dir, "t")
    m = index.manifest
    assert m["counts"]["records"] == 31 and m["embedding"] == {
        "model": "all-MiniLM-L6-v2", "dimension": 384, "max_tokens": 256, "chunk_overlap": 32}
    assert m["counts"]["chunks"] == len(index.vectors) > 28
    assert m["counts"]["retraction_notices"] == 1
    assert index.store.chunk_ids("41576520") and not index.store.chunk_ids(
        next(r.pmid for r in index.store.iter_records() if r.title_only))  # title-only: stored, not embedded

    # Re-ingesting the same file embeds nothing and publishes nothing.
    again = ingest([FileSource(XML / "pubmed4.xml")], "t", settings, embedder=embedder)
    assert (again.unchanged, again.chunks_embedded, again.added) == (1, 0, 0)
    assert IndexLayout(settings.paths.index_dir, "t").current().name == "v0001"

    # The 2026 daily update: 30 new records and a DeleteCitation for 6 PMIDs.
    update = ingest([FileSource(XML / "pubmed26n1335.xml.gz")], "t", settings, embedder=embedder)
    assert update.added == 30 and update.version == "v0002"
    index = LoadedIndex(settings.paths.index_dir, "t")
    assert index.manifest["counts"]["records"] == 61 and index.manifest["counts"]["deleted"] == 6
    assert index.store.get("26228458").title.startswith("Obesity risk in rural")
    assert [s["name"].rsplit("/", 1)[-1] for s in index.manifest["sources"]] == [
        "pubmed26n1334.xml.gz", "pubmed4.xml", "pubmed26n1335.xml.gz"]  # the no-op run published nothing

    # A DeleteCitation removes a stored record, its chunks and its vectors.
    chunks = index.store.chunk_ids("27797938")
    assert chunks
    gone = ingest([RecordsSource("delete", [Deletion(("27797938",), "pubmed-deletes")])], "t", settings,
                  embedder=embedder)
    assert gone.deleted == 1
    index = LoadedIndex(settings.paths.index_dir, "t")
    assert index.store.get("27797938") is None and not set(chunks) & set(index.vectors.ids().tolist())
    assert verify_index(settings.paths.index_dir, "t").ok
    assert list_indexes(settings.paths.index_dir) == ["t"]
    # Only the last two versions are kept.
    assert sorted(p.name for p in (settings.paths.index_dir / "t" / "versions").iterdir()) == ["v0002", "v0003"]


def test_newer_version_replaces_older(settings, embedder):
    rec = next(i for i in parse_xml_file(XML / "pubmed4.xml") if isinstance(i, Record))
    ingest([RecordsSource("v1", [rec])], "v", settings, embedder=embedder)
    newer = Record.from_dict({**rec.to_dict(), "version": 2, "title": rec.title + " (corrected)"})
    older = Record.from_dict({**rec.to_dict(), "version": 1, "title": "stale"})
    summary = ingest([RecordsSource("v2", [newer, older])], "v", settings, embedder=embedder)
    assert (summary.replaced, summary.unchanged) == (1, 1)
    assert LoadedIndex(settings.paths.index_dir, "v").store.get("27797938").title.endswith("(corrected)")


def truncated_baseline(tmp_path):
    """The real 2026 baseline subset cut after 40% of its bytes, as a partial download leaves it (8 whole records)."""
    cut = tmp_path / "pubmed26n1334.xml.gz"
    data = (XML / "pubmed26n1334.xml.gz").read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 5])
    return cut


def test_source_error_mid_file_fails_the_build_and_publishes_nothing(settings, embedder, tmp_path):
    ingest([FileSource(XML / "pubmed2.xml")], "d", settings, embedder=embedder)
    layout = IndexLayout(settings.paths.index_dir, "d")
    manifest = (layout.current() / "manifest.json").read_text()
    cut = truncated_baseline(tmp_path)
    with pytest.raises(IngestError) as failed:
        ingest([FileSource(XML / "pubmed4.xml"), FileSource(cut)], "d", settings, embedder=embedder)
    assert str(failed.value).startswith(f"{cut}: the gzip stream is truncated or corrupt")
    assert "after 8 complete records" in str(failed.value)
    assert "Nothing was published: index 'd' still serves v0001" in str(failed.value)
    # The good file given with it was not published either; no staging folder is left.
    assert (layout.root / "CURRENT").read_text() == "v0001"
    assert sorted(p.name for p in layout.versions.iterdir()) == ["v0001"]
    assert (layout.current() / "manifest.json").read_text() == manifest
    index = LoadedIndex(settings.paths.index_dir, "d")
    assert index.store.get("27797938") is None and index.manifest["counts"]["records"] == 2
    with sqlite3.connect(layout.root / STORE_FILE) as conn:  # what the good file wrote was taken back
        assert conn.execute("SELECT COUNT(*) FROM records WHERE valid_from > 1").fetchone()[0] == 0

    # Malformed XML mid-file (a real record cut open) fails the same way and names the file and line.
    raw = gzip.open(XML / "pubmed26n1334.xml.gz").read()
    at = raw.index(b"<PubmedArticle>", 20000)
    broken = tmp_path / "broken.xml"
    broken.write_bytes(raw[:at] + b"<PubmedArticle><MedlineCitation><PMID>1</PMID></Broken>" + raw[at:])
    with pytest.raises(IngestError, match=rf"^{broken}: malformed XML at line \d+ .* Nothing was published"):
        ingest([FileSource(broken)], "d", settings, embedder=embedder)
    assert (layout.root / "CURRENT").read_text() == "v0001"

    # A new index is not created from a failed build.
    with pytest.raises(IngestError, match="index 'fresh' was not created"):
        ingest([FileSource(cut)], "fresh", settings, embedder=embedder)
    assert list_indexes(settings.paths.index_dir) == ["d"]


def test_allow_partial_from_the_environment_publishes_what_was_read(settings, embedder, tmp_path, monkeypatch):
    ingest([FileSource(XML / "pubmed2.xml")], "p", settings, embedder=embedder)
    monkeypatch.setenv("PUBMED_RAG_INGEST__ALLOW_PARTIAL", "true")
    partial = Settings.load({"paths.index_dir": str(settings.paths.index_dir)})
    assert partial.ingest.allow_partial is True
    summary = ingest([FileSource(truncated_baseline(tmp_path))], "p", partial, embedder=embedder)
    assert (summary.added, summary.version) == (8, "v0002")
    assert "truncated or corrupt" in summary.problems[0] and "were kept" in summary.problems[0]
    assert LoadedIndex(settings.paths.index_dir, "p").manifest["counts"]["records"] == 10


def test_bad_inputs_reported_and_others_ingested_when_partial_builds_are_allowed(settings, embedder, tmp_path):
    settings.ingest.allow_partial = True
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    truncated = tmp_path / "pubmed26n1335.xml.gz"
    data = (XML / "pubmed26n1335.xml.gz").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    summary = ingest([FileSource(empty), FileSource(truncated), FileSource(XML / "pubmed2.xml"),
                      FileSource(tmp_path / "missing.xml")], "b", settings, embedder=embedder)
    text = "\n".join(summary.problems)
    assert "empty.xml: the file is empty" in text
    assert "pubmed26n1335.xml.gz: the gzip stream is truncated" in text or "malformed XML" in text
    assert "missing.xml" in text
    index = LoadedIndex(settings.paths.index_dir, "b")
    assert index.store.get("11748933") is not None  # the good file went in
    assert summary.added > 2  # plus what the truncated file yielded before it broke
    assert verify_index(settings.paths.index_dir, "b").ok


def test_unknown_index_and_model_mismatch(settings, embedder):
    with pytest.raises(UnknownIndexError, match="unknown index 'nope'"):
        LoadedIndex(settings.paths.index_dir, "nope")
    ingest([FileSource(XML / "pubmed2.xml")], "m", settings, embedder=embedder)
    settings.embedding.model = "pritamdeka/S-PubMedBert-MS-MARCO"
    with pytest.raises(IngestError, match="built with embedding model 'all-MiniLM-L6-v2'"):
        ingest([FileSource(XML / "pubmed4.xml")], "m", settings, embedder=embedder)


def test_verify_detects_tampering(settings, embedder):
    ingest([FileSource(XML / "pubmed2.xml")], "x", settings, embedder=embedder)
    assert verify_index(settings.paths.index_dir, "x").ok
    store = IndexLayout(settings.paths.index_dir, "x").root / STORE_FILE
    with sqlite3.connect(store) as conn:  # one word of one stored chunk changed behind pubmed-rag's back
        conn.execute("UPDATE chunks SET text = replace(text, 'the', 'a') WHERE chunk_id = 1")
    report = verify_index(settings.paths.index_dir, "x")
    assert not report.ok and report.problems[0].startswith("store.sqlite: the rows hash to")


def test_kill_during_update_keeps_old_index(settings, embedder, tmp_path):
    ingest([FileSource(XML / "pubmed2.xml")], "k", settings, embedder=embedder)
    before = json.loads((IndexLayout(settings.paths.index_dir, "k").current() / "manifest.json").read_text())
    big = tmp_path / "big.jsonl.gz"
    with gzip.open(SAMPLE_ABSTRACTS) as src:
        big.write_bytes(gzip.compress(src.read()))
    cmd = [sys.executable, "-m", "ui.cli", "ingest", "--index", "k", str(big),
           "--paths.index_dir", str(settings.paths.index_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    versions = settings.paths.index_dir / "k" / "versions"
    # The marker: the staging folder exists and the parse bar has counted records, so the new version is being
    # written (its 180 records take seconds more to embed and publish) when the process is killed.
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(iter(lambda: proc.stdout.read(1), b"")), daemon=True)
    reader.start()
    deadline = time.time() + 180
    while time.time() < deadline and not (any(versions.glob(".tmp-*"))
                                          and re.search(rb"parse: [1-9]\d*rec", b"".join(output))):
        time.sleep(0.01)
    assert proc.poll() is None, b"".join(output)[-2000:]  # still building
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The old version is still served, intact.
    index = LoadedIndex(settings.paths.index_dir, "k")
    assert index.manifest == before and verify_index(settings.paths.index_dir, "k").ok
    # Started again on a small input: the stale staging folder is cleared and the update completes.
    summary = ingest([FileSource(XML / "pubmed4.xml")], "k", settings, embedder=embedder)
    assert summary.added == 1 and summary.version == "v0002"
    assert not list(versions.glob(".tmp-*"))
    assert LoadedIndex(settings.paths.index_dir, "k").manifest["counts"]["records"] == 3
    # Nothing of the killed run is left in the shared store: only the two published versions' rows.
    with sqlite3.connect(settings.paths.index_dir / "k" / STORE_FILE) as conn:
        assert conn.execute("SELECT valid_from, COUNT(*) FROM records GROUP BY valid_from").fetchall() == [
            (1, 2), (2, 1)]

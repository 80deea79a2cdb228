"""The record store: its chunk -> PMID map, and versions (one shared store, readers on a consistent version,
updates that write only what changed), on real records."""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3

import pytest

from ingest.build import FileSource, RecordsSource, ingest
from ingest.index import IndexLayout, LoadedIndex, verify_index
from ingest.manifest import STORE_FILE
from ingest.pubmed_xml import parse_xml_file
from ingest.sharded_store import ChunkPmids
from ingest.store import RecordStore
from pubmed_rag.records import Deletion, Record
from tests.conftest import XML, sample_records


def test_chunk_pmid_map_matches_sql(small_index_dir):
    index = LoadedIndex(small_index_dir, "small")
    ids = index.store.all_chunk_ids()
    mapped = index.chunk_pmids(ids)
    assert mapped == index.store.chunk_pmids(ids) and len(mapped) == len(ids) == index.store.counts()["chunks"]
    nejm = index.store.chunk_ids("29768149")
    assert nejm and set(index.chunk_pmids(nejm).values()) == {"29768149"}
    assert index.chunk_pmids([10**9]) == {}  # an unknown chunk id maps to nothing
    pmids = index.store.all_pmids()
    assert "29768149" in pmids and len(pmids) == index.store.counts()["records"] == 211
    assert set(mapped.values()) <= set(pmids) and len(set(mapped.values())) == 208  # 3 records have no text to chunk


def test_chunk_pmid_map_falls_back_to_sql_for_non_numeric_ids(tmp_path):
    record = dataclasses.replace(sample_records(1)[0], pmid="PMC6460000")
    store = RecordStore(tmp_path / "store.sqlite")
    store.upsert(record, "hash")
    chunk_id = store.add_chunk(record.pmid, record.abstract, 0, len(record.abstract))
    store.commit()
    mapping = ChunkPmids.read(store)
    assert mapping._ids is None and mapping([chunk_id]) == {chunk_id: "PMC6460000"}


def test_update_writes_only_the_change_and_readers_keep_their_version(settings, embedder):
    ingest([FileSource(XML / "pubmed26n1334.xml.gz")], "s", settings, embedder=embedder)
    layout = IndexLayout(settings.paths.index_dir, "s")
    shared = layout.root / STORE_FILE
    inode = os.stat(shared).st_ino
    old = LoadedIndex(settings.paths.index_dir, "s")
    gone = "41576520"
    text = old.store.chunks(old.store.chunk_ids(gone)).popitem()[1].text
    query = " OR ".join(re.findall(r"[a-z]{7,}", text.lower())[:3])
    before = (old.store.counts(), old.store.all_pmids(), old.store.all_chunk_ids(),
              sorted(old.store.bm25(query, 1000)[0].tolist()), old.store.get(gone))
    assert before[0]["records"] == 30 and set(old.store.chunk_ids(gone)) & set(before[3])

    # The real daily update file (30 new records; its DeleteCitation names none of these), a DeleteCitation of
    # one indexed record and a corrected version of another.
    rec = old.store.get(next(p for p in before[1] if p != gone))
    newer = Record.from_dict({**rec.to_dict(), "version": rec.version + 1, "title": rec.title + " (corrected)"})
    summary = ingest([FileSource(XML / "pubmed26n1335.xml.gz"),
                      RecordsSource("fix", [newer, Deletion((gone,), "test")])], "s", settings, embedder=embedder)
    assert (summary.added, summary.replaced, summary.version) == (30, 1, "v0002")
    new = LoadedIndex(settings.paths.index_dir, "s")
    assert new.store.get(gone) is None and new.store.get(rec.pmid).title.endswith("(corrected)")
    assert not set(old.store.chunk_ids(gone)) & set(new.store.bm25(query, 10)[0].tolist())

    # One store for every version, written in place: not copied, and no version folder holds one.
    assert os.stat(shared).st_ino == inode and not list(layout.versions.glob("*/" + STORE_FILE))
    changed = new.manifest["store"]["changed"]
    assert (changed["records_added"], changed["records_closed"]) == (31, 2)  # 30 new + 1 corrected; 1 deleted + 1 replaced
    assert changed["chunks_added"] == summary.chunks_embedded

    # The reader opened on v0001 still sees v0001 exactly, through the same open store.
    after = (old.store.counts(), old.store.all_pmids(), old.store.all_chunk_ids(),
             sorted(old.store.bm25(query, 1000)[0].tolist()), old.store.get(gone))
    assert after == before and old.store.get(rec.pmid).title == rec.title
    assert new.store.counts()["records"] == 59 and verify_index(settings.paths.index_dir, "s").ok


def test_a_failed_publish_leaves_nothing_in_the_store(settings, embedder, monkeypatch):
    ingest([FileSource(XML / "pubmed2.xml")], "f", settings, embedder=embedder)
    layout = IndexLayout(settings.paths.index_dir, "f")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(IndexLayout, "publish", fail)
        with pytest.raises(OSError, match="disk full"):
            ingest([FileSource(XML / "pubmed4.xml")], "f", settings, embedder=embedder)
    with sqlite3.connect(layout.root / STORE_FILE) as conn:
        assert conn.execute("SELECT COUNT(*) FROM records WHERE valid_from > 1").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == 5  # pubmed2.xml's chunks only
    assert LoadedIndex(settings.paths.index_dir, "f").store.get("27797938") is None
    assert ingest([FileSource(XML / "pubmed4.xml")], "f", settings, embedder=embedder).version == "v0002"


def test_rows_no_kept_version_sees_are_purged(settings, embedder):
    rec = next(i for i in parse_xml_file(XML / "pubmed4.xml") if isinstance(i, Record))
    for n in range(1, 5):  # v0001..v0004, each a new version of the same record
        ingest([RecordsSource(f"v{n}", [Record.from_dict({**rec.to_dict(), "version": n, "title": f"t{n}"})])],
               "g", settings, embedder=embedder)
    layout = IndexLayout(settings.paths.index_dir, "g")
    assert sorted(p.name for p in layout.versions.iterdir()) == ["v0003", "v0004"]
    with sqlite3.connect(layout.root / STORE_FILE) as conn:
        # v0003's and v0004's copies remain (v0003's closed at 4); v0001's and v0002's are gone, FTS rows too.
        assert conn.execute("SELECT title, valid_from, valid_to FROM records ORDER BY valid_from").fetchall() == [
            ("t3", 3, 4), ("t4", 4, None)]
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        assert conn.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0] == chunks
    assert LoadedIndex(settings.paths.index_dir, "g").store.get(rec.pmid).title == "t4"


def test_vocabulary_counts_the_mesh_headings_and_chemicals_ingested(small_index_dir):
    index = LoadedIndex(small_index_dir, "small")
    counts = index.store.vocabulary()
    # The NEJM SYGMA 1 trial (PMID 29768149) brings its six chemicals and 23 headings; PubMedQA records their MeSH.
    assert counts[("chemical", "Budesonide")] == 1 and counts[("chemical", "Formoterol Fumarate")] == 1
    assert counts[("mesh", "Asthma")] >= 1 and counts[("mesh", "Humans")] > 100
    assert sum(1 for kind, _ in counts if kind == "chemical") >= 6

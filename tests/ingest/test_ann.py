"""Every vector index type on real records: build (by compaction of the small index), search against exact, delete,
update (a hard-linked new shard), filter, reopen memory-mapped, verify; old single-file indexes still open."""

from __future__ import annotations

import json
import os
import sqlite3

import faiss
import numpy as np
import pytest

from ingest.ann import resolve_spec
from ingest.ann.base import IndexSpec
from ingest.ann.sharded import SHARDS_DIR
from ingest.build import FileSource, RecordsSource, ingest
from ingest.compact import compact
from ingest.index import IndexLayout, LoadedIndex, open_index, verify_index
from ingest.manifest import STORE_FILE
from ingest.store import RECORD_COLUMNS
from pubmed_rag.checksums import sha256_file as sha256
from pubmed_rag.records import Deletion
from tests.conftest import XML, pubmedqa_questions

# Small parameters so every type really is that type at ~300 chunks (IVF with 4 lists; PQ 16 x 4 bits, FAISS's
# fast-scan form, or 16 x 8 bits). Keyed by a label; the type is the label's first word.
TYPES = {
    "flat": {},
    "ivfflat": {"index.nlist": 4, "index.nprobe": 2},
    "ivfpq": {"index.nlist": 4, "index.nprobe": 4, "index.pq_m": 16, "index.pq_bits": 4, "index.refine": 8},
    "ivfpq 8-bit": {"index.nlist": 4, "index.nprobe": 4, "index.pq_m": 16, "index.pq_bits": 8, "index.refine": 8},
    "hnsw": {"index.hnsw_m": 8, "index.ef_construction": 40, "index.ef_search": 32},
}
FACTORY = {"flat": "Flat", "ivfflat": "IVF4,Flat", "ivfpq": "IVF4,PQ16x4fs,RFlat", "ivfpq 8-bit": "IVF4,PQ16x8,RFlat",
           "hnsw": "HNSW8,Flat"}
BASE_CLASS = {"flat": "IndexFlatIP", "ivfflat": "IndexIVFFlat", "ivfpq": "IndexIVFPQFastScan",
              "ivfpq 8-bit": "IndexIVFPQ", "hnsw": "IndexHNSWFlat"}


def typed(small_settings, label: str):
    settings = small_settings.model_copy(deep=True)
    settings.index.type = label.split()[0]
    for key, value in TYPES[label].items():
        setattr(settings.index, key.split(".")[1], value)
    return settings


def exact_top(index: LoadedIndex, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
    ids = index.vectors.ids() if allowed is None else allowed
    scores = index.vectors.vectors(ids.tolist()) @ query
    return ids[np.argsort(-scores, kind="stable")[:k]].tolist()


@pytest.mark.parametrize("label", list(TYPES))
def test_index_type_lifecycle(small_settings, embedder, label):
    settings = typed(small_settings, label)
    index_type = settings.index.type
    before = LoadedIndex(settings.paths.index_dir, "small")
    flat_ids = np.sort(before.vectors.ids())
    summary = compact("small", settings)
    assert (summary.type, summary.shards_after, summary.vectors) == (index_type, 1, len(flat_ids))

    index = LoadedIndex(settings.paths.index_dir, "small")
    m = index.manifest["index"]
    assert m["type"] == index_type and m["spec"]["type"] == index_type
    assert m["factory"] == FACTORY[label]
    shard = index.vectors.shards[0].index
    assert type(shard).__name__ == ("IndexRefineFlat" if index_type == "ivfpq" else BASE_CLASS[label])
    if index_type == "ivfpq":
        assert type(faiss.downcast_index(shard.base_index)).__name__ == BASE_CLASS[label]
    assert np.array_equal(np.sort(index.vectors.ids()), flat_ids)
    # The stored vectors are the exact ones (IVF-PQ keeps them for re-ranking).
    some = flat_ids[:5].tolist()
    assert np.allclose(index.vectors.vectors(some), before.vectors.vectors(some), atol=1e-6)

    # Search: the real question's nearest chunks, against exact search.
    query = embedder.encode(["Do mitochondria play a role in remodelling lace plant leaves during programmed cell death?"])[0]
    scores, ids = index.vectors.search(query, 10)
    exact = exact_top(index, query, 10)
    assert len(set(ids.tolist()) & set(exact)) >= 8 and ids[0] == exact[0]
    assert np.all(np.diff(scores) <= 1e-6)

    # Filter: only the chunks of 3 records; k=10 asks for more than exist, so all of them come back.
    pmids = index.store.all_pmids()[:3]
    allowed = np.array(sorted(c for p in pmids for c in index.store.chunk_ids(p)), dtype=np.int64)
    _, ids = index.vectors.search(query, 10, allowed)
    assert sorted(ids[ids >= 0].tolist()) == allowed.tolist()
    # The same through the approximate path (no exact shortcut): still every allowed chunk.
    index.vectors.exact_below = 0
    _, ids = index.vectors.search(query, 10, allowed)
    assert sorted(ids[ids >= 0].tolist()) == allowed.tolist()

    # Delete (DeleteCitation) and update: the top hit's record goes, a new record comes in as a new shard.
    top_pmid = index.chunk_pmids([int(exact[0])])[int(exact[0])]
    removed = index.store.chunk_ids(top_pmid)
    ingest([RecordsSource("delete", [Deletion((top_pmid,), "pubmed-deletes")]),
            FileSource(XML / "pubmed4.xml")], "small", settings, embedder=embedder)
    index = LoadedIndex(settings.paths.index_dir, "small")
    assert index.manifest["index"]["type"] == index_type and len(index.manifest["index"]["shards"]) == 2
    assert index.manifest["index"]["deleted"] == len(removed)
    assert not set(removed) & set(index.vectors.ids().tolist())
    _, ids = index.vectors.search(query, 10)
    assert not set(removed) & set(ids.tolist()) and (ids >= 0).all()
    new = index.store.chunk_ids("27797938")
    _, ids = index.vectors.search(index.vectors.vectors(new[:1])[0], 1)
    assert ids.tolist() == new[:1]  # the new shard is searched
    assert verify_index(settings.paths.index_dir, "small").ok

    # Compaction drops the deleted vectors for good.
    again = compact("small", settings)
    assert (again.shards_after, again.dropped) == (1, len(removed))
    index = LoadedIndex(settings.paths.index_dir, "small")
    assert index.manifest["index"]["deleted"] == 0 and len(index.vectors) == index.manifest["counts"]["chunks"]
    assert verify_index(settings.paths.index_dir, "small").ok


def test_update_hard_links_and_leaves_previous_version_byte_identical(small_settings, embedder):
    layout = IndexLayout(small_settings.paths.index_dir, "small")
    compact("small", typed(small_settings, "ivfpq"))  # v0002: shard layout, IVF-PQ
    old = layout.current()
    store_inode = os.stat(layout.root / STORE_FILE).st_ino
    before = {str(p.relative_to(old)): sha256(p) for p in sorted(old.rglob("*")) if p.is_file()}
    ingest([FileSource(XML / "pubmed4.xml")], "small", small_settings, embedder=embedder)
    new = layout.current()
    assert new != old
    after = {str(p.relative_to(old)): sha256(p) for p in sorted(old.rglob("*")) if p.is_file()}
    assert after == before
    # The unchanged shard is the same inode (a hard link, no copy); the new one is new; the store is the index's one
    # shared store, written in place (tests/ingest/test_store.py checks what each version sees in it).
    shard = f"{SHARDS_DIR}/s0001.faiss"
    assert os.stat(new / shard).st_ino == os.stat(old / shard).st_ino and os.stat(old / shard).st_nlink == 2
    assert (new / SHARDS_DIR / "s0002.faiss").exists() and not (old / SHARDS_DIR / "s0002.faiss").exists()
    assert os.stat(layout.root / STORE_FILE).st_ino == store_inode and not (new / STORE_FILE).exists()
    assert verify_index(small_settings.paths.index_dir, "small").ok
    # Tampering with a linked shard is still caught by a full verify.
    with open(new / SHARDS_DIR / "s0002.ids.npy", "ab") as handle:
        handle.write(b"\0")
    report = verify_index(small_settings.paths.index_dir, "small")
    assert not report.ok and "shards/s0002.ids.npy: sha256" in report.problems[0]


# The record store as the previous release wrote it, one file per version folder (ingest/store.py before versions).
PREVIOUS_RELEASE_STORE = """
CREATE TABLE records (pmid TEXT PRIMARY KEY, version INTEGER NOT NULL, title TEXT NOT NULL, abstract TEXT NOT NULL,
    data TEXT NOT NULL, year INTEGER, retracted INTEGER NOT NULL, retraction_notice INTEGER NOT NULL,
    title_only INTEGER NOT NULL, content_hash TEXT NOT NULL, source TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE chunks (chunk_id INTEGER PRIMARY KEY AUTOINCREMENT, pmid TEXT NOT NULL REFERENCES records(pmid),
    text TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL);
CREATE INDEX chunks_pmid ON chunks(pmid);
CREATE VIRTUAL TABLE chunks_fts USING fts5(text, tokenize='porter unicode61');
CREATE TABLE deleted (pmid TEXT PRIMARY KEY, source TEXT NOT NULL, deleted_at TEXT NOT NULL);
CREATE TABLE provenance (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, name TEXT NOT NULL, at TEXT NOT NULL,
    added INTEGER NOT NULL, replaced INTEGER NOT NULL, deleted INTEGER NOT NULL, unchanged INTEGER NOT NULL,
    skipped INTEGER NOT NULL);
CREATE TABLE record_sources (pmid TEXT NOT NULL, provenance_id INTEGER NOT NULL);
"""


def write_previous_release_store(shared, path) -> None:
    """The live rows of ``shared`` written into a store of the previous release's schema at ``path``."""
    conn = sqlite3.connect(path)
    conn.executescript(PREVIOUS_RELEASE_STORE)
    conn.execute("ATTACH ? AS shared", (str(shared),))
    conn.execute(f"INSERT INTO records SELECT {RECORD_COLUMNS} FROM shared.records WHERE valid_to IS NULL")
    conn.execute("INSERT INTO chunks SELECT chunk_id, pmid, text, start, end FROM shared.chunks WHERE valid_to IS NULL")
    conn.execute("INSERT INTO chunks_fts (rowid, text) SELECT chunk_id, text FROM chunks")
    conn.execute("INSERT INTO deleted SELECT pmid, source, deleted_at FROM shared.deleted WHERE valid_to IS NULL")
    conn.execute("INSERT INTO provenance SELECT id, kind, name, at, added, replaced, deleted, unchanged, skipped "
                 "FROM shared.provenance")
    conn.execute("INSERT INTO record_sources SELECT pmid, provenance_id FROM shared.record_sources "
                 "WHERE valid_to IS NULL")
    conn.commit()
    conn.close()


def test_previous_release_index_opens_and_is_upgraded_by_the_next_update(small_settings, embedder):
    """A schema-1 version as the previous release wrote it: one vectors.faiss IndexIDMap2(IndexFlatIP) and its own
    record store in the version folder."""
    layout = IndexLayout(small_settings.paths.index_dir, "small")
    folder = layout.current()
    manifest = json.loads((folder / "manifest.json").read_text())
    current = LoadedIndex(small_settings.paths.index_dir, "small")
    ids = current.vectors.ids()
    pmids = current.store.all_pmids()
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(384))
    old.add_with_ids(current.vectors.vectors(ids.tolist()), ids)
    del current
    faiss.write_index(old, str(folder / "vectors.faiss"))
    for p in [folder / "deleted.npy", *(folder / SHARDS_DIR).iterdir()]:
        p.unlink()
    (folder / SHARDS_DIR).rmdir()
    write_previous_release_store(layout.root / STORE_FILE, folder / STORE_FILE)
    (layout.root / STORE_FILE).unlink()
    manifest.pop("index")
    manifest.pop("store")
    manifest["schema_version"] = 1
    manifest["files"] = {n: {"sha256": sha256(folder / n), "bytes": (folder / n).stat().st_size}
                         for n in (STORE_FILE, "vectors.faiss")}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    legacy_store = sha256(folder / STORE_FILE)

    legacy = LoadedIndex(small_settings.paths.index_dir, "small")
    assert verify_index(small_settings.paths.index_dir, "small").ok
    assert legacy.store.all_pmids() == pmids and not legacy.store.versioned
    query = legacy.vectors.vectors(ids[:1].tolist())[0]
    _, hits = legacy.vectors.search(query, 3)
    assert hits[0] == ids[0]
    summary = ingest([FileSource(XML / "pubmed4.xml")], "small", small_settings, embedder=embedder)
    assert summary.added == 1
    upgraded = LoadedIndex(small_settings.paths.index_dir, "small")
    assert upgraded.manifest["schema_version"] == 2 and upgraded.manifest["index"]["type"] == "flat"
    assert [s["name"] for s in upgraded.manifest["index"]["shards"]] == ["s0001", "s0002"]
    # The records moved to the shared store, once (a converted copy); the old version's own file is untouched.
    assert upgraded.manifest["store"]["shared"] and upgraded.store.all_pmids() == sorted([*pmids, "27797938"])
    assert sha256(folder / STORE_FILE) == legacy_store and legacy.store.all_pmids() == pmids
    assert verify_index(small_settings.paths.index_dir, "small").ok


def test_auto_type_and_nlist_by_size():
    assert resolve_spec(IndexSpec("auto"), 199_999, 200_000).type == "flat"
    big = resolve_spec(IndexSpec("auto"), 1_000_000, 200_000)
    assert (big.type, big.nlist) == ("ivfpq", 1024)
    assert resolve_spec(IndexSpec("ivfflat"), 300, 200_000).nlist == 7  # at most n / 39 lists


def test_update_refuses_another_type(small_settings, embedder):
    from pubmed_rag.records import IngestError

    with pytest.raises(IngestError, match="index compact small --index.type hnsw"):
        ingest([FileSource(XML / "pubmed4.xml")], "small", typed(small_settings, "hnsw"), embedder=embedder)


def test_compact_command_changes_the_type(small_settings, capsys):
    from ui.cli import main

    code = main(["index", "compact", "small", "--index.type", "hnsw", "--index.hnsw_m", "8",
                 "--paths.index_dir", str(small_settings.paths.index_dir)])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("index 'small' v0002: 1 shard(s) -> 1,") and "(hnsw)" in out
    index = LoadedIndex(small_settings.paths.index_dir, "small")
    assert index.manifest["index"]["factory"] == "HNSW8,Flat" and index.manifest["index"]["requested"] == "hnsw"


def test_query_time_index_settings_reach_the_served_index(small_settings, embedder, monkeypatch):
    """--index.nprobe / ef_search / refine and --index.exact_below given when asking change the search."""
    built = typed(small_settings, "ivfflat")
    built.index.nprobe = 1  # the index is built to visit 1 of its 4 lists
    compact("small", built)
    questions = [q["question"] for q in pubmedqa_questions()[:8]]
    queries = embedder.encode(questions)
    served = open_index(small_settings)  # default settings: the index's own nprobe 1
    assert served.vectors.search_overrides == {} and served.vectors.exact_below == 20_000
    exact = [exact_top(served, q, 10) for q in queries]
    approximate = [served.vectors.search(q, 10)[1].tolist() for q in queries]
    assert approximate != exact  # one list of four misses some of the nearest chunks

    asked = small_settings.model_copy(deep=True)
    asked.index.nprobe, asked.index.exact_below = 4, 0
    index = open_index(asked)
    assert index.vectors.search_overrides == {"nprobe": 4} and index.vectors.exact_below == 0
    assert [index.vectors.search(q, 10)[1].tolist() for q in queries] == exact  # every list visited: exact

    # exact_below: a filter allowing 3 records' chunks is searched exactly only when it is under the bound.
    calls = []
    original = type(index.vectors)._exact
    monkeypatch.setattr(type(index.vectors), "_exact", lambda self, *a: calls.append(1) or original(self, *a))
    allowed = np.array(sorted(c for p in index.store.all_pmids()[:3] for c in index.store.chunk_ids(p)))
    index.vectors.search(queries[0], 5, allowed)
    assert calls == []  # exact_below 0: the approximate path
    served.vectors.search(queries[0], 5, allowed)
    assert calls == [1]  # the default bound: exact

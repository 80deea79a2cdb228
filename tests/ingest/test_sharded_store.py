"""A record store in shards: the same answers as one store (BM25 with collection-wide statistics, filters, reads),
updates across shards, and indexes written before store shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingest import sharded_store
from ingest.build import FileSource, RecordsSource, ingest
from ingest.index import IndexLayout, LoadedIndex, verify_index
from ingest.reshard import reshard
from ingest.sharded_store import ShardedStore
from ingest.store import RecordStore
from pubmed_rag.records import Deletion, Record
from pubmed_rag.types import Filters
from rag.retrieve import IndexRetriever, fts_query, query_words
from tests.conftest import FLAGSHIP, XML, pubmedqa_questions

QUESTIONS = [FLAGSHIP, *(q["question"] for q in pubmedqa_questions()[:25])]


def _bm25(index: LoadedIndex, question: str, filters: Filters | None = None) -> list[tuple[str, int, float]]:
    ids, scores = index.store.bm25(fts_query(question), 50, filters)
    chunks = index.store.chunks(ids.tolist())
    return [(chunks[i].pmid, chunks[i].start, float(s)) for i, s in zip(ids.tolist(), scores, strict=True)]


def test_four_store_shards_rank_exactly_as_one_store(small_settings, embedder, monkeypatch):
    one = LoadedIndex(small_settings.paths.index_dir, "small")
    summary = reshard("small", 4, small_settings)
    assert (summary.shards_before, summary.shards_after, summary.records) == (1, 4, 211)
    four = LoadedIndex(small_settings.paths.index_dir, "small")
    assert len(four.store.shards) == 4 and len(one.store.shards) == 1
    assert [len(s.all_pmids()) for s in four.store.shards] == [53, 53, 53, 52]
    assert four.manifest["store"]["digest"] == one.manifest["store"]["digest"]  # the same rows, hashed
    assert four.store.counts() == one.store.counts() and four.store.all_pmids() == one.store.all_pmids()
    assert verify_index(small_settings.paths.index_dir, "small").ok
    monkeypatch.setattr(sharded_store, "PARALLEL_ROWS", 0)  # the rows hashed in worker processes: the same digest
    assert four.store.digest() == one.manifest["store"]["digest"]
    monkeypatch.undo()

    # BM25: each shard scores with the summed statistics, so scores are FTS5's bm25() over the one store.
    recent = Filters(year_min=2020)
    for question in QUESTIONS:
        for filters in (None, recent):
            a, b = _bm25(one, question, filters), _bm25(four, question, filters)
            assert [x[:2] for x in a] == [x[:2] for x in b], question
            assert np.allclose([x[2] for x in a], [x[2] for x in b], rtol=1e-5)
        words = query_words(question)
        assert four.store.document_frequencies(words) == one.store.document_frequencies(words)
    flagship = _bm25(four, FLAGSHIP)
    assert flagship[0][0] == "29768149" and flagship[0][2] > 10

    # Hybrid retrieval and the reads the pipeline makes are the same.
    for question in QUESTIONS[:8]:
        hits = [IndexRetriever(index, embedder, small_settings.retrieval).rank(question, 10) for index in (one, four)]
        assert [h.pmid for h in hits[0]] == [h.pmid for h in hits[1]], question
    pmids = one.store.all_pmids()
    assert four.store.get_many(pmids) == one.store.get_many(pmids)
    assert four.store.vocabulary() == one.store.vocabulary()
    assert four.store.year_counts() == one.store.year_counts()
    ids = one.store.all_chunk_ids()
    assert four.store.all_chunk_ids() == ids and four.chunk_pmids(ids) == one.chunk_pmids(ids)
    assert np.array_equal(np.sort(four.store.filtered_chunk_ids(recent)), np.sort(one.store.filtered_chunk_ids(recent)))
    one.close()
    four.close()


def test_updates_close_records_in_whichever_shard_holds_them(small_settings, embedder):
    reshard("small", 3, small_settings)
    layout = IndexLayout(small_settings.paths.index_dir, "small")
    before = LoadedIndex(layout.index_dir, "small")
    shards = before.store.shards
    gone, fixed = shards[2].all_pmids()[0], shards[1].all_pmids()[5]
    old_chunks = before.store.chunk_ids(gone) + before.store.chunk_ids(fixed)
    rec = before.store.get(fixed)
    newer = Record.from_dict({**rec.to_dict(), "version": rec.version + 1, "title": rec.title + " (corrected)"})
    summary = ingest([FileSource(XML / "pubmed26n1335.xml.gz"), RecordsSource("fix", [newer, Deletion((gone,), "t")])],
                     "small", small_settings, embedder=embedder)
    assert (summary.added, summary.replaced, summary.deleted) == (30, 1, 1)
    after = LoadedIndex(layout.index_dir, "small")
    assert after.store.get(gone) is None and after.store.get(fixed).title.endswith("(corrected)")
    assert after.store.shards[0].get(fixed) is not None and after.store.shards[1].get(fixed) is None  # moved
    assert not set(old_chunks) & set(after.vectors.ids().tolist())
    assert after.manifest["counts"]["records"] == before.manifest["counts"]["records"] + 30 - 1
    assert verify_index(layout.index_dir, "small").ok
    # the previous version still reads its own rows
    assert before.store.get(gone) is not None and not before.store.get(fixed).title.endswith("(corrected)")
    before.close()
    after.close()
    # Two more publishes prune the versions that read the one store: its file goes.
    for n in range(2):
        ingest([RecordsSource(f"more{n}", [Record.from_dict({**rec.to_dict(), "version": rec.version + 2 + n})])],
               "small", small_settings, embedder=embedder)
    assert not (layout.root / "store.sqlite").exists()
    assert sorted(p.name for p in layout.root.glob("store*.sqlite")) == [f"store-0000{n}.sqlite" for n in (1, 2, 3)]
    assert verify_index(layout.index_dir, "small").ok
    # Back into one shard: the same rows (the digest), and the three shards go after two more publishes.
    sharded = LoadedIndex(layout.index_dir, "small")
    assert reshard("small", 1, small_settings).shards_before == 3
    one = LoadedIndex(layout.index_dir, "small")
    assert one.manifest["store"]["shards"] == ["store-00004.sqlite"] and len(one.store.shards) == 1
    assert one.manifest["store"]["digest"] == sharded.manifest["store"]["digest"]
    assert one.store.all_pmids() == sharded.store.all_pmids() and verify_index(layout.index_dir, "small").ok
    sharded.close()
    one.close()


def test_an_index_from_before_store_shards_opens_and_updates(small_settings, embedder):
    layout = IndexLayout(small_settings.paths.index_dir, "small")
    manifest_file = layout.current() / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["store"]["shards"]  # as every release before store shards wrote it
    manifest_file.write_text(json.dumps(manifest))
    old = LoadedIndex(layout.index_dir, "small")
    assert len(old.store.shards) == 1 and old.store.counts()["records"] == 211
    summary = ingest([FileSource(XML / "pubmed26n1335.xml.gz")], "small", small_settings, embedder=embedder)
    new = LoadedIndex(layout.index_dir, "small")
    assert summary.added == 30 and new.manifest["store"]["shards"] == ["store.sqlite"]
    assert new.store.counts()["records"] == 241 and verify_index(layout.index_dir, "small").ok


def test_shards_number_their_chunks_apart(tmp_path):
    stores = [RecordStore(tmp_path / f"{k}.sqlite", version=1, shard=k) for k in (0, 3)]
    ids = [s.add_chunk("1", "text", 0, 4) for s in stores]
    assert ids == [1, (3 << 40) + 1]
    sharded = ShardedStore(stores)
    assert sharded.chunk_pmids(ids) == {ids[0]: "1", ids[1]: "1"}
    with pytest.raises(ValueError):
        ShardedStore([])
    sharded.close()

"""The record store's chunk -> PMID map, on a small index of real abstracts."""

from __future__ import annotations

import dataclasses

from ingest.index import LoadedIndex
from ingest.store import ChunkPmids, RecordStore
from tests.conftest import sample_records


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

"""An index version's records over several store shards: reads fan out over the shards in parallel and merge.

A Ray build writes one store shard per input file (``ingest.distributed``); a single-process build writes to shard 0,
``store.sqlite``, so an index built in one process is a one-shard store, as every index before shards was. Each
shard is a ``RecordStore`` with the same versioned schema; chunk ids are unique across the shards (shard k numbers
its chunks from ``k << SHARD_BITS``), so the vectors need not know which shard holds a chunk. A PMID is live in at
most one shard of a version: a build that replaces or deletes it closes its rows wherever they live.

BM25 over several shards is scored with the whole index's statistics: rows, tokens and each term's document
frequency summed over the shards (as Elasticsearch's DFS query does). Each shard proposes its best chunks by its own
``bm25()`` (FTS5 in C, on a thread per shard) and returns their term counts and lengths; those candidates are scored
with the summed statistics by the same formula as ``bm25()`` and merged. So a score is exactly what one store holding
every shard's chunks would give; a chunk that would rank in the whole index's top ``limit`` but not in its own
shard's is missed (shards of similar content have near-equal statistics, so their rankings agree: measured in
docs/distributed.md).
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from ingest.store import _DIGEST_MOD, RecordStore
from pubmed_rag.records import Chunk, Record
from pubmed_rag.types import Filters

T = TypeVar("T")
BM25_K1, BM25_B = 1.2, 0.75  # FTS5's bm25() constants (fts5_aux.c)
PARALLEL_ROWS = 200_000  # rows to hash from which worker processes pay for their start (about a second)


class ShardedStore:
    """The record store of an index version: one ``RecordStore`` per shard, read as one.

    Writes (an update in one process) go to ``shards[writer]``; a PMID being replaced or deleted is closed in
    whichever shard holds it."""

    def __init__(self, shards: list[RecordStore], writer: int = 0) -> None:
        if not shards:
            raise ValueError("a store needs at least one shard")
        self.shards = shards
        self.writer = writer
        self._pool: ThreadPoolExecutor | None = None
        self._ranges: list[tuple[str, str] | None] | None = None

    @property
    def path(self) -> Path:
        return self.shards[0].path

    @property
    def version(self) -> int | None:
        return self.shards[0].version

    @property
    def versioned(self) -> bool:
        """Whether the shards have version columns (not a store written by an earlier release)."""
        return all(s.versioned for s in self.shards)

    def _map(self, fn: Callable[[RecordStore], T]) -> list[T]:
        """``fn`` over every shard, on a thread each (SQLite releases the GIL), in shard order."""
        if len(self.shards) == 1:
            return [fn(self.shards[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(min(len(self.shards), os.cpu_count() or 1, 16),
                                            thread_name_prefix="store-shard")
        return list(self._pool.map(fn, self.shards))

    def close(self) -> None:
        for shard in self.shards:
            shard.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -- search ----------------------------------------------------------------------------------------------
    def bm25(self, query: str | list[str], limit: int,
             filters: Filters | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(chunk ids, BM25 scores)`` of the best ``limit`` chunks, best first. ``query`` is an FTS5 OR-query of
        quoted words (``rag.retrieve.fts_query``) or the words themselves. One shard: FTS5's own ``bm25()``;
        several: each shard scores with the index-wide statistics and the best are merged."""
        words = _query_words(query) if isinstance(query, str) else list(query)
        text = query if isinstance(query, str) else " OR ".join(f'"{w}"' for w in words)
        if not text:
            return _empty()
        if len(self.shards) == 1 or words is None:  # other FTS5 syntax: each shard's own statistics
            parts = self._map(lambda s: s.bm25(text, limit, filters))
            return _best(parts, limit)
        stems = self.shards[0].stems(list(dict.fromkeys(words)))
        phrases = [term for w in words for term in stems[w]]
        terms = list(dict.fromkeys(phrases))
        parts = self._map(lambda s: (s.fts_totals(), s.term_frequencies(terms),
                                     s.bm25_candidates(text, terms, limit, filters)))
        rows = sum(p[0][0] for p in parts)
        if not rows:
            return _empty()
        avgdl = sum(p[0][1] for p in parts) / rows
        hits = np.array([sum(p[1][t] for p in parts) for t in terms], dtype=np.float64)
        # as bm25(): log((N - n + 0.5) / (n + 0.5)), at least 1e-6, once for every phrase naming the term
        idf = np.maximum(np.log((rows - hits + 0.5) / (hits + 0.5)), 1e-6) * [phrases.count(t) for t in terms]
        scored = []
        for _, _, (ids, tf, length) in parts:
            k = BM25_K1 * (1 - BM25_B + BM25_B * length / avgdl)
            scored.append((ids, ((tf * (BM25_K1 + 1) / (tf + k[:, None])) @ idf).astype(np.float32)))
        return _best(scored, limit)

    def document_frequencies(self, words: list[str]) -> dict[str, int]:
        parts = self._map(lambda s: s.document_frequencies(words))
        return {w: sum(p[w] for p in parts) for w in words}

    def filtered_chunk_ids(self, filters: Filters) -> np.ndarray:
        parts = self._map(lambda s: s.filtered_chunk_ids(filters))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    # -- reads -----------------------------------------------------------------------------------------------
    def _holding(self, pmid: str) -> list[RecordStore]:
        """The shards that may hold ``pmid`` (live or deleted): the write shard, and each other shard whose range of
        PMIDs (read once: only the write shard gains rows) contains it. PubMed's files hold ranges of PMIDs, so a
        lookup in an index of a thousand Ray-built shards reads one or two."""
        if self._ranges is None:
            self._ranges = [None if n == self.writer else shard.pmid_range() for n, shard in enumerate(self.shards)]
        return [shard for shard, bounds in zip(self.shards, self._ranges, strict=True)
                if bounds is None or bounds[0] <= pmid <= bounds[1]]

    def get(self, pmid: str) -> Record | None:
        for shard in self._holding(pmid):
            if (record := shard.get(pmid)) is not None:
                return record
        return None

    def get_many(self, pmids: Iterable[str]) -> dict[str, Record]:
        pmids = list(pmids)
        return _union(self._map(lambda s: s.get_many(pmids)))

    def hash_and_version(self, pmid: str) -> tuple[str, int] | None:
        for shard in self._holding(pmid):
            if (found := shard.hash_and_version(pmid)) is not None:
                return found
        return None

    def chunk_ids(self, pmid: str) -> list[int]:
        return sorted(i for shard in self._holding(pmid) for i in shard.chunk_ids(pmid))

    def chunks(self, chunk_ids: Iterable[int]) -> dict[int, Chunk]:
        ids = list(chunk_ids)
        return _union(self._map(lambda s: s.chunks(ids)))

    def chunk_pmids(self, chunk_ids: Iterable[int]) -> dict[int, str]:
        ids = list(chunk_ids)
        return _union(self._map(lambda s: s.chunk_pmids(ids)))

    def all_pmids(self) -> list[str]:
        return sorted(p for shard in self.shards for p in shard.all_pmids())

    def all_chunk_ids(self) -> list[int]:
        return sorted(i for shard in self.shards for i in shard.all_chunk_ids())

    def iter_records(self) -> Iterator[Record]:
        return heapq.merge(*(s.iter_records() for s in self.shards), key=lambda r: r.pmid)

    def counts(self) -> dict[str, int]:
        return _sum(self._map(RecordStore.counts))

    def provenance(self) -> list[dict]:
        """Every shard's sources, in the order they were applied (version, then shard, then id)."""
        rows = []
        for n, shard in enumerate(self.shards):
            columns = "id, kind, name, at, added, replaced, deleted, unchanged, skipped, valid_from"
            for r in shard.conn.execute(f"SELECT {columns} FROM live_provenance ORDER BY id"):
                rows.append(((r["valid_from"], n, r["id"]), {k: r[k] for k in r.keys() if k != "valid_from"}))
        return [row for _, row in sorted(rows, key=lambda x: x[0])]

    def year_counts(self) -> dict[int, int]:
        return dict(sorted(_sum(self._map(RecordStore.year_counts)).items()))

    def vocabulary(self) -> dict[tuple[str, str], int]:
        return _sum(self._map(RecordStore.vocabulary))

    def publication_type_counts(self) -> dict[str, int]:
        counts = _sum(self._map(RecordStore.publication_type_counts))
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    # -- integrity (sums: the digest is a sum of row hashes) ----------------------------------------------------
    def digest(self) -> str:
        return f"{self._hashes(None) % _DIGEST_MOD:032x}"

    def change_digest(self, previous: str, version: int) -> str:
        return f"{(int(previous, 16) + self._hashes(version)) % _DIGEST_MOD:032x}"

    def _hashes(self, change: int | None) -> int:
        """The sum of the shards' row hashes (``change``: of the rows that version added, minus those it closed).
        Hashing is Python, one row at a time, so many rows over several shards are hashed in a process per CPU
        (a Ray build's manifest and its verification: 17,000 records/s in one process, bench/bench_ray.py)."""
        if change is None:
            rows = sum(c["records"] + c["chunks"] for c in self._map(RecordStore.counts))
        else:
            rows = sum(self.changed(change).values())
        workers = min(len(self.shards), os.cpu_count() or 1)
        if rows < PARALLEL_ROWS or workers < 2:
            return sum(self._map(lambda s: _shard_hashes(s, change)))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            return sum(pool.map(_hash_file, [(str(s.path), s.version, change) for s in self.shards]))

    def count_changes(self, version: int) -> dict[str, int]:
        return _sum(self._map(lambda s: s.count_changes(version)))

    def changed_chunk_ids(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        parts = self._map(lambda s: s.changed_chunk_ids(version))
        return tuple(np.sort(np.concatenate([p[i] for p in parts])) for i in (0, 1))  # type: ignore[return-value]

    def changed(self, version: int) -> dict[str, int]:
        return _sum(self._map(lambda s: s.changed(version)))

    # -- writes (an update in one process) ----------------------------------------------------------------------
    @property
    def _write(self) -> RecordStore:
        return self.shards[self.writer]

    def _others(self, pmid: str) -> list[RecordStore]:
        return [s for s in self._holding(pmid) if s is not self._write]

    def upsert(self, record: Record, content_hash: str) -> list[int]:
        removed = [i for s in self._others(record.pmid) for i in s.close_pmid(record.pmid)]
        return removed + self._write.upsert(record, content_hash)

    def add_chunk(self, pmid: str, text: str, start: int, end: int) -> int:
        return self._write.add_chunk(pmid, text, start, end)

    def delete(self, pmid: str, source: str) -> tuple[bool, list[int]]:
        present, removed = False, []
        for shard in self._others(pmid):
            had = shard.hash_and_version(pmid) is not None
            removed += shard.close_pmid(pmid, sources=True)
            present = present or had
        here, gone = self._write.delete(pmid, source)
        return present or here, removed + gone

    def start_provenance(self, kind: str, name: str) -> int:
        return self._write.start_provenance(kind, name)

    def finish_provenance(self, prov_id: int, counts: dict[str, int]) -> None:
        self._write.finish_provenance(prov_id, counts)

    def link_source(self, pmid: str, prov_id: int) -> None:
        self._write.link_source(pmid, prov_id)

    def commit(self) -> None:
        for shard in self.shards:
            shard.commit()

    def discard_after(self, version: int) -> int:
        return sum(shard.discard_after(version) for shard in self.shards)

    def purge(self, oldest_kept: int) -> int:
        return sum(shard.purge(oldest_kept) for shard in self.shards)


def _shard_hashes(store: RecordStore, change: int | None) -> int:
    return int(store.digest() if change is None else store.change_digest("0", change), 16)


def _hash_file(job: tuple[str, int | None, int | None]) -> int:
    """``_shard_hashes`` of a shard file, in a worker process."""
    path, version, change = job
    store = RecordStore(Path(path), readonly=True, version=version)
    try:
        return _shard_hashes(store, change)
    finally:
        store.close()


def _query_words(query: str) -> list[str] | None:
    """The words of an FTS5 OR-query of quoted words (``rag.retrieve.fts_query``); None for any other syntax."""
    parts = [p.strip() for p in query.split(" OR ")] if query.strip() else []
    if not all(len(p) > 2 and p[0] == p[-1] == '"' and '"' not in p[1:-1] for p in parts):
        return None
    return [p[1:-1] for p in parts]


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


def _best(parts: list[tuple[np.ndarray, np.ndarray]], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``limit`` best of several shards' ``(ids, scores)``, best first (ties by chunk id)."""
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    order = np.lexsort((ids, -scores))[:limit]
    return ids[order], scores[order]


def _union(parts: list[dict]) -> dict:
    out: dict = {}
    for part in parts:
        out.update(part)
    return out


def _sum(parts: list[dict]) -> dict:
    out: dict = {}
    for part in parts:
        for key, value in part.items():
            out[key] = out.get(key, 0) + value
    return out


class ChunkPmids:
    """Chunk id -> PMID for a read-only store version, held as two sorted int64 arrays (16 bytes per chunk).

    Falls back to SQL lookups when a PMID is not a plain number (e.g. a JSONL corpus with other ids).
    """

    def __init__(self, store: RecordStore | ShardedStore, chunk_ids: np.ndarray | None = None,
                 pmids: np.ndarray | None = None):
        self.store, self._ids, self._pmids = store, chunk_ids, pmids

    @classmethod
    def read(cls, store: RecordStore | ShardedStore) -> ChunkPmids:
        """From a ``RecordStore`` or a ``ShardedStore`` (every shard's chunks)."""
        rows = [row for shard in getattr(store, "shards", [store])
                for row in shard.conn.execute("SELECT chunk_id, pmid FROM live_chunks ORDER BY chunk_id")]
        if not all(p.isdigit() and str(int(p)) == p for _, p in rows):
            return cls(store)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        pmids = np.fromiter((int(r[1]) for r in rows), dtype=np.int64, count=len(rows))
        order = np.argsort(ids, kind="stable")
        return cls(store, ids[order], pmids[order])

    def __call__(self, chunk_ids: Iterable[int]) -> dict[int, str]:
        if self._ids is None:
            return self.store.chunk_pmids(chunk_ids)
        ids = np.fromiter(chunk_ids, dtype=np.int64)
        if not len(self._ids) or not len(ids):
            return {}
        pos = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        found = self._ids[pos] == ids
        return {int(c): str(p) for c, p in zip(ids[found], self._pmids[pos[found]], strict=True)}

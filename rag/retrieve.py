"""Find evidence: dense (FAISS), lexical (SQLite FTS5 BM25) or both fused by reciprocal rank fusion.

Filters are pushed into each search (FAISS ``IDSelector``, SQL ``WHERE``), so asking for k sources with a filter
returns k matching sources whenever the index holds them.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pydantic import BaseModel

from ingest.embedder import Embedder
from ingest.index import LoadedIndex
from pubmed_rag.records import Record
from pubmed_rag.settings import RetrievalSettings
from pubmed_rag.types import Evidence
from rag.grading import grade


class Filters(BaseModel):
    """Restrictions applied inside retrieval."""

    year_min: int | None = None
    year_max: int | None = None
    publication_types: list[str] = []
    exclude_retracted: bool = False
    mesh: str | None = None
    exclude_pmids: list[str] = []

    def sql(self) -> tuple[str, list]:
        """A ``WHERE`` fragment over ``records r`` and its parameters (``"1"`` when unfiltered)."""
        parts, params = ["1"], []
        if self.year_min is not None:
            parts.append("r.year >= ?")
            params.append(self.year_min)
        if self.year_max is not None:
            parts.append("r.year <= ?")
            params.append(self.year_max)
        if self.exclude_retracted:
            parts.append("r.retracted = 0")
        if self.publication_types:
            marks = ",".join("?" * len(self.publication_types))
            parts.append(f"EXISTS (SELECT 1 FROM json_each(r.data, '$.publication_types') WHERE value IN ({marks}))")
            params.extend(self.publication_types)
        if self.exclude_pmids:
            parts.append(f"r.pmid NOT IN ({','.join('?' * len(self.exclude_pmids))})")
            params.extend(self.exclude_pmids)
        if self.mesh:
            parts.append("EXISTS (SELECT 1 FROM json_each(r.data, '$.mesh') WHERE lower(value) = lower(?))")
            params.append(self.mesh)
        return " AND ".join(parts), params

    @property
    def active(self) -> bool:
        return self.sql()[0] != "1"


@dataclass
class Hit:
    pmid: str
    chunk_id: int
    score: float
    sources: dict[str, float] = field(default_factory=dict)


class Retriever(Protocol):
    """Plug-in point: anything that ranks records for a question."""

    def search(self, question: str, k: int, filters: Filters | None = None) -> list[Evidence]: ...


_WORD = re.compile(r"[A-Za-z0-9\u00C0-\uFFFF]+")
_STOP = frozenset(
    "a an and are as at be by can do does for from has have how in is it of on or that the their there these this "
    "to was were what when which who why will with whether than not no yes".split()
)


def fts_query(text: str) -> str:
    """An FTS5 OR-query of the question's words (quoted, so no word is read as FTS syntax)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


class IndexRetriever:
    """Dense, BM25 or hybrid retrieval over one loaded index."""

    def __init__(self, index: LoadedIndex, embedder: Embedder, settings: RetrievalSettings) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._cross_encoder = None
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bm25")

    # -- single rankings (best chunk per PMID, best first) ---------------------------------------------------
    def dense(self, question: str, depth: int, filters: Filters) -> list[Hit]:
        allowed = self._allowed_chunks(filters)
        if allowed is not None and allowed.size == 0:
            return []
        return self._dense_search(self.embedder.encode([question])[0], depth, allowed)

    def _dense_search(self, vector: np.ndarray, depth: int, allowed: np.ndarray | None, source: str = "dense") -> list[Hit]:
        if allowed is not None:
            depth = min(depth, int(allowed.size))
        scores, ids = self.index.vectors.search(vector, depth * 3, allowed)
        return self._best_per_pmid(scores, ids, limit=depth, source=source)

    def bm25(self, question: str, depth: int, filters: Filters) -> list[Hit]:
        query = fts_query(question)
        if not query:
            return []
        if filters.active:
            where, params = filters.sql()
            sql = ("SELECT f.rowid, -bm25(chunks_fts) AS s FROM chunks_fts f "
                   "JOIN chunks c ON c.chunk_id = f.rowid JOIN records r ON r.pmid = c.pmid "
                   f"WHERE chunks_fts MATCH ? AND {where} ORDER BY s DESC LIMIT ?")
        else:
            sql, params = ("SELECT rowid, -bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
                           "ORDER BY s DESC LIMIT ?"), []
        rows = self._connection().execute(sql, [query, *params, depth * 3]).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        scores = np.array([r[1] for r in rows], dtype=np.float32)
        return self._best_per_pmid(scores, ids, limit=depth, source="bm25")

    def _connection(self) -> sqlite3.Connection:
        """A read-only connection per thread, so BM25 runs in parallel with the dense search (SQLite drops the GIL)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(f"file:{self.index.store.path}?mode=ro", uri=True,
                                                      check_same_thread=False)
        return conn

    def _allowed_chunks(self, filters: Filters) -> np.ndarray | None:
        """The chunk ids passing ``filters``, or ``None`` when nothing is filtered."""
        if not filters.active:
            return None
        where, params = filters.sql()
        rows = self.index.store.conn.execute(
            f"SELECT c.chunk_id FROM chunks c JOIN records r ON r.pmid = c.pmid WHERE {where}", params
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def _best_per_pmid(self, scores: np.ndarray, ids: np.ndarray, limit: int, source: str) -> list[Hit]:
        valid = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]
        pmids = self.index.chunk_pmids(i for i, _ in valid)
        hits: dict[str, Hit] = {}
        for chunk_id, score in valid:
            pmid = pmids[chunk_id]
            if pmid not in hits:
                hits[pmid] = Hit(pmid, chunk_id, score, {source: score})
            if len(hits) == limit:
                break
        return list(hits.values())

    # -- fused --------------------------------------------------------------------------------------------
    def rank(self, question: str, k: int, filters: Filters | None = None, retriever: str | None = None) -> list[Hit]:
        filters = filters or Filters()
        mode = retriever or self.settings.retriever
        depth = max(self.settings.depth, k)
        if mode == "dense":
            hits = self.dense(question, depth, filters)
        elif mode == "bm25":
            hits = self.bm25(question, depth, filters)
        else:
            hits = self._hybrid(question, depth, filters)
        if self.settings.reranker:
            hits = self._rerank(question, hits[: max(k * 4, 20)])
        if self.settings.grade_prior > 0:
            records = self.index.store.get_many(h.pmid for h in hits)
            for h in hits:
                h.score += self.settings.grade_prior * grade(records[h.pmid].publication_types,
                                                              records[h.pmid].mesh)[0]
            hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def _hybrid(self, question: str, depth: int, filters: Filters) -> list[Hit]:
        """BM25 (in a worker thread) and dense, fused; then dense pseudo-relevance feedback from the fused top."""
        allowed = self._allowed_chunks(filters)
        if allowed is not None and allowed.size == 0:
            return []
        lexical = self._pool.submit(self.bm25, question, depth, filters)
        vector = self.embedder.encode([question])[0]
        rankings = [(self._dense_search(vector, depth, allowed), self.settings.dense_weight)]
        rankings.append((lexical.result(), self.settings.bm25_weight))
        hits = self._fuse(rankings)
        if self.settings.prf_docs and hits:
            feedback = self.index.vectors.vectors([h.chunk_id for h in hits[: self.settings.prf_docs]]).mean(axis=0)
            expanded = vector + self.settings.prf_weight * feedback
            expanded /= np.linalg.norm(expanded) or 1.0
            rankings.append((self._dense_search(expanded, depth, allowed, source="feedback"), self.settings.prf_weight))
            hits = self._fuse(rankings)
        return hits

    def _rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """Order candidates by a sentence-transformers ``CrossEncoder`` score of (question, passage)."""
        if self._cross_encoder is None:
            from sentence_transformers import CrossEncoder

            try:
                self._cross_encoder = CrossEncoder(self.settings.reranker)
            except (OSError, ValueError) as exc:
                raise RuntimeError(f"cannot load reranker {self.settings.reranker!r} ({exc}); give a local "
                                   "CrossEncoder folder, or unset retrieval.reranker.") from exc
        chunks = self.index.store.chunks(h.chunk_id for h in hits)
        scores = self._cross_encoder.predict([(question, chunks[h.chunk_id].text) for h in hits])
        for hit, score in zip(hits, scores, strict=True):
            hit.sources["rerank"] = float(score)
            hit.score = float(score)
        return sorted(hits, key=lambda h: -h.score)

    def _fuse(self, rankings: list[tuple[list[Hit], float]]) -> list[Hit]:
        fused: dict[str, Hit] = {}
        for hits, weight in rankings:
            for rank, hit in enumerate(hits, start=1):
                entry = fused.setdefault(hit.pmid, Hit(hit.pmid, hit.chunk_id, 0.0))
                entry.score += weight / (self.settings.rrf_k + rank)
                entry.sources.update(hit.sources)
                if "dense" in hit.sources:  # prefer the semantically best passage for display
                    entry.chunk_id = hit.chunk_id
        return sorted(fused.values(), key=lambda h: -h.score)

    def search(self, question: str, k: int, filters: Filters | None = None,
               retriever: str | None = None) -> list[Evidence]:
        hits = self.rank(question, k, filters, retriever)
        records = self.index.store.get_many(h.pmid for h in hits)
        chunks = self.index.store.chunks(h.chunk_id for h in hits)
        return [to_evidence(n, records[h.pmid], chunks[h.chunk_id].text, h.chunk_id, h.score)
                for n, h in enumerate(hits, start=1)]


def to_evidence(number: int, record: Record, passage: str, chunk_id: int, score: float) -> Evidence:
    value, label = grade(record.publication_types, record.mesh)
    if record.title and passage.startswith(record.title + "\n"):
        passage = passage[len(record.title) + 1 :]
    return Evidence(
        number=number, pmid=record.pmid, title=record.title, journal=record.journal, year=record.year,
        authors=record.authors, publication_types=record.publication_types, mesh=record.mesh, doi=record.doi,
        retracted=record.retracted, retraction_notice=record.is_retraction_notice, grade=value, grade_label=label,
        score=round(float(score), 4), passage=passage, chunk_id=chunk_id, abstract=record.abstract, url=record.url,
        sections=record.labelled_sections(),
    )

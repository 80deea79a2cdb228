"""Find evidence: dense (FAISS), lexical (SQLite FTS5 BM25) or both fused by reciprocal rank fusion.

Filters are pushed into each search (FAISS ``IDSelector``, SQL ``WHERE``), so asking for k sources with a filter
returns k matching sources whenever the index holds them.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.embedder import Embedder
from ingest.index import LoadedIndex
from pubmed_rag.records import Record
from pubmed_rag.settings import RetrievalSettings
from pubmed_rag.types import Evidence, Filters
from rag.grading import grade
from rag.reranker import RerankerError, load_reranker, relevance, reranker_path

logger = logging.getLogger(__name__)


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


def query_words(text: str) -> list[str]:
    """The question's words BM25 searches for: lower-cased, no stop words, each once."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1))


def fts_query(text: str | list[str]) -> str:
    """An FTS5 OR-query of the question's words (quoted, so no word is read as FTS syntax)."""
    words = query_words(text) if isinstance(text, str) else text
    return " OR ".join(f'"{w}"' for w in words)


def bounded_words(words: list[str], frequencies: dict[str, int], chunks: int, max_df: float,
                  keep: int = 2) -> list[str]:
    """``words`` without those found in more than ``max_df`` of the ``chunks`` (their posting lists are what makes
    an OR-query slow, and their BM25 weight is small), but never fewer than the ``keep`` rarest."""
    if max_df >= 1 or len(words) <= keep:
        return words
    limit = max_df * chunks
    kept = [w for w in words if frequencies[w] <= limit]
    if len(kept) < keep:
        rarest = set(sorted(words, key=lambda w: frequencies[w])[:keep])
        kept = [w for w in words if w in rarest]
    return kept


class IndexRetriever:
    """Dense, BM25 or hybrid retrieval over one loaded index."""

    def __init__(self, index: LoadedIndex, embedder: Embedder, settings: RetrievalSettings,
                 cache_dir: Path | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.cache_dir = cache_dir  # the reranker's rebuilt weights (default paths.cache_dir)
        self.warnings: list[str] = []  # fallbacks the user should see (reranking off)
        self._cross_encoder: Any = None  # the reranker once loaded; False when it cannot be
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
        words = query_words(question)
        chunks = int(self.index.manifest["counts"]["chunks"])
        if self.settings.bm25_max_df < 1 and len(words) > 2 and chunks >= self.settings.bm25_bound_above:
            words = bounded_words(words, self.index.store.document_frequencies(words), chunks,
                                  self.settings.bm25_max_df)
        query = fts_query(words)
        if not query:
            return []
        ids, scores = self.index.store.bm25(query, depth * 3, filters)
        return self._best_per_pmid(scores, ids, limit=depth, source="bm25")

    def _allowed_chunks(self, filters: Filters) -> np.ndarray | None:
        """The chunk ids passing ``filters``, or ``None`` when nothing is filtered."""
        return self.index.store.filtered_chunk_ids(filters) if filters.active else None

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
        """The top ``k`` hits (one per PMID): the chosen ranking, then the optional reranker and grade prior."""
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
            depth = self.settings.rerank_depth
            hits = self.rerank(question, hits[:depth]) + hits[depth:]
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
        hits = fuse(rankings, self.settings.rrf_k)
        if self.settings.prf_docs and hits:
            feedback = self.index.vectors.vectors([h.chunk_id for h in hits[: self.settings.prf_docs]]).mean(axis=0)
            expanded = vector + self.settings.prf_weight * feedback
            expanded /= np.linalg.norm(expanded) or 1.0
            rankings.append((self._dense_search(expanded, depth, allowed, source="feedback"), self.settings.prf_weight))
            hits = fuse(rankings, self.settings.rrf_k)
        return hits

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """Order candidates by the reranker's P(relevant) of (question, passage). Weights that are missing or
        corrupt leave ``hits`` as they were, with a warning (in ``warnings`` and the log) naming the file and how to
        rebuild it."""
        if self._cross_encoder is None:
            try:
                self._cross_encoder = load_reranker(str(reranker_path(self.settings.reranker)),
                                                    str(self.cache_dir or ""))
            except RerankerError as exc:
                self._cross_encoder = False
                self.warnings.append(f"reranking is off, the ranking is unchanged: {exc}")
                logger.warning(self.warnings[-1])
        if not self._cross_encoder or not hits:
            return hits
        chunks = self.index.store.chunks(h.chunk_id for h in hits)
        scores = relevance(self._cross_encoder, [(question, chunks[h.chunk_id].text) for h in hits])
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
        """The top ``k`` records for ``question`` as numbered evidence (the best passage of each), among those passing
        ``filters``; ``retriever`` overrides ``retrieval.retriever`` (hybrid, dense or bm25)."""
        hits = self.rank(question, k, filters, retriever)
        records = self.index.store.get_many(h.pmid for h in hits)
        chunks = self.index.store.chunks(h.chunk_id for h in hits)
        return [to_evidence(n, records[h.pmid], chunks[h.chunk_id].text, h.chunk_id, h.score)
                for n, h in enumerate(hits, start=1)]


def fuse(rankings: list[tuple[list[Hit], float]], rrf_k: int) -> list[Hit]:
    """Weighted reciprocal rank fusion of ``(hits, weight)`` rankings, by PMID; best first."""
    fused: dict[str, Hit] = {}
    for hits, weight in rankings:
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.pmid, Hit(hit.pmid, hit.chunk_id, 0.0))
            entry.score += weight / (rrf_k + rank)
            entry.sources.update(hit.sources)
            if "dense" in hit.sources:  # prefer the semantically best passage for display
                entry.chunk_id = hit.chunk_id
    return sorted(fused.values(), key=lambda h: -h.score)


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

"""Sentence scorers for key findings (``rag.findings.SentenceScorer``), one module per kind beyond the default
cosine one, and ``finding_extractor``, which builds the extractor ``answer.sentence_scorer`` names."""

from __future__ import annotations

import logging
from pathlib import Path

from ingest.embedder import Embedder
from pubmed_rag.settings import AnswerSettings
from rag.findings import CosineSentenceScorer, FindingExtractor

logger = logging.getLogger(__name__)


def finding_extractor(settings: AnswerSettings, embedder: Embedder,
                      cache_dir: str | Path | None = None) -> FindingExtractor:
    """The ``FindingExtractor`` of ``answer.sentence_scorer``: cosine (thresholds ``answer.min_relevance`` and
    ``answer.echo_threshold``) or reranker (``answer.reranker_min_relevance``; a restatement is found by the
    question-words test only, as its P(relevant) is high). Reranker weights that are missing or corrupt give the
    cosine extractor, with a warning (in its ``warnings`` and the log) naming the file and how to rebuild it.
    ``cache_dir`` (default ``paths.cache_dir``) holds the reranker's rebuilt weights."""
    if settings.sentence_scorer == "reranker":
        from rag.reranker import RerankerError, load_reranker, reranker_path
        from rag.sentence_scorers.reranker import RerankerSentenceScorer

        try:
            model = load_reranker(str(reranker_path(settings.reranker_model)), str(cache_dir or ""))
        except RerankerError as exc:
            extractor = FindingExtractor(CosineSentenceScorer(embedder), settings)
            extractor.warnings.append(f"key findings are scored by cosine similarity instead of the reranker: {exc}")
            logger.warning(extractor.warnings[-1])
            return extractor
        else:
            return FindingExtractor(RerankerSentenceScorer(model), settings,
                                    min_relevance=settings.reranker_min_relevance, echo_threshold=float("inf"))
    return FindingExtractor(CosineSentenceScorer(embedder), settings)

"""``RerankerSentenceScorer``: a sentence's relevance to the question is the reranker's P(relevant), in [0, 1]."""

from __future__ import annotations

from typing import Any

import numpy as np

from rag.reranker import relevance


class RerankerSentenceScorer:
    """P(relevant) of (question, sentence) from a CrossEncoder trained here (``rag.reranker.load_reranker``)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def score(self, question: str, sentences: list[str]) -> np.ndarray:
        return relevance(self.model, [(question, s) for s in sentences])

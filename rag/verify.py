"""Support scoring: how well a cited abstract supports a claim.

The score is the similarity between the claim and its best-matching sentence of the abstract: cosine similarity of
the index's own embeddings by default, or a configured sentence-transformers ``CrossEncoder`` (e.g. an NLI model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ingest.embedder import Embedder
from pubmed_rag.settings import VerifySettings
from rag.citations import split_sentences, strip_markers
from rag.injection import is_instruction

Verdict = Literal["supported", "weak", "unsupported"]


@dataclass
class Support:
    score: float
    sentence: str  # the best-matching sentence of the abstract


class SupportScorer:
    """Scores (claim, abstract) pairs; abstract sentence embeddings are cached per text."""

    def __init__(self, embedder: Embedder, settings: VerifySettings) -> None:
        self.embedder = embedder
        self.settings = settings
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}
        self._cross = None
        if settings.nli_model:
            from sentence_transformers import CrossEncoder

            try:
                self._cross = CrossEncoder(settings.nli_model)
            except OSError as exc:
                raise RuntimeError(f"cannot load verify.nli_model {settings.nli_model!r}: {exc}") from exc

    def _sentences(self, text: str) -> tuple[list[str], np.ndarray]:
        if text not in self._cache:
            # Sentences that address the model are not evidence and cannot support a claim.
            sentences = [s for s in split_sentences(text) if not is_instruction(s)] or [text]
            self._cache[text] = (sentences, self.embedder.encode(sentences))
        return self._cache[text]

    def score_matrix(self, claims: list[str], texts: list[str]) -> list[list[Support]]:
        """``result[i][j]``: support of ``texts[j]`` for ``claims[i]``."""
        if not claims or not texts:
            return [[] for _ in claims]
        clean = [strip_markers(c) for c in claims]
        out: list[list[Support]] = [[] for _ in claims]
        claim_vecs = self.embedder.encode(clean)
        for text in texts:
            sentences, vecs = self._sentences(text)
            sims = claim_vecs @ vecs.T
            if self._cross is not None:
                pairs = [(c, s) for c in clean for s in sentences]
                sims = np.asarray(self._cross.predict(pairs), dtype=np.float32).reshape(len(clean), len(sentences))
            for i in range(len(clean)):
                j = int(np.argmax(sims[i]))
                out[i].append(Support(round(float(sims[i, j]), 4), sentences[j]))
        return out

    def verdict(self, score: float) -> Verdict:
        if score >= self.settings.supported:
            return "supported"
        if score >= self.settings.weak:
            return "weak"
        return "unsupported"

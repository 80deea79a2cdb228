"""Citation verification: does a cited abstract support the claim, contradict it, or not address it?

Two scorers (``verify.scorer``):

- ``verifier`` (default): a 3-way CrossEncoder trained here (``models/verifier``, ``pubmed-rag train verifier``)
  reads the claim against the abstract sentences most similar to it (``verify.candidates``) and gives each
  verdict a probability;
- ``cosine`` (fallback, no weights): the similarity of the claim to its best-matching sentence; it measures topic,
  not agreement, so it never says "contradicted" by itself.

With ``verify.rules`` the agreement rules (``rag.agreement``: direction, negation, numbers) run on the sentences that
address the claim; a rule that fires makes the verdict "contradicted", with the reason in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ingest.embedder import Embedder
from pubmed_rag.settings import VerifySettings
from pubmed_rag.threads import few_threads
from rag.agreement import disagreement
from rag.citations import split_sentences, strip_markers
from rag.cross_encoder import check_weights, load_cross_encoder
from rag.injection import is_instruction

Label = Literal["supported", "contradicted", "not enough information"]
LABELS: tuple[Label, ...] = ("supported", "contradicted", "not enough information")
Verdict = Literal["supported", "weak", "unsupported"]  # the similarity-only verdict of ``verdict(score)``
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "verifier"
FALLBACK = "verify.scorer cosine (PUBMED_RAG_VERIFY__SCORER=cosine)"
# Up to this many texts (or pairs) are embedded or verified on one thread (pubmed_rag.threads): one thread costs
# little when the machine is idle and much less than two when it is busy.
SMALL_CALL = 512


class VerifierError(RuntimeError):
    """The trained verifier cannot be loaded; the message names the cosine fallback setting."""


@dataclass
class Support:
    """How one abstract bears on one claim."""

    score: float  # cosine similarity of the claim to its best-matching sentence of the abstract
    sentence: str  # the sentence the verdict rests on
    label: Label = "not enough information"
    probability: float = 0.0  # probability of ``label``
    probabilities: dict[str, float] = field(default_factory=dict)  # every label's probability
    reason: str = ""  # why, in words (the rule that fired, or what the verifier read)
    sentences: list[str] = field(default_factory=list)  # the deciding sentence(s), strongest first
    rule: str = ""  # the agreement rule that fired: direction, polarity, numbers, or ""
    scorer: str = "cosine"  # which scorer decided: verifier or cosine

    @property
    def strength(self) -> float:
        """How strongly the abstract supports the claim, for ranking: the verifier's P(supported), else the
        similarity; a contradiction found by a rule counts as no support (0)."""
        value = self.probabilities.get("supported", 0.0) if self.scorer == "verifier" else self.score
        return min(value, 0.0) if self.rule else value


def verifier_path(settings: VerifySettings) -> Path:
    return Path(settings.model) if settings.model else SHIPPED


@lru_cache(maxsize=2)
def load_verifier(path: str) -> Any:
    """The trained CrossEncoder at ``path``, checked against its recorded checksum; loads offline."""
    folder = Path(path)
    check_weights(folder, what="verifier", error=VerifierError,
                  remedy=f"Rebuild them with `pubmed-rag train verifier`, or use {FALLBACK}.")
    model = load_cross_encoder(folder, what="the verifier", error=VerifierError,
                               remedy=f"rebuild it with `pubmed-rag train verifier`, or use {FALLBACK}.")
    labels = [model.transformers_model.config.id2label[i] for i in range(len(LABELS))]
    if labels != list(LABELS):
        raise VerifierError(f"the model at {folder} has labels {labels}, not {list(LABELS)}; use {FALLBACK}.")
    return model


class SupportScorer:
    """Scores (claim, abstract) pairs; abstract sentences and their embeddings are cached per text."""

    def __init__(self, embedder: Embedder, settings: VerifySettings, model: Any = None) -> None:
        self.embedder = embedder
        self.settings = settings
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}
        self._pairs: dict[tuple[str, str], np.ndarray] = {}  # (claim, sentence) -> verifier logits
        self._claims: dict[str, np.ndarray] = {}
        self.model = model
        if model is None and settings.scorer == "verifier":
            self.model = load_verifier(str(verifier_path(settings)))

    def _embed_texts(self, texts: list[str]) -> None:
        """Split and embed the sentences of every text not cached yet, in one call."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if not todo:
            return
        # Sentences that address the model are not evidence and cannot support a claim.
        split = [[s for s in split_sentences(t) if not is_instruction(s)] or [t] for t in todo]
        flat = [s for sentences in split for s in sentences]
        with few_threads(len(flat), SMALL_CALL):
            vectors = self.embedder.encode(flat)
        offsets = np.cumsum([0] + [len(sentences) for sentences in split])
        for n, (text, sentences) in enumerate(zip(todo, split, strict=True)):
            self._cache[text] = (sentences, vectors[offsets[n]:offsets[n + 1]])

    def _claim_vectors(self, claims: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(c for c in claims if c not in self._claims))
        if todo:
            if len(self._claims) > 20_000:
                self._claims.clear()
            with few_threads(len(todo), SMALL_CALL):
                self._claims.update(zip(todo, self.embedder.encode(todo), strict=True))
        return np.stack([self._claims[c] for c in claims])

    def score_matrix(self, claims: list[str], texts: list[str]) -> list[list[Support]]:
        """``result[i][j]``: how ``texts[j]`` bears on ``claims[i]`` (label, probability, deciding sentences)."""
        if not claims or not texts:
            return [[] for _ in claims]
        flat = self.score_pairs([(c, t) for c in claims for t in texts])
        return [flat[i * len(texts):(i + 1) * len(texts)] for i in range(len(claims))]

    def score_pairs(self, pairs: list[tuple[str, str]]) -> list[Support]:
        """How each ``(claim, text)`` pair's text bears on its claim; all pairs in one batched pass."""
        if not pairs:
            return []
        clean = [strip_markers(c) for c, _ in pairs]
        claim_vecs = self._claim_vectors(clean)
        self._embed_texts([t for _, t in pairs])
        parsed = [self._cache[t] for _, t in pairs]
        sims = [vecs @ claim_vecs[n] for n, (_, vecs) in enumerate(parsed)]
        candidates = [[int(c) for c in np.argsort(-sim, kind="stable")[:self.settings.candidates]] for sim in sims]
        probs = self._predict([(clean[n], [parsed[n][0][c] for c in cand]) for n, cand in enumerate(candidates)]) \
            if self.model is not None else None
        out = []
        for n, (sentences, _) in enumerate(parsed):
            cand = candidates[n]
            score = round(float(sims[n][cand[0]]), 4)
            if probs is None:
                out.append(self._cosine(clean[n], sentences, cand, sims[n], score))
            else:
                out.append(self._verified(clean[n], sentences, cand, probs[n], score))
        return out

    def variant(self, **changes: Any) -> SupportScorer:
        """A scorer with some settings changed that shares this one's caches (and model, where both use it)."""
        settings = self.settings.model_copy(update=changes)
        model = self.model if settings.scorer == "verifier" else None
        other = SupportScorer(self.embedder, settings, model=model)
        other._cache, other._pairs, other._claims = self._cache, self._pairs, self._claims
        return other

    def check(self, claim: str, text: str) -> Support:
        """How ``text`` bears on ``claim``."""
        return self.score_matrix([claim], [text])[0][0]

    def verdict(self, score: float | Support) -> str:
        """A ``Support``'s label; for a bare similarity, the similarity-only verdict (supported / weak /
        unsupported at ``verify.supported`` / ``verify.weak``), kept for callers that only have a score."""
        if isinstance(score, Support):
            return score.label
        if score >= self.settings.supported:
            return "supported"
        if score >= self.settings.weak:
            return "weak"
        return "unsupported"

    # -- the two scorers -------------------------------------------------------------------------------------------
    def _predict(self, groups: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """Verifier probabilities for each (claim, candidate sentences): arrays of candidates x labels; the pairs
        not seen before go through the model in one batched call."""
        pairs = [(claim, sentence) for claim, sentences in groups for sentence in sentences]
        todo = sorted({p for p in pairs if p not in self._pairs}, key=lambda p: (len(p[0]) + len(p[1]), p))
        if todo:
            if len(self._pairs) > 100_000:
                self._pairs.clear()
            with few_threads(len(todo), SMALL_CALL):
                predicted = self.model.predict(todo, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
            self._pairs.update(zip(todo, np.asarray(predicted, dtype=np.float64), strict=True))
        logits = np.stack([self._pairs[p] for p in pairs])
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        out, n = [], 0
        for _, sentences in groups:
            out.append(probs[n:n + len(sentences)])
            n += len(sentences)
        return out

    def _verified(self, claim: str, sentences: list[str], cand: list[int], probs: np.ndarray,
                  score: float) -> Support:
        cfg = self.settings
        addressed = probs[:, 0] + probs[:, 1]  # the sentence speaks to the claim, one way or the other
        p_support, p_contra = float(probs[:, 0].max()), float(probs[:, 1].max())
        if score < cfg.min_similarity:
            # Similarity tells "not about this" better than the small model does (docs/evaluation.md).
            p = {name: round(float(probs[0, n]), 4) for n, name in enumerate(LABELS)}
            reason = (f"the abstract does not address the claim: best similarity {score:.2f} is below "
                      f"verify.min_similarity {cfg.min_similarity:.2f}")
            return _support(score, [sentences[cand[0]]], "not enough information", 1 - max(p_support, p_contra), p,
                            reason, "", "verifier")
        # The strongest single sentence decides, for contradiction as for support.
        if p_contra >= cfg.contradicted and p_contra >= p_support:
            top, label, prob = int(np.argmax(probs[:, 1])), "contradicted", p_contra
            reason = f"the verifier reads this sentence as contradicting the claim (p={p_contra:.2f})"
        elif p_support >= cfg.supported_probability:
            top, label, prob = int(np.argmax(probs[:, 0])), "supported", p_support
            reason = f"the verifier reads this sentence as supporting the claim (p={p_support:.2f})"
        else:
            top = int(np.argmax(addressed))
            label, prob = "not enough information", 1 - max(p_support, p_contra)
            reason = (f"no sentence clearly addresses the claim (best: supports p={p_support:.2f}, "
                      f"contradicts p={p_contra:.2f})")
        rule = ""
        if label != "contradicted" and cfg.rules:
            for n in np.argsort(-addressed, kind="stable"):
                if addressed[n] < 0.5:
                    break
                fired = disagreement(claim, sentences[cand[n]], " ".join(sentences))
                if fired:
                    # A rule decides only on a sentence that addresses the claim: its probability is that of
                    # "addressed" (supports + contradicts), which the rule then reads as contradiction.
                    top, label, prob, (rule, reason) = int(n), "contradicted", float(addressed[n]), fired
                    break
        p = {name: round(float(probs[top, n]), 4) for n, name in enumerate(LABELS)}
        others = [n for n in np.argsort(-addressed, kind="stable") if n != top and addressed[n] >= 0.5]
        return _support(score, [sentences[cand[n]] for n in [top, *others]], label, prob, p, reason, rule, "verifier")

    def _cosine(self, claim: str, sentences: list[str], cand: list[int], sims: np.ndarray, score: float) -> Support:
        cfg = self.settings
        # Uncalibrated: a logistic of the similarity, 0.5 at the supported threshold.
        p_support = float(1 / (1 + np.exp(-(score - cfg.supported) / 0.04)))
        p = {"supported": round(p_support, 4), "contradicted": 0.0, "not enough information": round(1 - p_support, 4)}
        close = [c for c in cand if sims[c] >= cfg.weak]
        if cfg.rules:
            for c in close:
                fired = disagreement(claim, sentences[c], " ".join(sentences))
                if fired:
                    return _support(score, [sentences[c]], "contradicted", p_support, p, fired[1], fired[0])
        if score >= cfg.supported:
            reason = f"similarity {score:.2f} to this sentence is at or above verify.supported {cfg.supported:.2f}"
            deciding = [sentences[cand[0]]] + [sentences[c] for c in cand[1:] if sims[c] >= cfg.supported]
            return _support(score, deciding, "supported", p_support, p, reason, "")
        reason = f"best similarity {score:.2f} is below verify.supported {cfg.supported:.2f}"
        return _support(score, [sentences[cand[0]]], "not enough information", 1 - p_support, p, reason, "")


def _support(score: float, deciding: list[str], label: Label, prob: float, p: dict[str, float], reason: str,
             rule: str, scorer: str = "cosine") -> Support:
    return Support(score=score, sentence=deciding[0], label=label, probability=round(prob, 4), probabilities=p,
                   reason=reason, sentences=deciding, rule=rule, scorer=scorer)

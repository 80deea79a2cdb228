"""Citation verification: does a cited abstract support the claim, contradict it, or not address it?

Two scorers (``verify.scorer``):

- ``verifier``: a 3-way CrossEncoder trained here (``models/verifier``, ``pubmed-rag train verifier``) reads the
  claim against the ``verify.candidates`` abstract sentences most similar to it, together and in the abstract's
  order, and gives each verdict a probability; it runs on ONNX Runtime or PyTorch (``verify.backend``, same
  verdicts);
- ``cosine`` (no weights): the similarity of the claim to its best-matching sentence; it measures topic, not
  agreement, so it never says "contradicted" by itself.

With ``verify.rules`` the agreement rules (``rag.agreement``: direction, negation, numbers) run on the sentences that
address the claim; a rule that fires makes the verdict "contradicted", with the reason in words. An abstract's
sentences and their vectors come from the index where ingest stored them (``ingest.sentence_store``), else they are
split and embedded here. Every verdict in the product (``check``, the bottom-line check, the app's badges) comes
from one ``SupportScorer`` and the ``verify`` settings.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ingest.embedder import Embedder
from ingest.sentence_store import SentenceStore
from pubmed_rag.sentences import evidence_sentences
from pubmed_rag.settings import PathSettings, VerifySettings
from pubmed_rag.threads import few_threads
from rag.agreement import disagreement
from rag.citations import strip_markers
from rag.cross_encoder import check_weights, load_cross_encoder

log = logging.getLogger(__name__)
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


@lru_cache(maxsize=4)
def scoring_model(path: str, backend: str, cache_dir: str) -> Any:
    """What scores pairs: the verifier at ``path`` on ONNX Runtime (``backend`` auto or onnx) or PyTorch."""
    model = load_verifier(path)
    if backend == "torch":
        return model
    from ingest.onnx_embedder import OnnxUnavailable
    from rag.onnx_cross_encoder import load_onnx

    record = json.loads((Path(path) / "training.json").read_text(encoding="utf-8")) \
        if (Path(path) / "training.json").is_file() else {}
    try:
        return load_onnx(model, "verifier", record.get("sha256", "") or _digest(Path(path)), Path(cache_dir))
    except OnnxUnavailable as exc:
        if backend == "onnx":
            raise VerifierError(f"{exc.reason}; use verify.backend torch (PUBMED_RAG_VERIFY__BACKEND=torch)") from exc
        log.info("verifier on PyTorch: %s", exc.reason)
        return model


def _digest(folder: Path) -> str:
    import hashlib

    return hashlib.sha256((folder / "trained.safetensors").read_bytes()).hexdigest() \
        if (folder / "trained.safetensors").is_file() else str(folder.resolve())


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

    def __init__(self, embedder: Embedder, settings: VerifySettings, model: Any = None,
                 cache_dir: Path | None = None, sentences: SentenceStore | None = None) -> None:
        self.embedder = embedder
        self.settings = settings
        self.sentences = sentences  # the index's stored sentence vectors (ingest.sentence_store), if any
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}
        self._pairs: dict[tuple[str, str], np.ndarray] = {}  # (claim, sentence) -> verifier logits
        self._claims: dict[str, np.ndarray] = {}
        self.model = model
        if model is None and settings.scorer == "verifier":
            cache = cache_dir if cache_dir is not None else PathSettings().cache_dir
            self.model = scoring_model(str(verifier_path(settings)), settings.backend, str(cache))

    def _embed_texts(self, texts: list[str]) -> None:
        """The sentences and vectors of every text not cached yet: stored at ingest where the index has them, else
        split and embedded here in one call (rounded to float16 as stored ones are, so verdicts are the same)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if not todo:
            return
        if self.sentences is not None:
            self._cache.update({t: (sentences, vectors.astype(np.float32))
                                for t, (sentences, vectors) in self.sentences.get_many(todo).items()})
            todo = [t for t in todo if t not in self._cache]
            if not todo:
                return
        # Sentences that address the model are not evidence and cannot support a claim.
        split = [evidence_sentences(t) for t in todo]
        flat = [s for sentences in split for s in sentences]
        with few_threads(len(flat), SMALL_CALL):
            vectors = np.asarray(self.embedder.encode(flat)).astype(np.float16).astype(np.float32)
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
        probs = self._predict([(clean[n], reading(parsed[n][0], cand)) for n, cand in enumerate(candidates)]) \
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
        other = SupportScorer(self.embedder, settings, model=model, sentences=self.sentences)
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
    def _predict(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Verifier probabilities (pairs x labels) for (claim, text) pairs; the pairs not seen before go through the
        model in one batched call, shortest first (less padding)."""
        todo = sorted({p for p in pairs if p not in self._pairs}, key=lambda p: (len(p[0]) + len(p[1]), p))
        if todo:
            if len(self._pairs) > 100_000:
                self._pairs.clear()
            # ONNX Runtime's threads do not spin while idle, so its multi-threaded session costs little on a busy
            # machine and halves a pair's time on an idle one (docs/evaluation.md); PyTorch keeps one thread for
            # small calls (pubmed_rag.threads).
            onnx = getattr(self.model, "backend", "") == "onnx"
            with nullcontext() if onnx else few_threads(len(todo), SMALL_CALL):
                predicted = self.model.predict(todo, batch_size=16, show_progress_bar=False, convert_to_numpy=True)
            self._pairs.update(zip(todo, np.asarray(predicted, dtype=np.float64), strict=True))
        logits = np.stack([self._pairs[p] for p in pairs])
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return probs / probs.sum(axis=1, keepdims=True)

    def _verified(self, claim: str, sentences: list[str], cand: list[int], probs: np.ndarray,
                  score: float) -> Support:
        """The verdict on the candidate sentences read together (``probs``: one row of ``_predict``)."""
        cfg = self.settings
        p = {name: round(float(probs[n]), 4) for n, name in enumerate(LABELS)}
        p_support, p_contra = float(probs[0]), float(probs[1])
        deciding = [sentences[c] for c in cand]  # most similar first
        if score < cfg.min_similarity:
            # Similarity tells "not about this" better than the small model does (docs/evaluation.md).
            reason = (f"the abstract does not address the claim: best similarity {score:.2f} is below "
                      f"verify.min_similarity {cfg.min_similarity:.2f}")
            return _support(score, deciding[:1], "not enough information", 1 - max(p_support, p_contra), p, reason,
                            "", "verifier")
        if p_contra >= cfg.contradicted and p_contra >= p_support:
            label, prob = "contradicted", p_contra
            reason = f"the verifier reads these sentences as contradicting the claim (p={p_contra:.2f})"
        elif p_support >= cfg.supported_probability:
            label, prob = "supported", p_support
            reason = f"the verifier reads these sentences as supporting the claim (p={p_support:.2f})"
        else:
            label, prob = "not enough information", float(probs[2])
            reason = (f"the sentences most similar to the claim do not settle it (supports p={p_support:.2f}, "
                      f"contradicts p={p_contra:.2f})")
        if label != "contradicted" and cfg.rules and p_support + p_contra >= 0.5:
            # The rules read only text the model says addresses the claim, one sentence at a time.
            for c in cand:
                fired = disagreement(claim, sentences[c], " ".join(sentences))
                if fired:
                    deciding = [sentences[c]] + [d for d in deciding if d != sentences[c]]
                    return _support(score, deciding, "contradicted", p_support + p_contra, p, fired[1], fired[0],
                                    "verifier")
        return _support(score, deciding, label, prob, p, reason, "", "verifier")

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


def reading(sentences: list[str], chosen: list[int]) -> str:
    """What the verifier reads: the chosen sentences in the abstract's own order."""
    return " ".join(sentences[i] for i in sorted(set(chosen)))


def _support(score: float, deciding: list[str], label: Label, prob: float, p: dict[str, float], reason: str,
             rule: str, scorer: str = "cosine") -> Support:
    return Support(score=score, sentence=deciding[0], label=label, probability=round(prob, 4), probabilities=p,
                   reason=reason, sentences=deciding, rule=rule, scorer=scorer)

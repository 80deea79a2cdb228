"""Citation verification: does a cited abstract support the claim, contradict it, or not address it?

Two scorers (``verify.scorer``):

- ``verifier``: a 3-way CrossEncoder trained here (``pubmed_rag/models/verifier``, ``pubmed-rag train verifier``) reads the
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

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ingest.embedder import Embedder
from ingest.sentence_store import SentenceStore
from pubmed_rag.checksums import sha256_file
from pubmed_rag.lru import LRUCache
from pubmed_rag.paths import MODELS
from pubmed_rag.sentences import evidence_sentences
from pubmed_rag.settings import Settings, VerifySettings
from pubmed_rag.threads import few_threads
from rag.agreement import disagreement
from rag.citations import strip_markers
from rag.cross_encoder import TRAINED_FILE, check_weights, load_cross_encoder

log = logging.getLogger(__name__)
Label = Literal["supported", "contradicted", "not enough information"]
LABELS: tuple[Label, ...] = ("supported", "contradicted", "not enough information")
Verdict = Literal["supported", "weak", "unsupported"]  # the similarity-only verdict of ``verdict(score)``
SHIPPED = MODELS / "verifier"
FALLBACK = "verify.scorer cosine (PUBMED_RAG_VERIFY__SCORER=cosine)"
REMEDY = f"Rebuild them with `pubmed-rag train verifier`, or use {FALLBACK}."
# Up to this many texts are embedded on one thread where the runtime can do that for the call alone (ONNX Runtime's
# one-thread session, pubmed_rag.threads): one thread costs little when the machine is idle and much less than two
# when it is busy.
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
def scoring_model(path: str, backend: str, cache_dir: str) -> tuple[Any, str]:
    """What scores pairs: the verifier at ``path`` on ONNX Runtime (``backend`` auto or onnx) or PyTorch, and a
    warning for the user when ``auto`` had to fall back to PyTorch ("" otherwise)."""
    model = load_verifier(path, cache_dir)
    if backend == "torch":
        return model, ""
    from ingest.onnx_embedder import OnnxUnavailable
    from rag.onnx_cross_encoder import load_onnx

    try:  # the export is keyed by the weights' checksum (load_verifier has just checked them)
        return load_onnx(model, "verifier", sha256_file(Path(path) / TRAINED_FILE), Path(cache_dir)), ""
    except OnnxUnavailable as exc:
        if backend == "onnx":
            raise VerifierError(f"{exc.reason}; use verify.backend torch (PUBMED_RAG_VERIFY__BACKEND=torch)") from exc
        warning = f"the verifier runs on PyTorch, slower: {exc.reason}"
        log.warning(warning)
        return model, warning


@lru_cache(maxsize=2)
def load_verifier(path: str, cache_dir: str = "") -> Any:
    """The trained CrossEncoder at ``path``, checked against its recorded checksum; loads offline. ``cache_dir``
    (default ``paths.cache_dir``) holds its rebuilt weights (``rag.cross_encoder.rebuilt_model``)."""
    folder = Path(path)
    check_weights(folder, what="verifier", error=VerifierError, remedy=REMEDY)
    model = load_cross_encoder(folder, what="the verifier", error=VerifierError, cache_dir=cache_dir or None,
                               remedy=f"rebuild it with `pubmed-rag train verifier`, or use {FALLBACK}.")
    labels = [model.transformers_model.config.id2label[i] for i in range(len(LABELS))]
    if labels != list(LABELS):
        raise VerifierError(f"the model at {folder} has labels {labels}, not {list(LABELS)}; use {FALLBACK}.")
    return model


class SupportScorer:
    """Scores (claim, abstract) pairs. Abstract sentences and their vectors, claim vectors and verifier outputs are
    kept between calls in bounded LRU caches (``verify.cache_mb``, ``verify.cache_items``); one scorer may serve
    many threads at once. ``warnings``: fallbacks the user should see (the verifier on PyTorch)."""

    def __init__(self, embedder: Embedder, settings: VerifySettings, model: Any = None,
                 cache_dir: Path | None = None, sentences: SentenceStore | None = None) -> None:
        self.embedder = embedder
        self.settings = settings
        self.sentences = sentences  # the index's stored sentence vectors (ingest.sentence_store), if any
        budget, items = int(settings.cache_mb * 2**20), settings.cache_items
        # Most of the budget holds abstracts' sentences and vectors; claims and verifier outputs are small.
        self._texts: LRUCache[str, tuple[list[str], np.ndarray]] = LRUCache(items, budget * 3 // 4, _text_bytes)
        self._pairs: LRUCache[tuple[str, str], np.ndarray] = LRUCache(items, budget // 8, _pair_bytes)
        self._claims: LRUCache[str, np.ndarray] = LRUCache(items, budget // 8, _claim_bytes)
        self.model = model
        self._warnings: list[str] = []
        if model is None and settings.scorer == "verifier":
            cache = cache_dir if cache_dir is not None else Settings.load().paths.cache_dir
            self.model, warning = scoring_model(str(verifier_path(settings)), settings.backend, str(cache))
            self._warnings += [warning] if warning else []

    @property
    def warnings(self) -> list[str]:
        """Fallbacks in effect that the user should see: the verifier or the embedder on PyTorch."""
        return list(dict.fromkeys([*self._warnings, *getattr(self.embedder, "warnings", [])]))

    def _embed_texts(self, texts: list[str]) -> dict[str, tuple[list[str], np.ndarray]]:
        """The sentences and vectors of each text: cached, else stored at ingest where the index has them, else
        split and embedded here in one call (rounded to float16 as stored ones are, so verdicts are the same)."""
        wanted = list(dict.fromkeys(texts))
        found = self._texts.get_many(wanted)
        todo = [t for t in wanted if t not in found]
        if todo and self.sentences is not None:
            stored = {t: (sentences, vectors.astype(np.float32))
                      for t, (sentences, vectors) in self.sentences.get_many(todo).items()}
            found.update(stored)
            self._texts.update(stored.items())
            todo = [t for t in todo if t not in found]
        if todo:
            # Sentences that address the model are not evidence and cannot support a claim.
            split = [evidence_sentences(t) for t in todo]
            flat = [s for sentences in split for s in sentences]
            with few_threads(len(flat), SMALL_CALL):
                vectors = np.asarray(self.embedder.encode(flat)).astype(np.float16).astype(np.float32)
            offsets = np.cumsum([0] + [len(sentences) for sentences in split])
            for n, (text, sentences) in enumerate(zip(todo, split, strict=True)):
                # A copy: a view would keep the whole batch alive and the cache's byte count would not bound memory.
                found[text] = (sentences, vectors[offsets[n]:offsets[n + 1]].copy())
                self._texts.put(text, found[text])
        return found

    def _claim_vectors(self, claims: list[str]) -> np.ndarray:
        found = self._claims.get_many(claims)
        todo = list(dict.fromkeys(c for c in claims if c not in found))
        if todo:
            with few_threads(len(todo), SMALL_CALL):
                encoded = dict(zip(todo, (v.copy() for v in self.embedder.encode(todo)), strict=True))
            found.update(encoded)
            self._claims.update(encoded.items())
        return np.stack([found[c] for c in claims])

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
        texts = self._embed_texts([t for _, t in pairs])
        parsed = [texts[t] for _, t in pairs]
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
        other._texts, other._pairs, other._claims = self._texts, self._pairs, self._claims
        other._warnings = self._warnings
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
        found = self._pairs.get_many(pairs)
        todo = sorted({p for p in pairs if p not in found}, key=lambda p: (len(p[0]) + len(p[1]), p))
        if todo:
            # ONNX Runtime's threads do not spin while idle, so its multi-threaded session costs little on a busy
            # machine and halves a pair's time on an idle one (docs/evaluation.md).
            predicted = self.model.predict(todo, batch_size=16, show_progress_bar=False, convert_to_numpy=True)
            computed = dict(zip(todo, (row.copy() for row in np.asarray(predicted, dtype=np.float64)), strict=True))
            found.update(computed)
            self._pairs.update(computed.items())
        logits = np.stack([found[p] for p in pairs])
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


def _text_bytes(text: str, entry: tuple[list[str], np.ndarray]) -> int:
    return len(text) + sum(len(s) + 64 for s in entry[0]) + entry[1].nbytes + 200


def _pair_bytes(pair: tuple[str, str], logits: np.ndarray) -> int:
    return len(pair[0]) + len(pair[1]) + logits.nbytes + 300


def _claim_bytes(claim: str, vector: np.ndarray) -> int:
    return len(claim) + np.asarray(vector).nbytes + 200


def reading(sentences: list[str], chosen: list[int]) -> str:
    """What the verifier reads: the chosen sentences in the abstract's own order."""
    return " ".join(sentences[i] for i in sorted(set(chosen)))


def _support(score: float, deciding: list[str], label: Label, prob: float, p: dict[str, float], reason: str,
             rule: str, scorer: str = "cosine") -> Support:
    return Support(score=score, sentence=deciding[0], label=label, probability=round(prob, 4), probabilities=p,
                   reason=reason, sentences=deciding, rule=rule, scorer=scorer)

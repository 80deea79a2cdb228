"""Key findings: for each evidence record, the sentence(s) of its abstract that answer the question, quoted verbatim.

A sentence's score is its relevance to the question (a ``SentenceScorer``: bi-encoder cosine by default) plus a
lexical term (the share of the question's words that the sentence contains, each word weighted by how few of the
abstract's sentences contain it, so "exacerbations" counts for more than "asthma" in an asthma trial) plus a
prior for the section it comes from (conclusions and results above background, objective and methods; the last
sentences of an unlabelled abstract count as conclusions) plus a bonus for finding cues (effect sizes, confidence
intervals, p-values, "significantly", "did not"). Weights: ``AnswerSettings``, tuned on BioASQ (docs/evaluation.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ingest.embedder import Embedder
from pubmed_rag.lru import LRUCache
from pubmed_rag.records import section_category
from pubmed_rag.sentences import is_instruction, split_sentences
from pubmed_rag.settings import AnswerSettings
from pubmed_rag.types import Evidence, Finding

# An all-capitals label opening a section inside plain text ("BACKGROUND: ...", "MATERIALS AND METHODS: ...").
_INLINE_LABEL = re.compile(r"(?:^|(?<=[.!?]\s)|(?<=[.!?]))\s*([A-Z][A-Z0-9 ,/&()'\-]{2,60}):\s+")
_CUES = re.compile(
    r"\b(?:significant(?:ly)?|did not|does not|no (?:significant )?(?:difference|effect|association|benefit)|"
    r"(?:odds|hazard|risk|rate) ratio|relative risk|95\s?% ?CI|confidence interval|associated with|"
    r"(?:reduc|increas|decreas|improv|lower|higher)\w*|(?:non-?)?inferior|superior|effective|efficacy)\b"
    r"|\b(?:OR|RR|HR|CI|AUC)\b|[pP]\s?[<=>≤]\s?0?\.\d|\d\s?%",
)
_SAMPLE = re.compile(
    r"\b[nN]\s?=\s?(\d{1,3}(?:,\d{3})+|\d+)\b"
    r"|\b(\d{1,3}(?:,\d{3})+|\d+)\s+(?:\w+\s+){0,2}?(?:patients|participants|subjects|adults|children|infants|"
    r"women|men|individuals|persons|people|volunteers|cases|mothers|pregnancies|residents|respondents|smokers|"
    r"veterans|students|athletes|eyes|neonates|newborns)\b"
)


_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_STOP = frozenset(
    "a an and are as at be by can do does for from has have how in is it its of on or that the their there these "
    "this to was were what when which who why will with whether than not no yes any all more most use used using "
    "effect effects patients study studies".split()
)


def terms(text: str) -> set[str]:
    """Content words, crudely stemmed (first 6 letters: 'exacerbations' and 'exacerbation' meet)."""
    return {w[:6] for w in _TOKEN.findall(text.lower()) if w not in _STOP and len(w) > 1}


def echoes(question: str, sentence: str) -> bool:
    """Whether ``sentence`` is made of the question's own words (at most one in five of its words is new)."""
    words, asked = terms(sentence), terms(question)
    return bool(words) and len(words - asked) <= max(1, len(words) // 5)


def lexical_overlap(question: str, sentences: list[str]) -> np.ndarray:
    """Share of the question's words in each sentence, weighted by rarity among these sentences (in [0, 1])."""
    return _lexical(question, sentences)[0]


def _lexical(question: str, sentences: list[str]) -> tuple[np.ndarray, list[set[str]]]:
    """The overlap scores, and per sentence the asked words it contains that not every sentence contains."""
    words = [terms(s) for s in sentences]
    n = len(sentences)
    asked = [w for w in terms(question) if any(w in s for s in words)]  # words the abstract never uses: no signal
    weight = {w: float(np.log(n / sum(w in s for s in words))) for w in asked}
    total = sum(weight.values())
    if total <= 0:  # no asked word, or every asked word in every sentence
        return np.zeros(n), [set() for _ in sentences]
    covered = [{w for w in asked if w in s and weight[w] > 0} for s in words]
    return np.array([sum(weight[w] for w in c) / total for c in covered]), covered


@dataclass
class AbstractSentence:
    text: str
    category: str  # BACKGROUND | OBJECTIVE | METHODS | RESULTS | CONCLUSIONS | "" (unknown)
    position: int  # index among the abstract's sentences


@runtime_checkable
class SentenceScorer(Protocol):
    """Plug-in point: relevance of each sentence to a question (higher is more relevant)."""

    def score(self, question: str, sentences: list[str]) -> np.ndarray: ...


class CosineSentenceScorer:
    """Cosine similarity of bi-encoder embeddings; sentence vectors are kept in a bounded LRU cache (the same
    abstracts come back), safe to share between threads."""

    def __init__(self, embedder: Embedder, cache_size: int = 20000, cache_mb: float = 64) -> None:
        self.embedder = embedder
        self._cache: LRUCache[str, np.ndarray] = LRUCache(
            cache_size, int(cache_mb * 2**20), lambda text, vec: len(text) + vec.nbytes + 200)

    def score(self, question: str, sentences: list[str]) -> np.ndarray:
        found = self._cache.get_many(sentences)
        missing = list(dict.fromkeys(s for s in sentences if s not in found))
        # Small batches, longest first: a batch pads to its longest sentence, and one batch of 30 sentences padded
        # to the longest took 0.56 s against 0.22 s in batches of 4 (same vectors; sample index, docs/evaluation.md).
        vectors = self.embedder.encode([question, *missing], batch_size=4)
        for text, vec in zip(missing, vectors[1:], strict=True):
            found[text] = vec.copy()  # not a view: the cache's byte count must bound the memory it keeps
            self._cache.put(text, found[text])
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        return np.stack([found[s] for s in sentences]) @ vectors[0]


def abstract_sentences(sections: list[tuple[str, str, str]]) -> list[AbstractSentence]:
    """Sentences of an abstract given as ``(category, label, text)`` sections, each with its section category.

    Unlabelled text is searched for inline "LABEL:" prefixes, which are removed from the sentences. When no
    sentence has a category, the last two count as conclusions (where unstructured abstracts put them).
    """
    out: list[AbstractSentence] = []
    for category, _label, text in sections:
        pieces = [(category, text)] if category else _split_inline(text)
        for cat, piece in pieces:
            for sentence in split_sentences(piece):
                if not is_instruction(sentence):
                    out.append(AbstractSentence(sentence, cat, len(out)))
    if out and not any(s.category for s in out):
        for s in out[-2:]:
            s.category = "CONCLUSIONS"
    return out


def _split_inline(text: str) -> list[tuple[str, str]]:
    """Split plain text at inline labels that name a known section ("RESULTS:"); other capitals stay text."""
    cuts = [(m, section_category(m.group(1))) for m in _INLINE_LABEL.finditer(text)]
    cuts = [(m, c) for m, c in cuts if c]
    if not cuts:
        return [("", text)]
    head = text[: cuts[0][0].start()]
    out = [("", head)] if head.strip() else []
    for (m, category), nxt in zip(cuts, [*cuts[1:], None], strict=True):
        out.append((category, text[m.end() : nxt[0].start() if nxt else len(text)]))
    return out


def sample_size(text: str) -> int | None:
    """The largest participant count the abstract states ("n = 1,277", "3849 patients"), if any."""
    sizes = []
    for m in _SAMPLE.finditer(text):
        value = int((m.group(1) or m.group(2)).replace(",", ""))
        if 5 <= value <= 50_000_000 and not (1900 <= value <= 2100 and m.group(2)):
            sizes.append(value)
    return max(sizes) if sizes else None


def has_cue(sentence: str) -> bool:
    return bool(_CUES.search(sentence))


class FindingExtractor:
    """Chooses each evidence record's key finding sentence(s)."""

    def __init__(self, scorer: SentenceScorer, settings: AnswerSettings, min_relevance: float | None = None,
                 echo_threshold: float | None = None) -> None:
        """``min_relevance`` and ``echo_threshold`` are on the scorer's scale (default: the cosine-scale
        ``answer.min_relevance`` and ``answer.echo_threshold``; ``echo_threshold`` inf: only the question-words test
        finds restatements)."""
        self.scorer = scorer
        self.settings = settings
        self.warnings: list[str] = []  # fallbacks the user should see (cosine instead of the reranker)
        self.min_relevance = settings.min_relevance if min_relevance is None else min_relevance
        self.echo_threshold = settings.echo_threshold if echo_threshold is None else echo_threshold

    def prior(self, sentence: AbstractSentence) -> float:
        s = self.settings
        return {"CONCLUSIONS": s.conclusions_prior, "RESULTS": s.results_prior}.get(sentence.category, 0.0)

    def extract(self, question: str, evidence: list[Evidence]) -> list[Finding]:
        """Findings ordered strongest first; records whose best sentence is not relevant enough are left out.

        Only each record's ``answer.candidates`` best sentences by the cheap terms (words, section, cues) are
        embedded: encoding every sentence of five abstracts costs ~1 s on two cores, the candidates a fraction."""
        cfg = self.settings
        records = []
        for ev in evidence:
            sentences = abstract_sentences([tuple(s) for s in ev.sections] or [("", "", ev.abstract)])
            lexical, covered = _lexical(question, [s.text for s in sentences])
            cheap = np.array([cfg.lexical_weight * lex + self.prior(s) + (cfg.cue_weight if has_cue(s.text) else 0.0)
                              for lex, s in zip(lexical, sentences, strict=True)])
            keep = sorted(int(i) for i in np.argsort(-cheap, kind="stable")[: cfg.candidates])
            records.append((ev, [sentences[i] for i in keep], cheap[keep], [covered[i] for i in keep]))
        flat = [s.text for _, sentences, _, _ in records for s in sentences]
        relevance = self.scorer.score(question, flat) if flat else np.zeros(0)
        findings: list[Finding] = []
        offset = 0
        for ev, sentences, cheap, covered in records:
            rel = relevance[offset : offset + len(sentences)]
            offset += len(sentences)
            if not sentences:
                continue
            # A sentence that restates the question answers nothing: it is not quoted.
            restating = np.array([echoes(question, s.text) or float(r) >= self.echo_threshold
                                  for s, r in zip(sentences, rel, strict=True)])
            scores = np.where(restating, -np.inf, rel + cheap)
            if np.all(restating):
                continue
            order = [int(i) for i in np.argsort(-scores, kind="stable") if not restating[i]]
            best = order[0]
            if float(rel[best]) < self.min_relevance:
                continue
            chosen = [best]
            if cfg.max_sentences > 1:
                # A second sentence when it is nearly as strong and covers question words the best one lacks
                # ("severe exacerbations" beside a conclusion about symptom control).
                second = next((i for i in order[1:] if covered[i] - covered[best]), None)
                if (second is not None and scores[second] >= scores[best] - cfg.second_margin
                        and float(rel[second]) >= self.min_relevance):
                    chosen.append(second)
            chosen.sort()  # in the abstract's own order
            findings.append(Finding(
                number=ev.number, pmid=ev.pmid, sentences=[sentences[i].text for i in chosen], best=chosen.index(best),
                section=sentences[best].category, design=ev.grade_label, year=ev.year,
                sample_size=sample_size(ev.abstract), relevance=round(float(rel[best]), 4),
                score=round(float(scores[best]), 4), title=ev.title,
            ))
        findings.sort(key=lambda f: -f.score)
        return findings

"""Question -> evidence -> key findings -> checked bottom line.

``Asker.stream`` yields events as they happen: the evidence, the key findings (quoted sentences, shown at once), each
generated piece of the bottom line, then the final ``Answer``; ``Asker.ask`` returns the final ``Answer`` alone.

The evidence speaks first, in its own words: a 135M-parameter model cannot write reliable medical prose, so it only
writes a short bottom line from the findings, and only sentences that pass ``rag.bottom_line``'s checks are shown.
``answer.mode = "generated"`` keeps the previous design (the model writes the whole answer from the passages, then
citations are mapped and verified) for comparison.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ingest.embedder import Embedder, load_embedder
from ingest.index import open_index
from pubmed_rag.sentences import split_sentences
from pubmed_rag.settings import DEFAULT_EMBEDDER, Settings
from pubmed_rag.types import ABSTAIN_TEXT, Answer, Citation, Evidence, Sentence, Timings
from rag.bottom_line import STOP, BottomLineChecker, build_prompt
from rag.bottom_line import SYSTEM as BOTTOM_LINE_SYSTEM
from rag.citations import markers, strip_markers
from rag.findings import FindingExtractor, SentenceScorer
from rag.generation import Generator, load_generator
from rag.phi import redact
from rag.prompt import SYSTEM, build_user_prompt
from rag.retrieve import Filters, IndexRetriever
from rag.sentence_scorers import finding_extractor
from rag.verify import SupportScorer


class QuestionError(ValueError):
    """The question cannot be asked as given."""


@dataclass
class Event:
    """One step of an answer as it happens: ``evidence`` (list of Evidence), ``findings`` (list of Finding),
    ``token`` (a piece of generated text) and, last, ``answer`` (the Answer)."""

    kind: Literal["evidence", "findings", "token", "answer"]
    data: Any


class Asker:
    """Answers questions from one index. Models load lazily, once."""

    def __init__(self, settings: Settings | None = None, index: str | None = None,
                 generator: Generator | None = None, embedder: Embedder | None = None,
                 sentence_scorer: SentenceScorer | None = None) -> None:
        self.settings = settings or Settings.load()
        self.index = open_index(self.settings, index)
        configured = self.settings.embedding.model
        if configured != DEFAULT_EMBEDDER and configured != self.index.embedding_model:
            raise QuestionError(
                f"index {self.index.name!r} was built with embedding model {self.index.embedding_model!r}, but "
                f"{configured!r} is configured; ask with the index's model or rebuild the index."
            )
        self.embedder = embedder or load_embedder(self.index.embedding_model, self.index.max_tokens,
                                                   self.settings.embedding.backend, self.settings.paths.cache_dir,
                                                   self.settings.allow_network)
        self.retriever = IndexRetriever(self.index, self.embedder, self.settings.retrieval,
                                        cache_dir=self.settings.paths.cache_dir)
        self.scorer = SupportScorer(self.embedder, self.settings.verify, cache_dir=self.settings.paths.cache_dir,
                                     sentences=self.index.sentences)
        self.findings = (FindingExtractor(sentence_scorer, self.settings.answer) if sentence_scorer
                         else finding_extractor(self.settings.answer, self.embedder, self.settings.paths.cache_dir))
        self._generator = generator

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = load_generator(self.settings.generator, self.settings.paths.cache_dir)
        return self._generator

    def validate(self, question: str) -> str:
        """The question stripped, or ``QuestionError`` saying what is wrong with it."""
        question = (question or "").strip()
        if not question:
            raise QuestionError("the question is empty; type a clinical question.")
        limit = self.settings.generator.max_question_chars
        if len(question) > limit:
            raise QuestionError(f"the question is {len(question)} characters long; the limit is {limit} "
                                "(generator.max_question_chars).")
        return question

    def ask(self, question: str, **kwargs: Any) -> Answer:
        """The final answer (``stream``'s last event); keyword arguments as for ``stream``."""
        answer = None
        for event in self.stream(question, **kwargs):
            if event.kind == "answer":
                answer = event.data
        assert answer is not None
        return answer

    def stream(self, question: str, k: int | None = None, filters: Filters | None = None,
               retriever: str | None = None, max_new_tokens: int | None = None,
               mode: str | None = None, bottom_line: bool | None = None) -> Iterator[Event]:
        """Answer ``question`` from the top ``k`` records, yielding each step as it happens (see ``Event``).

        ``filters`` restrict retrieval; ``retriever`` (hybrid, dense, bm25), ``max_new_tokens``, ``mode``
        (evidence-first, generated) and ``bottom_line`` (False: findings only) override the settings for this
        question. The answer carries the fallbacks in effect (``warnings``).
        """
        for event in self._stream(question, k, filters, retriever, max_new_tokens, mode, bottom_line):
            if event.kind == "answer":
                event.data.warnings = self.warnings
            yield event

    @property
    def warnings(self) -> list[str]:
        """Fallbacks in effect that the user should see: a trained model that could not be used (reranker,
        generator weights) or a slower backend (PyTorch instead of ONNX Runtime), each said once."""
        found = [*getattr(self.embedder, "warnings", []), *self.retriever.warnings, *self.findings.warnings,
                 *self.scorer.warnings]
        if self._generator is not None and getattr(self._generator, "warning", ""):
            found.append(self._generator.warning)
        return list(dict.fromkeys(found))

    def _stream(self, question: str, k: int | None, filters: Filters | None, retriever: str | None,
                max_new_tokens: int | None, mode: str | None, bottom_line: bool | None) -> Iterator[Event]:
        started = time.perf_counter()
        question = self.validate(question)
        k = k or self.settings.retrieval.k
        mode = mode or self.settings.answer.mode
        retrieval = retriever or self.settings.retrieval.retriever
        evidence = self.retriever.search(question, k, filters, retrieval)
        timings = Timings(retrieve=time.perf_counter() - started)
        yield Event("evidence", evidence)
        base = dict(question=question, evidence=evidence, model=self.generator_name, index=self.index.name,
                    retriever=retrieval, mode=mode, timings=timings)

        if not evidence:
            yield Event("answer", self._abstain(base, started, "no evidence matched"))
            return
        if mode == "generated":  # the previous design abstains on the record-level similarity
            relevance = self.relevance(question, evidence)
            if relevance < self.settings.verify.abstain_below:
                reason = (f"best evidence similarity {relevance:.2f} is below verify.abstain_below "
                          f"{self.settings.verify.abstain_below:.2f}")
                yield Event("answer", self._abstain(base, started, reason))
                return
            yield from self._generated(question, evidence, base, started, max_new_tokens)
            return

        found_at = time.perf_counter()
        findings = self.findings.extract(question, evidence)
        timings.findings = time.perf_counter() - found_at
        yield Event("findings", findings)
        if not findings:
            name = "answer.reranker_min_relevance" if self.settings.answer.sentence_scorer == "reranker" else \
                "answer.min_relevance"
            reason = f"no evidence sentence reaches {name} {self.findings.min_relevance:.2f}"
            yield Event("answer", self._abstain(base, started, reason))
            return
        answer = Answer(**base, answer="", findings=findings)
        if self.settings.answer.bottom_line if bottom_line is None else bottom_line:
            shown = findings[: self.settings.answer.prompt_findings]
            sent_question = self._outgoing(question, answer)
            text = yield from self._generate(BOTTOM_LINE_SYSTEM, build_prompt(sent_question, shown), timings, started,
                                             max_new_tokens or self.settings.answer.bottom_line_tokens, STOP,
                                             citations=[f.number for f in shown])
            answer.model = self.generator_name  # the generator loads lazily: its name is known now
            verify_start = time.perf_counter()
            checker = BottomLineChecker(self.embedder, self.scorer, self.settings.answer, self.settings.verify,
                                        allow_yes_no=self.settings.generator.backend != "local")
            answer.bottom_line, answer.dropped = checker.check(question, text, shown)
            answer.answer = " ".join(s.text for s in answer.bottom_line)
            answer.new_tokens = self._count_tokens(text)
            timings.verify = time.perf_counter() - verify_start
        timings.total = time.perf_counter() - started
        yield Event("answer", answer)

    @property
    def generator_name(self) -> str:
        return self._generator.name if self._generator is not None else self.settings.generator.model

    def _abstain(self, base: dict, started: float, reason: str) -> Answer:
        base["timings"].total = time.perf_counter() - started
        return Answer(**base, answer=ABSTAIN_TEXT, abstained=True, abstain_reason=reason)

    def _outgoing(self, question: str, answer: Answer) -> str:
        """The question as it may leave the machine: redacted for any backend but the local one."""
        if self.settings.generator.backend == "local":
            return question
        sent, answer.redactions = redact(question)
        return sent

    def _generate(self, system: str, user: str, timings: Timings, started: float, max_new_tokens: int,
                  stop: tuple[str, ...] = (), citations: list[int] | None = None):
        """Stream the generator's reply as ``token`` events; return the whole text. ``citations``: the markers the
        reply may use (passed to the generator only when given: the previous design's prompt has no findings)."""
        pieces: list[str] = []
        gen_start = time.perf_counter()
        extra = {"citations": citations} if citations else {}
        for piece in self.generator.stream(system, user, max_new_tokens, stop=stop, **extra):
            if timings.first_token is None and piece:
                timings.first_token = time.perf_counter() - started
            pieces.append(piece)
            yield Event("token", piece)
        timings.generate = time.perf_counter() - gen_start
        text = "".join(pieces)
        for marker in stop:  # a backend may return the piece that contained the stop string
            text = text.split(marker)[0]
        return text.strip()

    def _generated(self, question: str, evidence: list[Evidence], base: dict, started: float,
                   max_new_tokens: int | None) -> Iterator[Event]:
        """The previous design: the model answers from the passages; citations are then mapped and verified."""
        timings: Timings = base["timings"]
        answer = Answer(**base, answer="")
        user = build_user_prompt(self._outgoing(question, answer), evidence, self.settings.generator.passage_chars)
        text = yield from self._generate(SYSTEM, user, timings, started,
                                         max_new_tokens or self.settings.generator.max_new_tokens)
        answer.model = self.generator_name
        verify_start = time.perf_counter()
        sentences, removed = self.cite(text, evidence)
        timings.verify = time.perf_counter() - verify_start
        timings.total = time.perf_counter() - started
        answer.bottom_line, answer.removed_citations = sentences, removed
        answer.answer = " ".join(s.text for s in sentences)
        answer.new_tokens = self._count_tokens(text)
        failing = [s for s in sentences if s.verdict in ("uncited", "unsupported")]
        if not sentences or len(failing) * 2 >= len(sentences):
            answer.abstained = True
            answer.abstain_reason = (f"{len(failing)} of {len(sentences)} generated sentences are not supported by "
                                     "the evidence") if sentences else "the model produced no answer"
            answer.answer = ABSTAIN_TEXT
            answer.bottom_line = []
        yield Event("answer", answer)

    def relevance(self, question: str, evidence: list[Evidence]) -> float:
        """Best similarity of the question to an evidence record (title and passage): the abstention signal."""
        if not evidence:
            return 0.0
        vecs = self.embedder.encode([question] + [f"{e.title}\n{e.passage}" for e in evidence])
        return float(np.max(vecs[1:] @ vecs[0]))

    def _count_tokens(self, text: str) -> int:
        tokenizer = getattr(self.generator, "tokenizer", None)
        if tokenizer is None:
            return len(text.split())
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def _distinct(self, sentences: list[str]) -> list[str]:
        """Drop a cut-off last sentence and near-repeats: small models loop, and a claim counts once."""
        if sentences and not re.search(r"[.!?\]\)\"']$", sentences[-1]):
            sentences = sentences[:-1]
        if len(sentences) < 2:
            return sentences
        vecs = self.embedder.encode([strip_markers(s) for s in sentences])
        kept: list[int] = []
        for i in range(len(sentences)):
            if all(float(vecs[i] @ vecs[j]) < 0.92 for j in kept):
                kept.append(i)
        return [sentences[i] for i in kept]

    def cite(self, text: str, evidence: list[Evidence]) -> tuple[list[Sentence], list[int]]:
        """Generated mode: map ``[n]`` markers to evidence, drop invalid ones, attach evidence to uncited
        sentences, verify all."""
        by_number = {e.number: e for e in evidence}
        raw = self._distinct(split_sentences(text))
        support = self.scorer.score_matrix(raw, [e.abstract or e.passage for e in evidence])
        cfg = self.settings.verify
        sentences, removed_all = [], []
        for i, sentence in enumerate(raw):
            cited = markers(sentence)
            removed = [n for n in cited if n not in by_number]
            removed_all.extend(removed)
            best = int(np.argmax([s.score for s in support[i]]))
            citations = []
            for n in (n for n in cited if n in by_number):
                s = support[i][n - 1]
                verdict = self.scorer.verdict(s.score)
                better = evidence[best].number if (verdict != "supported" and best != n - 1
                                                   and support[i][best].score >= cfg.supported) else None
                citations.append(Citation(number=n, pmid=by_number[n].pmid, support=s.score, verdict=verdict,
                                          evidence_sentence=s.sentence, suggested=better))
            if not citations and support[i][best].score >= cfg.attribute_threshold:
                s = support[i][best]
                citations.append(Citation(number=evidence[best].number, pmid=evidence[best].pmid, attributed=True,
                                          support=s.score, verdict=self.scorer.verdict(s.score),
                                          evidence_sentence=s.sentence))
            sentences.append(Sentence(text=sentence, citations=citations, removed_citations=removed))
        return sentences, list(dict.fromkeys(removed_all))

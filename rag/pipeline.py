"""Question -> evidence -> streamed answer -> citations mapped, attached and verified.

``Asker.stream`` yields events as they happen (the evidence, each generated piece of text, the final answer), so the
CLI and the UI show the answer as it is written; ``Asker.ask`` returns the final ``Answer`` alone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ingest.embedder import Embedder, load_embedder
from ingest.index import LoadedIndex
from pubmed_rag.settings import DEFAULT_EMBEDDER, Settings
from rag.answer import ABSTAIN_TEXT, Answer, Citation, Sentence, Timings
from rag.citations import markers, split_sentences, strip_markers
from rag.generator import Generator, load_generator
from rag.phi import redact
from rag.prompt import SYSTEM, build_user_prompt
from rag.retrieve import Evidence, Filters, IndexRetriever
from rag.verify import SupportScorer


class QuestionError(ValueError):
    """The question cannot be asked as given."""


@dataclass
class Event:
    kind: str  # "evidence" | "token" | "answer"
    data: Any


class Asker:
    """Answers questions from one index. Models load lazily, once."""

    def __init__(self, settings: Settings | None = None, index: str | None = None,
                 generator: Generator | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings or Settings.load()
        self.index = LoadedIndex(self.settings.paths.index_dir, index or self.settings.paths.default_index)
        configured = self.settings.embedding.model
        if configured != DEFAULT_EMBEDDER and configured != self.index.embedding_model:
            raise QuestionError(
                f"index {self.index.name!r} was built with embedding model {self.index.embedding_model!r}, but "
                f"{configured!r} is configured; ask with the index's model or rebuild the index."
            )
        self.embedder = embedder or load_embedder(self.index.embedding_model, self.index.max_tokens)
        self.retriever = IndexRetriever(self.index, self.embedder, self.settings.retrieval)
        self.scorer = SupportScorer(self.embedder, self.settings.verify)
        self._generator = generator

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = load_generator(self.settings.generator, self.settings.paths.cache_dir)
        return self._generator

    def validate(self, question: str) -> str:
        question = (question or "").strip()
        if not question:
            raise QuestionError("the question is empty; type a clinical question.")
        limit = self.settings.generator.max_question_chars
        if len(question) > limit:
            raise QuestionError(f"the question is {len(question)} characters long; the limit is {limit} "
                                "(generator.max_question_chars).")
        return question

    def ask(self, question: str, **kwargs: Any) -> Answer:
        answer = None
        for event in self.stream(question, **kwargs):
            if event.kind == "answer":
                answer = event.data
        assert answer is not None
        return answer

    def stream(self, question: str, k: int | None = None, filters: Filters | None = None,
               retriever: str | None = None, max_new_tokens: int | None = None) -> Iterator[Event]:
        started = time.perf_counter()
        question = self.validate(question)
        k = k or self.settings.retrieval.k
        mode = retriever or self.settings.retrieval.retriever
        evidence = self.retriever.search(question, k, filters, mode)
        timings = Timings(retrieve=time.perf_counter() - started)
        yield Event("evidence", evidence)
        base = dict(question=question, evidence=evidence, model=self.settings.generator.model,
                    index=self.index.name, retriever=mode)

        relevance = self._relevance(question, evidence)
        if not evidence or relevance < self.settings.verify.abstain_below:
            timings.total = time.perf_counter() - started
            reason = (f"best evidence similarity {relevance:.2f} is below verify.abstain_below "
                      f"{self.settings.verify.abstain_below:.2f}") if evidence else "no evidence matched"
            yield Event("answer", Answer(**base, answer=ABSTAIN_TEXT, sentences=[Sentence(text=ABSTAIN_TEXT)],
                                         abstained=True, abstain_reason=reason, timings=timings))
            return

        sent_question, redactions = question, []
        if self.settings.generator.backend != "local":  # text is about to leave the machine
            sent_question, redactions = redact(question)
        user = build_user_prompt(sent_question, evidence, self.settings.generator.passage_chars)
        pieces: list[str] = []
        gen_start = time.perf_counter()
        for piece in self.generator.stream(SYSTEM, user, max_new_tokens or self.settings.generator.max_new_tokens):
            if timings.first_token is None and piece:
                timings.first_token = time.perf_counter() - started
            pieces.append(piece)
            yield Event("token", piece)
        timings.generate = time.perf_counter() - gen_start
        text = "".join(pieces).strip()

        verify_start = time.perf_counter()
        sentences, removed = self.cite(text, evidence)
        timings.verify = time.perf_counter() - verify_start
        timings.total = time.perf_counter() - started
        answer = Answer(**base, answer=" ".join(s.text for s in sentences), sentences=sentences,
                        removed_citations=removed, timings=timings, redactions=redactions,
                        new_tokens=self._count_tokens(text))
        failing = [s for s in sentences if s.verdict in ("uncited", "unsupported")]
        if not sentences or len(failing) * 2 >= len(sentences):
            answer.abstained = True
            answer.abstain_reason = (f"{len(failing)} of {len(sentences)} generated sentences are not supported by "
                                     "the evidence") if sentences else "the model produced no answer"
            answer.answer = ABSTAIN_TEXT
            answer.sentences = [Sentence(text=ABSTAIN_TEXT)]
        yield Event("answer", answer)

    def _relevance(self, question: str, evidence: list[Evidence]) -> float:
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
        """Map ``[n]`` markers to evidence, drop invalid ones, attach evidence to uncited sentences, verify all."""
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

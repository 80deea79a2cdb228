"""Shared result types: what retrieval, the answer pipeline, the checker and the front ends pass between them."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

_MARKERS = re.compile(r"\s?\[\d+(?:\s*[-,–]\s*\d+)*\]")
ABSTAIN_TEXT = "The indexed evidence does not answer this question."
Verdict = Literal["supported", "weak", "unsupported"]
SentenceVerdict = Literal["supported", "weak", "unsupported", "uncited"]
DropReason = Literal["uncited", "unsupported", "contradicted", "echoes the question", "is a question", "polarity",
                     "numbers", "direction", "prompt formatting", "yes/no from the local model", "cut off", "repeated"]


class Filters(BaseModel):
    """Restrictions applied inside retrieval (the record store turns them into SQL: ``RecordStore.where``)."""

    year_min: int | None = None
    year_max: int | None = None
    publication_types: list[str] = []
    exclude_retracted: bool = False
    mesh: str | None = None
    exclude_pmids: list[str] = []

    @property
    def active(self) -> bool:
        """Whether anything is filtered."""
        return any((self.year_min is not None, self.year_max is not None, self.publication_types,
                    self.exclude_retracted, self.mesh, self.exclude_pmids))


class Evidence(BaseModel):
    """One retrieved record, numbered as it is cited ([1], [2], ...)."""

    number: int
    pmid: str
    title: str
    journal: str
    year: int | None
    authors: list[str]
    publication_types: list[str]
    mesh: list[str]
    doi: str
    retracted: bool
    retraction_notice: bool
    grade: int
    grade_label: str
    score: float
    passage: str
    chunk_id: int
    abstract: str
    url: str
    sections: list[tuple[str, str, str]] = Field(
        [], description="(category, label, text) per abstract section; category BACKGROUND .. CONCLUSIONS or ''.")

    @property
    def authors_short(self) -> str:
        if not self.authors:
            return ""
        return self.authors[0] + (" et al." if len(self.authors) > 1 else "")

    @property
    def display_title(self) -> str:
        """The title, or for a record without one the first words of its abstract (section label removed)."""
        if self.title:
            return self.title
        text = next((s[2] for s in self.sections if s[2].strip()), self.abstract)
        text = re.sub(r"^[A-Z][A-Z /&-]{2,40}:\s+", "", text.strip())
        words = text.split()
        return " ".join(words[:12]) + (" ..." if len(words) > 12 else "") if words else "(no title or abstract)"


class Finding(BaseModel):
    """The sentence(s) of one evidence record's abstract that answer the question, quoted verbatim."""

    number: int = Field(description="Evidence number, [n].")
    pmid: str
    sentences: list[str] = Field(description="In the abstract's order.")
    best: int = Field(0, description="Index in ``sentences`` of the one that scored highest.")
    section: str = Field("", description="Section category of the best sentence (RESULTS, CONCLUSIONS, ...).")
    design: str = Field("", description="Study design badge.")
    year: int | None = None
    sample_size: int | None = Field(None, description="Largest participant count the abstract states.")
    relevance: float = Field(description="Similarity of the best sentence to the question.")
    score: float = Field(description="Relevance plus section prior and finding-cue bonus: the ranking key.")
    title: str = ""

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def best_sentence(self) -> str:
        return self.sentences[self.best]


class Redaction(BaseModel):
    """Something removed from the question before it left the machine."""

    kind: str
    text: str


class Citation(BaseModel):
    number: int = Field(description="Evidence number, [n].")
    pmid: str
    attributed: bool = Field(False, description="Attached by the system (the model did not cite it).")
    support: float = Field(description="Support score of the claim against the cited text.")
    verdict: Verdict
    evidence_sentence: str = Field("", description="The sentence that best matches the claim.")
    suggested: int | None = Field(None, description="A better-supporting evidence number, if any.")


class Sentence(BaseModel):
    text: str
    citations: list[Citation] = []
    removed_citations: list[int] = Field([], description="[n] markers that pointed outside the evidence.")

    @property
    def uncited(self) -> bool:
        return not self.citations

    @property
    def verdict(self) -> SentenceVerdict:
        if not self.citations:
            return "uncited"
        order = ["supported", "weak", "unsupported"]
        return min((c.verdict for c in self.citations), key=order.index)


class Dropped(BaseModel):
    """A generated sentence that failed a check: kept for auditing, never shown as part of the answer."""

    text: str
    reason: DropReason
    detail: str = ""


class Timings(BaseModel):
    retrieve: float = 0.0
    findings: float = 0.0
    first_token: float | None = None
    generate: float = 0.0
    verify: float = 0.0
    total: float = 0.0


class Answer(BaseModel):
    """One typed result for the CLI (``--json``), the UI and the API."""

    question: str
    answer: str = Field(description="The bottom line as plain text (empty when no sentence survived).")
    bottom_line: list[Sentence] = Field([], description="Generated sentences that passed every check.")
    findings: list[Finding] = Field([], description="Key findings, strongest first.")
    dropped: list[Dropped] = Field([], description="Generated sentences that failed a check, with the reason.")
    evidence: list[Evidence]
    model: str
    index: str
    retriever: str
    mode: str = "evidence-first"
    abstained: bool = False
    abstain_reason: str = ""
    removed_citations: list[int] = []
    redactions: list[Redaction] = Field([], description="What was removed from the question before it was sent.")
    warnings: list[str] = Field([], description="Problems the reader should know of (the trained generator could "
                                "not be loaded and the base model wrote the bottom line, say).")
    new_tokens: int = 0
    timings: Timings = Field(default_factory=Timings)

    def summary(self, findings: int) -> str:
        """What counts as the answer's text: the bottom line, then the best sentence of the ``findings`` strongest
        findings (the rest are listed below it). Empty when abstained."""
        if self.abstained:
            return ""
        parts = [s.text for s in self.bottom_line] + [f.best_sentence for f in self.findings[:findings]]
        return " ".join(_MARKERS.sub("", " ".join(parts)).split())

    def cited_pmids(self) -> list[str]:
        pmids = [c.pmid for s in self.bottom_line for c in s.citations] + [f.pmid for f in self.findings]
        return list(dict.fromkeys(pmids))

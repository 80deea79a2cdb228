"""The answer object: one typed result for the CLI (``--json``), the UI and the API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from rag.phi import Redaction
from rag.retrieve import Evidence

ABSTAIN_TEXT = "The indexed evidence does not answer this question."


class Citation(BaseModel):
    number: int = Field(description="Evidence number, [n].")
    pmid: str
    attributed: bool = Field(False, description="Attached by the system (the model did not cite it).")
    support: float = Field(description="Similarity of the claim to its best-matching sentence of the abstract.")
    verdict: str = Field(description="supported | weak | unsupported")
    evidence_sentence: str = Field("", description="The abstract sentence that best matches the claim.")
    suggested: int | None = Field(None, description="A better-supporting evidence number, if any.")


class Sentence(BaseModel):
    text: str
    citations: list[Citation] = []
    removed_citations: list[int] = Field([], description="[n] markers that pointed outside the evidence.")

    @property
    def uncited(self) -> bool:
        return not self.citations

    @property
    def verdict(self) -> str:
        if not self.citations:
            return "uncited"
        order = ["supported", "weak", "unsupported"]
        return min((c.verdict for c in self.citations), key=order.index)


class Timings(BaseModel):
    retrieve: float = 0.0
    first_token: float | None = None
    generate: float = 0.0
    verify: float = 0.0
    total: float = 0.0


class Answer(BaseModel):
    question: str
    answer: str
    sentences: list[Sentence]
    evidence: list[Evidence]
    model: str
    index: str
    retriever: str
    abstained: bool = False
    abstain_reason: str = ""
    removed_citations: list[int] = []
    redactions: list[Redaction] = Field([], description="What was removed from the question before it was sent.")
    new_tokens: int = 0
    timings: Timings = Field(default_factory=Timings)

    def cited_pmids(self) -> list[str]:
        return list(dict.fromkeys(c.pmid for s in self.sentences for c in s.citations))

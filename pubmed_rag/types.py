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


# -- case analysis (rag.case) ---------------------------------------------------------------------------------------
CaseKind = Literal["finding", "condition", "drug", "measurement"]
ProblemCategory = Literal["known condition", "active finding", "medication", "patient factor"]


class CaseMention(BaseModel):
    """One concept read in a (redacted) case, with the case's words and how ConText read them."""

    concept: str = Field(description="Preferred name (HPO term, Orphanet disease, MeSH heading or chemical).")
    concept_id: str = Field(description="HP:..., ORPHA:..., MESH:<heading> or CHEM:<name>.")
    kind: CaseKind
    source: str = Field(description="Where the concept comes from: HPO, Orphanet, index MeSH, index chemicals, "
                                    "HPO via synonym table, reference ranges.")
    words: str = Field(description="The words of the case it was read from.")
    start: int = Field(description="Character offset in the redacted case text.")
    section: str = Field("", description="medspaCy section category ('' when the case has no headers).")
    negated: bool = False
    historical: bool = False
    family: bool = False
    hypothetical: bool = False
    uncertain: bool = False
    detail: str = Field("", description="For measurements: the rule applied and its cited source.")

    @property
    def positive(self) -> bool:
        """Present in this patient now or before: not negated, not about a relative, not hypothetical."""
        return not (self.negated or self.family or self.hypothetical)


class PatientFactors(BaseModel):
    """What changes which evidence applies to this patient."""

    age_years: float | None = None
    age_group: str = Field("", description="MeSH age-group heading (Infant, Child, Adult, Aged, ...).")
    sex: Literal["female", "male", ""] = ""
    pregnant: bool = False
    kidney_impairment: bool = False
    liver_impairment: bool = False
    smoking: Literal["current", "former", "never", ""] = ""
    allergies: list[str] = []
    medications: list[str] = []
    words: dict[str, str] = Field({}, description="Factor -> the words of the case it was read from.")


class Problem(BaseModel):
    """One entry of the problem list."""

    name: str
    category: ProblemCategory
    concept_id: str = ""
    words: list[str] = Field(description="The words of the case it came from.")
    source: str = ""
    uncertain: bool = Field(False, description="Stated as possible or suspected in the case.")


class Quote(BaseModel):
    """A sentence quoted verbatim from a cited abstract."""

    number: int = Field(description="Reference number, [n], in ``CaseReport.references``.")
    pmid: str
    sentence: str


class Candidate(BaseModel):
    """A diagnosis the retrieved literature ties to the case's findings: a suggestion, not a diagnosis."""

    name: str
    concept_id: str
    score: float = Field(description="Findings explained, each weighted by its best record's rank, plus a small "
                                     "bonus for every further record that ties them.")
    explains: list[str] = Field(description="Positive findings that a record naming the candidate also names.")
    unexplained: list[str] = Field(description="Positive findings no retrieved record ties to the candidate.")
    records: list[int] = Field(description="Reference numbers of the records naming the candidate.")
    quotes: list[Quote] = []


class ProblemEvidence(BaseModel):
    """Evidence-first findings for one problem: what the abstracts say, quoted and cited."""

    problem: str
    purpose: Literal["diagnosis", "treatment", "adverse effects and interactions"]
    query: str = Field(description="The question the index was searched with (the redacted case's words only).")
    findings: list[Finding] = Field([], description="Key findings; ``number`` is the reference number.")
    boosted_by: list[str] = Field([], description="Patient factors added to the search (age group, pregnancy, ...).")


class CaseReport(BaseModel):
    """The case analysis: the CLI's ``--json``, the app's report. Built from the redacted text only."""

    text: str = Field(description="The case as analysed: identifiers replaced by [KIND] markers.")
    redactions: list[Redaction] = Field([], description="One per identifier removed: its kind, and as ``text`` only the "
                                                        "marker that replaced it (the value itself is never kept).")
    mentions: list[CaseMention] = []
    negated: list[CaseMention] = Field([], description="Negated, family, hypothetical mentions: never used as "
                                                       "positive evidence.")
    factors: PatientFactors = Field(default_factory=PatientFactors)
    problems: list[Problem] = []
    differential: list[Candidate] = []
    evidence: list[ProblemEvidence] = []
    references: list[Evidence] = Field([], description="Every cited record, numbered as cited.")
    index: str = ""
    notice: str = ("Suggestions from the indexed literature for a health professional, not a diagnosis or a "
                   "treatment plan.")
    timings: dict[str, float] = {}
    warnings: list[str] = Field([], description="Fallbacks in effect (a trained model that could not be used, a slower "
                                "backend), as for answers.")

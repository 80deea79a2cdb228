"""Shared records passed between ingest, indexes, rag and ui."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
# PubMed renamed "Retraction of Publication" to "Retraction Notice" in 2025; both mark a notice, not a retracted paper.
RETRACTION_NOTICE_TYPES = frozenset({"Retraction of Publication", "Retraction Notice"})


@dataclass
class Record:
    """One PubMed citation, as parsed from any source."""

    pmid: str
    title: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)  # (label, text); label "" if unlabelled
    journal: str = ""
    year: int | None = None
    authors: list[str] = field(default_factory=list)
    mesh: list[str] = field(default_factory=list)
    publication_types: list[str] = field(default_factory=list)
    doi: str = ""
    language: str = ""
    version: int = 1
    retracted: bool = False
    source: str = ""
    # NLM's category of each section (BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS), parallel to
    # ``sections``; empty when the source gives none (then ``section_category`` reads the label).
    categories: list[str] = field(default_factory=list)
    # The citation's ChemicalList (substance names), read at ingest: the case reader's drug vocabulary.
    chemicals: list[str] = field(default_factory=list)

    @property
    def abstract(self) -> str:
        """The abstract as one string, section labels kept (``METHODS: ...``)."""
        return " ".join(f"{label}: {text}" if label else text for label, text in self.sections if text)

    @property
    def is_retraction_notice(self) -> bool:
        return not RETRACTION_NOTICE_TYPES.isdisjoint(self.publication_types)

    @property
    def title_only(self) -> bool:
        return not self.abstract.strip()

    @property
    def url(self) -> str:
        return PUBMED_URL.format(pmid=self.pmid)

    def content_hash(self) -> str:
        """Hash of everything stored; an unchanged record is not embedded again."""
        payload = json.dumps(self.to_dict(exclude_source=True), sort_keys=True, ensure_ascii=False)
        return hashlib.sha1(payload.encode("utf-8")).hexdigest()

    def to_dict(self, exclude_source: bool = False) -> dict:
        data = asdict(self)
        data["sections"] = [list(s) for s in self.sections]
        if not self.categories:  # records without categories keep the form (and content hash) they always had
            data.pop("categories")
        if not self.chemicals:  # likewise for records without a chemical list
            data.pop("chemicals")
        if exclude_source:
            data.pop("source")
        return data

    def labelled_sections(self) -> list[tuple[str, str, str]]:
        """``(category, label, text)`` per section; category is one of ``SECTION_CATEGORIES`` or ``""``."""
        out = []
        for i, (label, text) in enumerate(self.sections):
            nlm = self.categories[i] if i < len(self.categories) else ""
            out.append((section_category(label, nlm), label, text))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        data = dict(data)
        data["sections"] = [tuple(s) for s in data.get("sections", [])]
        return cls(**data)


SECTION_CATEGORIES = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
# Label words -> NLM category, for labels that come without one (MEDLINE text, JSONL "LABEL:" prefixes, old
# indexes). Checked in order: "BACKGROUND AND AIMS" is an objective, "PATIENTS AND METHODS" a method.
_LABEL_WORDS = (
    ("CONCLUSIONS", ("CONCLUSION", "INTERPRETATION", "IMPLICATION", "DISCUSSION", "SIGNIFICANCE", "SUMMARY")),
    ("RESULTS", ("RESULT", "FINDING", "OUTCOMES")),
    ("OBJECTIVE", ("OBJECTIVE", "AIM", "PURPOSE", "GOAL", "QUESTION", "HYPOTHES")),
    ("METHODS", ("METHOD", "DESIGN", "SETTING", "PATIENT", "PARTICIPANT", "SUBJECT", "INTERVENTION", "MEASURE",
                 "MATERIAL", "PROCEDURE", "SAMPLE", "POPULATION", "ANALYSIS", "DATA SOURCE", "STUDY SELECTION")),
    ("BACKGROUND", ("BACKGROUND", "INTRODUCTION", "CONTEXT", "RATIONALE", "TRIAL REGISTRATION", "FUNDING")),
)


def section_category(label: str, nlm_category: str = "") -> str:
    """The NLM category of a section: its ``NlmCategory`` when given, else read from the label's words."""
    nlm = nlm_category.strip().upper()
    if nlm in SECTION_CATEGORIES:
        return nlm
    upper = label.upper()
    for category, words in _LABEL_WORDS:
        if any(w in upper for w in words):
            return category
    return ""


@dataclass(frozen=True)
class Deletion:
    """A ``DeleteCitation`` entry: these PMIDs must leave the index."""

    pmids: tuple[str, ...]
    source: str = ""


@dataclass
class Chunk:
    """A passage of one record: the unit that is embedded and searched."""

    chunk_id: int
    pmid: str
    text: str
    start: int  # character offsets into the record's abstract
    end: int


@dataclass(frozen=True)
class Skipped:
    """An input item that could not become a record, with the reason shown to the user."""

    source: str
    reason: str


class IngestError(Exception):
    """Bad input: the message names the file (and record) and what to do."""

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
        if exclude_source:
            data.pop("source")
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        data = dict(data)
        data["sections"] = [tuple(s) for s in data.get("sections", [])]
        return cls(**data)


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

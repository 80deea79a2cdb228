"""Pick the parser for an input file: PubMed XML, MEDLINE text or JSON Lines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ingest.jsonl import parse_jsonl_file
from ingest.medline_text import parse_medline_file
from ingest.pubmed_xml import Item, open_maybe_gzip, parse_xml_file
from pubmed_rag.records import Deletion, IngestError, Record, Skipped


def detect_format(path: Path) -> str:
    """Return ``"xml"``, ``"medline"`` or ``"jsonl"`` from the file's first bytes."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty.")
    try:
        with open_maybe_gzip(path) as handle:
            head = handle.read(4096).lstrip()
    except (OSError, EOFError) as exc:
        raise IngestError(f"{path}: cannot read the file ({exc}).") from exc
    if head.startswith(b"<"):
        return "xml"
    if head.startswith(b"{"):
        return "jsonl"
    if head.startswith(b"PMID-"):
        return "medline"
    raise IngestError(
        f"{path}: unrecognised format; expected PubMed XML, MEDLINE text (starting 'PMID- ') or JSON Lines."
    )


def parse_file(path: Path) -> Iterator[Item]:
    """Yield records, deletions and skipped items from any supported file."""
    fmt = detect_format(path)
    parser = {"xml": parse_xml_file, "medline": parse_medline_file, "jsonl": parse_jsonl_file}[fmt]
    yield from parser(Path(path))


class Source(Protocol):
    """Anything that yields PubMed items: a file, a fetched E-utilities result, an upload."""

    kind: str
    name: str

    def items(self) -> Iterator[Record | Deletion | Skipped]: ...


@dataclass
class FileSource:
    """A PubMed XML, MEDLINE text or JSONL file."""

    path: Path
    kind: str = "file"

    @property
    def name(self) -> str:
        return str(self.path)

    def items(self) -> Iterator[Record | Deletion | Skipped]:
        return parse_file(self.path)


@dataclass
class RecordsSource:
    """Records already in memory (tests, evaluation corpora)."""

    name: str
    records: Iterable[Record | Deletion | Skipped]
    kind: str = "records"

    def items(self) -> Iterator[Record | Deletion | Skipped]:
        return iter(self.records)

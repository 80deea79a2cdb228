"""MEDLINE text format (``PMID- ``, ``TI  - ``, ``AB  - `` ...) through ``Bio.Medline``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from Bio import Medline

from pubmed_rag.records import IngestError, Record, Skipped

_YEAR = re.compile(r"(1[89]\d\d|20\d\d)")


def parse_medline_file(path: Path) -> Iterator[Record | Skipped]:
    """Yield one record per MEDLINE entry; entries without PMID are skipped with a reason."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty; expected MEDLINE text (PMID- / TI  - / AB  - lines).")
    with open(path, encoding="utf-8") as handle:
        found = False
        for n, entry in enumerate(Medline.parse(handle), start=1):
            found = True
            yield _record(entry, str(path), n)
    if not found:
        raise IngestError(f"{path}: no MEDLINE entries found; expected lines such as 'PMID- 12345'.")


def _record(entry: dict, source: str, n: int) -> Record | Skipped:
    pmid = str(entry.get("PMID", "")).strip()
    if not pmid:
        return Skipped(source, f"entry {n} has no PMID (title: {str(entry.get('TI', ''))[:80]!r}) and was skipped")
    pub_types = list(entry.get("PT", []))
    date = str(entry.get("DP", ""))
    year = _YEAR.search(date)
    doi = next((a.split(" ")[0] for a in list(entry.get("LID", [])) + list(entry.get("AID", [])) if "[doi]" in a), "")
    language = entry.get("LA", [""])
    return Record(
        pmid=pmid,
        title=str(entry.get("TI", "")).strip(),
        sections=[("", str(entry["AB"]).strip())] if entry.get("AB") else [],
        journal=str(entry.get("JT", entry.get("TA", ""))),
        year=int(year.group(1)) if year else None,
        authors=list(entry.get("AU", [])),
        mesh=[m.split("/")[0].lstrip("*") for m in entry.get("MH", [])],
        publication_types=pub_types,
        doi=doi,
        language=language[0] if isinstance(language, list) and language else str(language),
        retracted="Retracted Publication" in pub_types or bool(entry.get("RIN")),
        source=source,
    )

"""JSON Lines records: ``{"pmid", "title", "abstract", ...optional metadata}`` per line (plain or .gz)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

from ingest.pubmed_xml import open_maybe_gzip
from pubmed_rag.records import IngestError, Record, Skipped

_OPTIONAL = ("journal", "year", "authors", "mesh", "publication_types", "doi", "language", "retracted", "version")


def parse_jsonl_file(path: Path) -> Iterator[Record | Skipped]:
    """Yield records; a bad line is skipped with its line number and the rest of the file is read."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty; expected one JSON object per line.")
    n = 0
    try:
        with open_maybe_gzip(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as handle:
            for n, line in enumerate(handle, start=1):
                if line.strip():
                    yield record_from_json(line, f"{path}:{n}", str(path))
    except (EOFError, OSError) as exc:
        raise IngestError(
            f"{path}: the file is truncated or corrupt ({exc}) after line {n}. Re-download or rewrite it."
        ) from exc


def record_from_json(line: str, where: str, source: str) -> Record | Skipped:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return Skipped(where, f"not valid JSON ({exc.msg}); line skipped")
    pmid = str(data.get("pmid", "")).strip()
    if not pmid:
        return Skipped(where, f"record without 'pmid' (title: {str(data.get('title', ''))[:80]!r}) skipped")
    abstract = str(data.get("abstract", "") or "").strip()
    extra = {key: data[key] for key in _OPTIONAL if data.get(key) is not None}
    if "year" in extra:
        extra["year"] = int(extra["year"])
    return Record(
        pmid=pmid,
        title=str(data.get("title", "") or "").strip(),
        sections=[("", abstract)] if abstract else [],
        source=source,
        **extra,
    )

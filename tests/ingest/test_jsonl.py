from __future__ import annotations

import gzip

import pytest

from ingest.jsonl import parse_jsonl_file
from ingest.sources import detect_format, parse_file
from pubmed_rag.records import IngestError, Record, Skipped
from tests.conftest import SAMPLE_ABSTRACTS


def test_sample_corpus_jsonl_with_metadata():
    items = list(parse_jsonl_file(SAMPLE_ABSTRACTS))
    recs = [i for i in items if isinstance(i, Record)]
    assert len(recs) == 180
    first = recs[0]
    assert first.pmid == "21645374" and first.year == 2011
    assert "Plant Leaves" in first.mesh
    assert first.abstract.startswith("BACKGROUND: Programmed cell death (PCD)")
    assert detect_format(SAMPLE_ABSTRACTS) == "jsonl"


def test_bad_lines_are_skipped_with_line_numbers(tmp_path):
    lines = gzip.open(SAMPLE_ABSTRACTS, "rt", encoding="utf-8").read().splitlines()[:3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "{not json", '{"title": "no pmid here"}', lines[1]]) + "\n")
    items = list(parse_file(bad))
    assert [type(i).__name__ for i in items] == ["Record", "Skipped", "Skipped", "Record"]
    assert items[1].source.endswith("bad.jsonl:2") and "not valid JSON" in items[1].reason
    assert "without 'pmid'" in items[2].reason
    assert isinstance(items[2], Skipped)


def test_unrecognised_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(IngestError, match="unrecognised format"):
        list(parse_file(tmp_path / "notes.txt"))

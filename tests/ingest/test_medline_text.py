from __future__ import annotations

import pytest

from ingest.medline_text import parse_medline_file
from ingest.sources import detect_format, parse_file
from pubmed_rag.records import IngestError, Record
from tests.conftest import FIXTURES


def test_medline_result1():
    recs = [r for r in parse_medline_file(FIXTURES / "medline" / "pubmed_result1.txt") if isinstance(r, Record)]
    assert len(recs) == 1
    r = recs[0]
    assert r.pmid == "12230038" and r.year == 2002 and r.journal == "Briefings in bioinformatics"
    assert r.authors == ["Mangalam H"] and len(r.mesh) == 7 and r.publication_types == ["Journal Article"]
    assert r.title.startswith("The Bio* toolkits")


def test_medline_result2_four_records_with_doi():
    recs = [r for r in parse_file(FIXTURES / "medline" / "pubmed_result2.txt") if isinstance(r, Record)]
    assert [r.pmid for r in recs][0] == "16403221" and len(recs) == 4
    assert recs[0].doi == "10.1186/1471-2105-7-10"
    assert detect_format(FIXTURES / "medline" / "pubmed_result2.txt") == "medline"


def test_medline_empty(tmp_path):
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(IngestError, match="x.txt: the file is empty"):
        list(parse_medline_file(tmp_path / "x.txt"))

"""The demo's sample (data/sample): real, titled clinical records, rebuilt byte for byte by data/make_sample.py."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from ingest.sources import parse_file
from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.records import Deletion, Record
from tests.conftest import FIXTURES, ROOT, SAMPLE
from ui.first_run import sample_files

SHARED = SHARED_DATA


def test_every_sample_record_has_a_title_and_the_flagship_trial_is_there():
    items = [i for path in sample_files() for i in parse_file(path)]  # what the sample index is built from
    records = [i for i in items if isinstance(i, Record)]
    assert len(records) == 219 and all(r.title for r in records)
    assert sum(1 for r in records if r.abstract) == 215
    by_pmid = {r.pmid: r for r in records}
    assert by_pmid["29768149"].title == "Inhaled Combined Budesonide-Formoterol as Needed in Mild Asthma."
    assert by_pmid["2696505"].title == "A randomized comparison of labetalol and nitroprusside for induced hypotension."
    assert [i.pmids for i in items if isinstance(i, Deletion)] == [
        ("26432306",), ("41456105", "41557076", "41616784", "41618748", "41618749", "41618779")]


def test_medline_subset_keeps_structured_clinical_abstracts():
    records = [i for i in parse_file(SAMPLE / "medline16n0902_clinical.xml.gz") if isinstance(i, Record)]
    assert len(records) == 99 and all(any(label for label, _ in r.sections) for r in records)
    assert Counter(r.journal for r in records)["Journal of cataract and refractive surgery"] == 23
    crizotinib = next(r for r in records if r.pmid == "21933749")
    assert crizotinib.journal == "The Lancet. Oncology" and "FINDINGS" in [label for label, _ in crizotinib.sections]


@pytest.mark.skipif(not (SHARED / "corpus" / "abstracts.jsonl.gz").exists(), reason="needs ../shared/data")
def test_make_sample_rebuilds_the_same_bytes(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "data" / "make_sample.py"), "--shared", str(SHARED),
                    "--out", str(tmp_path / "sample"), "--fixtures", str(tmp_path / "fixtures")],
                   check=True, capture_output=True)
    for folder, made in ((SAMPLE, tmp_path / "sample"), (FIXTURES, tmp_path / "fixtures")):
        for path in made.iterdir():
            assert path.read_bytes() == (folder / path.name).read_bytes(), path.name
    assert sorted(p.name for p in (tmp_path / "sample").iterdir()) == sorted(
        p.name for p in SAMPLE.iterdir() if p.name != "SOURCES.md")

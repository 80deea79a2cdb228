"""Case analysis end to end on the small real index: report, references, privacy, escaping."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from pubmed_rag.sentences import split_sentences
from pubmed_rag.types import CaseReport
from rag.case import CaseAnalyzer, CaseError
from rag.case.analyze import _Record, rank_candidates
from rag.case.report import to_markdown
from tests.conftest import ROOT

# Identifiers of the kinds the redactor must catch, injected into real cases (none of them is a real person's).
IDENTIFIERS = {
    "name": "Marjorie Pennington", "mrn": "MRN 4471-2290", "date": "03/14/2026", "phone": "(617) 555-0142",
    "street": "42 Larkspur Avenue", "city": "Shelbyville", "email": "m.pennington@example.org",
    "relative": "Theodore",
}
INJECTED = ("Patient {name}, {mrn}, seen on {date}; phone {phone}; lives at {street}, {city}, IL 62704; email "
            "{email}. Her husband {relative} brought her in. ").format(**IDENTIFIERS)


def topic(n: int) -> str:
    with open(ROOT / "data" / "cases" / "2014_description.csv", encoding="utf-8", newline="") as fh:
        return [row[0] for row in csv.reader(fh)][n - 1]


@pytest.fixture(scope="module")
def analyzer(asker) -> CaseAnalyzer:
    return CaseAnalyzer(asker)


def leaked(blob: str) -> list[str]:
    return [value for value in IDENTIFIERS.values() if value in blob]


def test_report_for_topic_1(analyzer):
    stages = []
    report = analyzer.analyze(topic(1), lambda stage, fraction: stages.append((stage, fraction)))
    assert stages[0][1] == 0.0 and stages[-1] == ("Done", 1.0)
    by_category = {}
    for p in report.problems:
        by_category.setdefault(p.category, []).append(p.name)
    assert by_category["known condition"] == ["Hypertension", "Obesity"]
    assert {"Chest pain", "Nausea", "Dyspnea", "Hyperhidrosis"} <= set(by_category["active finding"])
    assert "Pain" not in by_category["active finding"]  # "Chest pain" says it
    assert {"58 years (Middle Aged)", "female", "smoking: never"} <= set(by_category["patient factor"])
    assert next(p for p in report.problems if p.name == "Hyperhidrosis").words == ["diaphoresis"]
    assert {m.concept for m in report.negated} >= {"Diabetes mellitus", "Hypercholesterolemia"}
    assert report.index == "small" and report.timings["total"] > 0


def test_every_citation_points_at_its_reference_and_quotes_are_verbatim(analyzer):
    report = analyzer.analyze(topic(17))
    refs = {e.number: e for e in report.references}
    assert sorted(refs) == list(range(1, len(refs) + 1))
    for candidate in report.differential:
        assert len(candidate.explains) >= 2 and set(candidate.records) <= set(refs)
        assert not set(candidate.explains) & set(candidate.unexplained)
        for q in candidate.quotes:
            assert refs[q.number].pmid == q.pmid and q.sentence in split_sentences(refs[q.number].abstract)
    assert report.evidence, "treatment evidence for the known conditions at least"
    for pe in report.evidence:
        assert pe.query and pe.purpose in ("diagnosis", "treatment", "adverse effects and interactions")
        for f in pe.findings:
            assert refs[f.number].pmid == f.pmid
            assert all(s in refs[f.number].abstract for s in f.sentences)


def test_rank_candidates_prefers_several_findings_explained(asker):
    evidence = asker.retriever.search("hypotension induced by drugs", 3)
    records = [_Record(evidence[0], 1.0, {"HP:1"}, {"A"}, []),
               _Record(evidence[1], 0.63, {"HP:1", "HP:2"}, {"B"}, []),
               _Record(evidence[2], 0.5, {"HP:2"}, {"B"}, [])]
    ranked = rank_candidates(records, {"HP:1": "Hypotension", "HP:2": "Tachycardia"})
    assert [c for c, _, _ in ranked] == ["B", "A"]  # two findings by records 2-3 beat one by the top record
    assert ranked[0][2] == ["HP:1", "HP:2"] and ranked[0][1] == pytest.approx(0.63 + 0.63 + 0.1 * 0.5)


def test_identifiers_never_reach_output_logs_or_files(analyzer, asker, caplog, tmp_path):
    cache = asker.settings.paths.cache_dir
    before = {p: p.stat().st_mtime for p in cache.rglob("*") if p.is_file()} if cache.exists() else {}
    caplog.set_level(logging.DEBUG)
    report = analyzer.analyze(INJECTED + topic(6))
    kinds = [r.kind for r in report.redactions]
    assert {"name", "id number", "date", "phone/fax", "street address", "location", "email", "zip code"} <= set(kinds)
    outputs = [report.model_dump_json(), to_markdown(report), caplog.text]
    assert not [leaked(blob) for blob in outputs if leaked(blob)]
    assert "Diabetes mellitus" in {p.name for p in report.problems}  # the case itself is still read
    changed = [p for p in cache.rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime]
    index_dir = asker.settings.paths.index_dir
    for path in changed + [p for p in index_dir.rglob("*") if p.is_file()]:
        assert not leaked(path.read_bytes().decode("latin-1")), path


def test_script_in_a_case_is_shown_as_text(analyzer):
    report = analyzer.analyze("<script>alert('x')</script> A 45-year-old man with fever and cough.")
    markdown = to_markdown(report)
    assert "<script>" not in markdown
    assert "<script>" in report.text  # the JSON keeps the text; every renderer escapes it
    assert {"Fever", "Cough"} <= {p.name for p in report.problems}


def test_bad_cases_are_refused(analyzer):
    with pytest.raises(CaseError, match="empty"):
        analyzer.analyze("   ")
    with pytest.raises(CaseError, match="case.max_chars"):
        analyzer.analyze("fever " * 5000)


def test_report_schema_round_trips(analyzer):
    report = analyzer.analyze(topic(7))
    again = CaseReport.model_validate(json.loads(report.model_dump_json()))
    assert again == report
    assert {"lithium", "zolpidem"} <= {p.name for p in report.problems if p.category == "medication"}
    drugs = [pe for pe in report.evidence if pe.purpose == "adverse effects and interactions"]
    assert [pe.problem for pe in drugs] == ["lithium", "zolpidem"]

"""Key findings: section labels from real structured abstracts, sentence choice, sample sizes."""

from __future__ import annotations

from collections import Counter

from ingest.pubmed_xml import parse_xml_file
from pubmed_rag.records import Record, section_category
from rag.findings import abstract_sentences, lexical_overlap, sample_size
from tests.conftest import FLAGSHIP, XML, sample_records


def nejm() -> Record:
    return next(i for i in parse_xml_file(XML / "pubmed-29768149.xml") if isinstance(i, Record))


def test_section_categories_survive_ingest_from_a_structured_baseline_file():
    records = [i for i in parse_xml_file(XML / "medline16n0902.xml.gz") if isinstance(i, Record)]
    counts = Counter(cat for r in records for cat, _, _ in r.labelled_sections())
    assert len(records) == 604
    assert counts["CONCLUSIONS"] == 211 and counts["RESULTS"] == 203 and counts["METHODS"] == 388
    findings = next(r for r in records if r.pmid == "21933749")  # labelled FINDINGS, NlmCategory RESULTS
    assert ("RESULTS", "FINDINGS") in [(c, label) for c, label, _ in findings.labelled_sections()]
    # The category travels with the stored record and changes the content hash only where NLM gave one.
    assert Record.from_dict(findings.to_dict()).categories == findings.categories
    plain = sample_records(1)[0]
    assert "categories" not in plain.to_dict() and plain.categories == []


def test_labels_without_a_category_are_read_from_their_words():
    assert section_category("CONCLUSION(S)") == "CONCLUSIONS"
    assert section_category("BACKGROUND AND AIMS") == "OBJECTIVE"
    assert section_category("PATIENTS AND METHODS") == "METHODS"
    assert section_category("Results") == "RESULTS"
    assert section_category("ABBREVIATIONS") == ""
    assert section_category("FINDINGS", "UNASSIGNED") == "RESULTS"


def test_sentences_of_the_nejm_abstract_keep_sections_and_abbreviations():
    sentences = abstract_sentences(nejm().labelled_sections())
    cats = Counter(s.category for s in sentences)
    assert cats == {"RESULTS": 5, "CONCLUSIONS": 4, "METHODS": 3, "BACKGROUND": 1}
    results = [s.text for s in sentences if s.category == "RESULTS"]
    assert any("(34.4% vs. 31.1% of weeks; odds ratio, 1.14" in t for t in results)  # not split after "vs."
    assert sample_size(nejm().abstract) == 3849


def test_inline_labels_of_plain_text_become_sections_without_the_prefix():
    record = sample_records(1, "pubmedqa")[0]  # PMID 21645374: "BACKGROUND: ... RESULTS: ... CONCLUSIONS: ..."
    assert record.pmid == "21645374" and record.sections[0][0] == ""
    sentences = abstract_sentences(record.labelled_sections())
    assert sentences[0].category == "BACKGROUND" and not sentences[0].text.startswith("BACKGROUND")
    assert sentences[-1].category == "CONCLUSIONS" and sentences[-1].text.startswith("Overall, our findings implicate")
    assert not any(s.text.startswith(("RESULTS:", "CONCLUSIONS:")) for s in sentences)


def test_unlabelled_abstracts_end_in_conclusions():
    record = sample_records(1, "bc5cdr")[0]
    sentences = abstract_sentences(record.labelled_sections())
    assert [s.category for s in sentences[-2:]] == ["CONCLUSIONS", "CONCLUSIONS"]
    assert all(s.category == "" for s in sentences[:-2])


def test_rare_question_words_weigh_more():
    sentences = [s.text for s in abstract_sentences(nejm().labelled_sections())]
    overlap = lexical_overlap(FLAGSHIP, sentences)
    exacerbations = sentences.index(next(s for s in sentences if s.startswith("The annual rate of severe exacerbations")))
    funding = len(sentences) - 1
    assert overlap[exacerbations] == overlap.max() and overlap[funding] == 0.0

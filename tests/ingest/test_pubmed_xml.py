"""Parser tests on every real PubMed XML sample, asserting real values."""

from __future__ import annotations

import gzip
import re
import shutil
import tracemalloc

import pytest

from ingest.pubmed_xml import parse_xml_file
from pubmed_rag.records import Deletion, IngestError, Record, Skipped
from tests.conftest import XML


def records(name: str) -> dict[str, Record]:
    return {i.pmid: i for i in parse_xml_file(XML / name) if isinstance(i, Record)}


def test_pubmed1_review_and_title_only_record():
    recs = records("pubmed1.xml")
    assert set(recs) == {"12091962", "9997"}
    r = recs["12091962"]
    assert r.title == "The treatment of AIDS behind the walls of correctional facilities."
    assert r.publication_types == ["Journal Article", "Review"]
    assert r.year == 1990 and len(r.mesh) == 19
    title_only = [x for x in recs.values() if x.title_only]
    assert [x.pmid for x in title_only] == ["12091962"]


def test_pubmed2_medline_and_pubmed_not_medline():
    recs = records("pubmed2.xml")
    assert recs["11748933"].title.startswith("Is cryopreservation a homogeneous process?")
    assert recs["11748933"].doi == "10.1006/cryo.2001.2328"
    assert recs["11748933"].journal == "Cryobiology" and recs["11748933"].year == 2001
    assert recs["11700088"].mesh == []


def test_pubmed4_structured_abstract_inline_markup():
    r = records("pubmed4.xml")["27797938"]
    assert [label for label, _ in r.sections] == ["OBJECTIVE", "DESIGN", "RESULTS", "CONCLUSIONS"]
    assert len(r.mesh) == 21 and r.year == 2017 and r.journal == "Gut"
    assert "Observational Study" in r.publication_types
    assert "<sup>" not in r.abstract and "<i>" not in r.abstract and "r2<0.25" in r.abstract
    assert r.abstract.startswith("OBJECTIVE: ")


@pytest.mark.parametrize("name", ["pubmed5.xml", "pubmed6.xml", "pubmed7.xml"])
def test_non_ascii_survives(name):
    # Every non-ASCII character inside the raw titles and abstracts must come out unchanged.
    path = XML / name
    raw = gzip.open(path, "rt", encoding="utf-8").read() if name.endswith(".gz") else path.read_text("utf-8")
    # ArticleTitle and the English <Abstract> (OtherAbstract, in other languages, is not indexed).
    spans = re.findall(r"<ArticleTitle>(.*?)</ArticleTitle>|<Abstract>(.*?)</Abstract>", raw, flags=re.S)
    text = "".join(t + re.sub(r"<CopyrightInformation>.*?</CopyrightInformation>", "", a, flags=re.S)
                   for t, a in spans)
    expected = sorted(c for c in text if ord(c) > 127)
    parsed = records(name).values()
    got = sorted(c for r in parsed for c in r.title + r.abstract if ord(c) > 127)
    assert got == expected
    if name == "pubmed6.xml":
        assert "±" in next(iter(parsed)).abstract and len(got) >= 16


def test_non_ascii_2026_baseline():
    recs = records("pubmed26n1334.xml.gz").values()
    assert any("Interfacial F···S Interactions" in r.title for r in recs)
    assert any("CV ≤ 10% and ICC ≥ 0.8" in r.abstract for r in recs)


def test_nejm_trial_publication_types():
    r = records("pubmed-29768149.xml")["29768149"]
    assert "Clinical Trial, Phase III" in r.publication_types and "Comparative Study" in r.publication_types
    assert "Randomized Controlled Trial" in r.publication_types
    assert len(r.mesh) == 23 and r.journal == "The New England journal of medicine" and r.year == 2018
    assert r.authors[0] == "O'Byrne PM"


def test_current_medline_four_articles():
    recs = records("test_current_medline.xml.gz")
    assert set(recs) == {"36400559", "2930949", "11446611", "28786991"}
    assert all(r.mesh for r in recs.values())


def test_2016_medline_citation_set_with_delete():
    items = list(parse_xml_file(XML / "medline16n0902.xml.gz"))
    recs = [i for i in items if isinstance(i, Record)]
    deletions = [i for i in items if isinstance(i, Deletion)]
    assert len(recs) == 604
    assert [d.pmids for d in deletions] == [("26432306",)]
    assert sum(1 for r in recs if any(label for label, _ in r.sections)) == 215
    assert recs[0].pmid == "17942999" and recs[0].year == 2007


def test_2026_baseline_retraction_notice():
    recs = records("pubmed26n1334.xml.gz")
    assert len(recs) == 30
    notices = [r for r in recs.values() if r.is_retraction_notice]
    assert len(notices) == 1
    assert notices[0].title.startswith("Retraction Note: Y-box protein-1/p18 fragment")
    assert not notices[0].retracted  # the notice itself is not a retracted paper
    assert sum(1 for r in recs.values() if any(label for label, _ in r.sections)) == 9


def test_2026_update_deletecitation():
    items = list(parse_xml_file(XML / "pubmed26n1335.xml.gz"))
    deletions = [i for i in items if isinstance(i, Deletion)]
    assert deletions[0].pmids == ("41456105", "41557076", "41616784", "41618748", "41618749", "41618779")
    recs = [i for i in items if isinstance(i, Record)]
    assert len(recs) == 30 and sum(1 for r in recs if r.mesh) == 18
    r = next(r for r in recs if r.pmid == "26228458")
    assert r.title.startswith("Obesity risk in rural, urban and rural-to-urban migrants")
    assert len(r.mesh) == 21 and r.year == 2016


def test_retracted_publication_flag(tmp_path):
    # A real record, re-labelled as PubMed labels a retracted paper (publication type and RetractionIn link).
    text = (XML / "pubmed4.xml").read_text("utf-8")
    flagged = text.replace("<PublicationType UI=\"D016428\">Journal Article</PublicationType>",
                           "<PublicationType UI=\"D016441\">Retracted Publication</PublicationType>", 1)
    assert flagged != text
    (tmp_path / "r.xml").write_text(flagged, "utf-8")
    assert next(iter(parse_xml_file(tmp_path / "r.xml"))).retracted
    linked = text.replace("</MedlineCitation>", "<CommentsCorrectionsList><CommentsCorrections RefType=\"RetractionIn\">"
                          "<RefSource>x</RefSource></CommentsCorrections></CommentsCorrectionsList></MedlineCitation>", 1)
    (tmp_path / "l.xml").write_text(linked, "utf-8")
    assert next(iter(parse_xml_file(tmp_path / "l.xml"))).retracted


def test_malformed_xml_names_file_and_keeps_earlier_records(tmp_path):
    raw = gzip.open(XML / "pubmed26n1334.xml.gz").read()
    cut = raw.index(b"<PubmedArticle>", 20000)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(raw[:cut] + b"<PubmedArticle><MedlineCitation><PMID>1</PMID></Broken>" + raw[cut:])
    got = []
    with pytest.raises(IngestError, match=r"bad\.xml: malformed XML at line") as failed:
        for item in parse_xml_file(bad):
            got.append(item)
    assert len(got) >= 1 and all(isinstance(g, Record) for g in got)
    assert f"after {len(got)} complete records" in str(failed.value)


def test_truncated_gzip(tmp_path):
    data = (XML / "pubmed26n1335.xml.gz").read_bytes()
    bad = tmp_path / "pubmed26n1335.xml.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="truncated or corrupt|malformed"):
        list(parse_xml_file(bad))


def test_empty_file(tmp_path):
    (tmp_path / "empty.xml").write_bytes(b"")
    with pytest.raises(IngestError, match="empty.xml: the file is empty"):
        list(parse_xml_file(tmp_path / "empty.xml"))


def test_record_without_pmid_is_skipped(tmp_path):
    text = (XML / "pubmed2.xml").read_text("utf-8")
    text = text.replace('<PMID Version="1">11748933</PMID>', "", 1)
    (tmp_path / "nopmid.xml").write_text(text, "utf-8")
    items = list(parse_xml_file(tmp_path / "nopmid.xml"))
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert len(skipped) == 1 and "without PMID" in skipped[0].reason and "cryopreservation" in skipped[0].reason
    assert [i.pmid for i in items if isinstance(i, Record)] == ["11700088"]


def test_streaming_memory_is_bounded(tmp_path):
    # 20 copies of the 3.9 MB 2016 file in one stream: peak Python memory must stay far below the input size.
    raw = gzip.open(XML / "medline16n0902.xml.gz").read()
    head, body = raw.split(b"<MedlineCitationSet>", 1)
    body = body.rsplit(b"</MedlineCitationSet>", 1)[0]
    big = tmp_path / "big.xml.gz"
    with gzip.open(big, "wb", compresslevel=1) as out:
        out.write(head + b"<MedlineCitationSet>")
        for _ in range(20):
            out.write(body)
        out.write(b"</MedlineCitationSet>")
    tracemalloc.start()
    n = sum(1 for i in parse_xml_file(big) if isinstance(i, Record))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 604 * 20
    assert peak < len(raw) * 20 / 10, f"peak {peak} bytes for {len(raw) * 20} bytes of XML"
    shutil.rmtree(tmp_path)


def test_chemical_list_is_read_and_kept_out_of_the_hash_when_absent():
    r = records("pubmed-29768149.xml")["29768149"]
    assert r.chemicals == ["Bronchodilator Agents", "Drug Combinations", "Glucocorticoids", "Budesonide",
                           "Terbutaline", "Formoterol Fumarate"]
    bare = Record(pmid="1", title="t")
    assert "chemicals" not in bare.to_dict() and "chemicals" in r.to_dict()

"""Retrieval on a small index of real abstracts."""

from __future__ import annotations

import pytest

from rag.grading import grade
from rag.retrieve import Filters, IndexRetriever, bounded_words, fts_query, query_words
from tests.conftest import pubmedqa_questions


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_pubmedqa_question_finds_its_abstract(asker, mode):
    q = pubmedqa_questions()[0]
    evidence = asker.retriever.search(q["question"], 5, retriever=mode)
    assert evidence[0].pmid == q["pmid"] == "21645374"
    assert [e.number for e in evidence] == [1, 2, 3, 4, 5]
    assert len({e.pmid for e in evidence}) == 5  # one passage per PMID


def test_evidence_carries_metadata(asker):
    ev = asker.retriever.search("budesonide formoterol as needed mild asthma exacerbations", 3)[0]
    assert ev.pmid == "29768149" and ev.journal == "The New England journal of medicine" and ev.year == 2018
    assert ev.grade_label == "Randomized controlled trial" and ev.url == "https://pubmed.ncbi.nlm.nih.gov/29768149/"
    assert ev.authors_short == "O'Byrne PM et al."


def test_year_filter_returns_k_matching(asker):
    f = Filters(year_min=2026, year_max=2026)
    evidence = asker.retriever.search("children neurology outcomes", 8, f)
    assert len(evidence) == 8 and all(e.year == 2026 for e in evidence)
    for mode in ("dense", "bm25"):
        assert all(e.year == 2026 for e in asker.retriever.search("cancer", 8, f, retriever=mode))


def test_publication_type_and_mesh_filters(asker):
    rct = asker.retriever.search("asthma", 5, Filters(publication_types=["Randomized Controlled Trial"]))
    assert [e.pmid for e in rct] == ["29768149"]
    mesh = asker.retriever.search("leaf cell death", 5, Filters(mesh="Plant Leaves"))
    assert mesh and all("Plant Leaves" in e.mesh for e in mesh)
    notices = asker.retriever.search("Retraction Note Y-box protein-1", 3, Filters(exclude_retracted=True))
    assert all(not e.retracted for e in notices)


def test_pseudo_relevance_feedback_is_fused_and_optional(asker):
    q = pubmedqa_questions()[0]
    plain = asker.retriever.rank(q["question"], 5)  # off by default
    assert plain[0].pmid == "21645374" and all("feedback" not in h.sources for h in plain)
    on = IndexRetriever(asker.index, asker.embedder, asker.settings.retrieval.model_copy(update={"prf_docs": 3}))
    hits = on.rank(q["question"], 5)
    assert hits[0].pmid == "21645374" and {"dense", "bm25", "feedback"} <= set(hits[0].sources)
    rct = on.search("asthma", 5, Filters(publication_types=["Randomized Controlled Trial"]))
    assert [e.pmid for e in rct] == ["29768149"]  # the filter holds in the feedback search too
    assert all(e.year == 2026 for e in on.search("children neurology outcomes", 8, Filters(year_min=2026)))


def test_fts_query_is_escaped():
    q = fts_query('Does aspirin (ASA) reduce stroke? AND NOT "x"')
    assert q == '"aspirin" OR "asa" OR "reduce" OR "stroke"'  # FTS syntax words are quoted or dropped


def test_grading_order():
    assert grade(["Meta-Analysis", "Review"], [])[0] == 6
    assert grade(["Randomized Controlled Trial", "Comparative Study"], [])[0] == 5
    assert grade(["Clinical Trial, Phase III"], [])[0] == 4
    assert grade(["Journal Article"], ["Cohort Studies"]) == (3, "Observational study")
    assert grade(["Case Reports"], [])[0] == 2
    assert grade(["Journal Article"], []) == (1, "Other / unclassified")
    assert grade(["Review"], []) == (0, "Review / editorial / letter")
    assert grade(["Journal Article", "Retraction Notice"], [])[0] == 0


def test_document_frequencies_count_stemmed_words_like_fts5(asker):
    store = asker.index.store
    df = store.document_frequencies(["patients", "budesonide", "exacerbations", "zzzunseen"])
    for word in ("patients", "budesonide", "exacerbations"):  # FTS5 stems: "patients" counts "patient" too
        matched = store.shards[0].reader().execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                                         (f'"{word}"',)).fetchone()[0]
        assert df[word] == matched > 0
    assert df["zzzunseen"] == 0 and df["patients"] > df["budesonide"]


def test_bm25_leaves_out_the_commonest_words_when_bounded(asker):
    question = "Does as-needed budesonide-formoterol reduce severe exacerbations in patients with mild asthma?"
    words = query_words(question)
    df = asker.index.store.document_frequencies(words)
    chunks = asker.index.manifest["counts"]["chunks"]
    common = {w for w in words if df[w] > 0.05 * chunks}
    assert "patients" in common and "budesonide" not in common
    kept = bounded_words(words, df, chunks, 0.05)
    assert kept == [w for w in words if w not in common]
    assert bounded_words(["patients", "with"], df | {"with": 10**6}, chunks, 0.05) == ["patients", "with"]
    assert bounded_words(words, df, chunks, 1.0) == words
    bounded = IndexRetriever(asker.index, asker.embedder,
                             asker.settings.retrieval.model_copy(update={"bm25_max_df": 0.05, "bm25_bound_above": 0}))
    assert bounded.rank(question, 3, retriever="bm25")[0].pmid == "29768149"
    assert asker.settings.retrieval.bm25_bound_above > chunks  # by default a small index searches every word

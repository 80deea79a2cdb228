"""The reranker trained here: it loads offline and prefers the sentence that answers; ``train reranker`` is seeded
and deterministic; missing or corrupt weights leave the previous ranking, with a warning."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from pubmed_rag.settings import AnswerSettings
from rag.findings import CosineSentenceScorer, abstract_sentences
from rag.reranker import SHIPPED, load_reranker, relevance
from rag.retrieve import IndexRetriever
from rag.sentence_scorers import finding_extractor
from rag.sentence_scorers.reranker import RerankerSentenceScorer
from rag.training.reranker import RELEVANT, build_examples, corpus_ranker, held_out_pmids, snippet_sentences
from tests.conftest import FLAGSHIP, XML
from tests.rag.test_training import DATA, assert_same_training, train_tiny_twice

# The reranker trains on BioASQ and the shared corpus, too large to copy into the repository: these tests run where
# ../shared/data is beside the clone (CI, and every developer machine here), and are skipped on a bare clone.
needs_data = pytest.mark.skipif(not ((DATA / "bioasq").is_dir() and (DATA / "corpus" / "abstracts.jsonl.gz").is_file()),
                                reason="../shared/data (BioASQ, corpus) is absent")



@pytest.fixture(scope="module")
def sygma():
    from ingest.pubmed_xml import parse_xml_file

    record = next(parse_xml_file(XML / "pubmed-29768149.xml"))
    return abstract_sentences(record.labelled_sections())


def test_shipped_reranker_loads_offline_and_ranks_the_exacerbation_result_above_methods(monkeypatch, sygma):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    record = json.loads((SHIPPED / "training.json").read_text())
    assert record["task"] == "reranker" and record["labels"] == ["not relevant", "relevant"]
    assert (SHIPPED / "trained.safetensors").stat().st_size < 10e6
    model = load_reranker(str(SHIPPED))
    methods = [s.text for s in sygma if s.category == "METHODS"]
    exacerbation = next(s.text for s in sygma if s.text.startswith("The annual rate of severe exacerbations"))
    scores = RerankerSentenceScorer(model).score(FLAGSHIP, [exacerbation, *methods])
    assert len(methods) == 3 and all(0.0 <= p <= 1.0 for p in scores)
    assert scores[0] > max(scores[1:])
    assert relevance(model, []).shape == (0,)


def test_reranker_sentence_scorer_chooses_a_finding_about_exacerbations(embedder, sygma, asker):
    evidence = asker.retriever.search(FLAGSHIP, 3)
    assert evidence[0].pmid == "29768149"
    extractor = finding_extractor(AnswerSettings(sentence_scorer="reranker"), embedder)
    assert isinstance(extractor.scorer, RerankerSentenceScorer) and extractor.min_relevance == 0.3
    finding = next(f for f in extractor.extract(FLAGSHIP, evidence) if f.pmid == "29768149")
    assert "xacerbation" in finding.sentences[finding.best] and finding.section in ("RESULTS", "CONCLUSIONS")


def test_shipped_reranker_reorders_the_top_n_and_keeps_the_flagship_trial(small_settings, embedder):
    from ingest.index import LoadedIndex

    index = LoadedIndex(small_settings.paths.index_dir, "small")
    settings = small_settings.retrieval.model_copy(update={"reranker": "shipped", "rerank_depth": 10})
    hits = IndexRetriever(index, embedder, settings).rank(FLAGSHIP, 10)
    plain = IndexRetriever(index, embedder, small_settings.retrieval).rank(FLAGSHIP, 10)
    assert plain[0].pmid == "29768149" and {h.pmid for h in hits} == {h.pmid for h in plain}
    assert all("rerank" in h.sources for h in hits) and [h.score for h in hits] == sorted(
        (h.score for h in hits), reverse=True)
    order = [h.pmid for h in hits]
    assert order != [h.pmid for h in plain]  # it reorders
    # SYGMA 1 itself is judged relevant and stays near the top; the asthma studies (sputum phenotypes, racial
    # differences in asthma care) come before the off-topic ones, and a lung-cancer chemotherapy trial is last.
    flagship = hits[order.index("29768149")]
    assert flagship.score >= 0.8 and order.index("29768149") <= 2
    assert {"27044366", "29768149", "17453263"} <= set(order[:4]) and order[-1] == "10526274"


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_weights_keep_the_previous_ranking_with_a_warning(damage, small_settings, embedder,
                                                                             tmp_path, caplog):
    from ingest.index import LoadedIndex

    folder = tmp_path / "reranker"
    shutil.copytree(SHIPPED, folder)
    weights = folder / "trained.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    index = LoadedIndex(small_settings.paths.index_dir, "small")
    plain = IndexRetriever(index, embedder, small_settings.retrieval)
    broken = IndexRetriever(index, embedder, small_settings.retrieval.model_copy(update={"reranker": str(folder)}))
    with caplog.at_level(logging.WARNING):
        hits = broken.rank(FLAGSHIP, 8)
        again = broken.rank("asthma exacerbations", 8)
    assert [h.pmid for h in hits] == [h.pmid for h in plain.rank(FLAGSHIP, 8)]
    assert [h.pmid for h in again] == [h.pmid for h in plain.rank("asthma exacerbations", 8)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per retriever, not per question
    assert str(weights) in warnings[0] and "pubmed-rag train reranker" in warnings[0]
    assert ("not found" if damage == "missing" else "corrupted") in warnings[0]
    assert broken.warnings == warnings and plain.warnings == []  # what answers carry to the user
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        extractor = finding_extractor(AnswerSettings(sentence_scorer="reranker", reranker_model=str(folder)), embedder)
    assert isinstance(extractor.scorer, CosineSentenceScorer) and extractor.min_relevance == 0.4
    assert "pubmed-rag train reranker" in caplog.records[-1].getMessage()
    assert extractor.warnings == [caplog.records[-1].getMessage()]


@needs_data
def test_training_pairs_come_from_7b_snippets_and_retrieved_records():
    raw = json.loads((DATA / "bioasq" / "Task7BGoldenEnriched" / "7B1_golden.json").read_text())["questions"]
    held_out = held_out_pmids(DATA)
    assert len(held_out) > 5000  # the gold PMIDs of 8B and 9B: never training text
    rank = corpus_ranker(DATA, held_out)
    examples = build_examples(raw, rank, held_out, seed=13, limit=3)
    assert examples == build_examples(raw, rank, held_out, seed=13, limit=3)
    positives = [e for e in examples if e.label == RELEVANT]
    assert {e.source for e in positives} == {"snippet-sentence"}  # gold records are not in the shared corpus
    assert all(e.second in snippet_sentences(next(q for q in raw if q["body"] == e.first)) for e in positives)
    assert {e.source for e in examples} >= {"snippet-sentence", "retrieved-sentence", "retrieved-passage"}


@needs_data
def test_train_reranker_tiny_slice_is_deterministic(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PUBMED_RAG_PATHS__INDEX_DIR", str(tmp_path / "no-indexes"))  # negatives from the corpus
    a, b = train_tiny_twice("reranker", tmp_path, capsys, limit=3)
    assert a["labels"] == ["not relevant", "relevant"] and a["card"].startswith("# pubmed-rag reranker")
    assert a["negatives_from"] == "the shared corpus, by shared words"
    assert set(a["by_source"]) >= {"snippet-sentence", "retrieved-sentence", "pubmedqa-conclusion",
                                   "pubmedqa-background-methods"}
    assert_same_training(a, b)

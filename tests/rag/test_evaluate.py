"""Evaluation metrics and data loaders on real files and hand-checkable rankings."""

from __future__ import annotations

import json

import pytest

from rag.evaluate import (
    bioasq_snippet_records,
    parse_decision,
    qa_metrics,
    retrieval_metrics,
    roc_auc,
)


def test_retrieval_metrics_by_hand():
    m = retrieval_metrics([["a", "x", "b"], ["y", "z"]], [["a", "b"], ["z"]])
    assert m["recall@1"] == 0.25  # (1/2 + 0) / 2
    assert m["recall@5"] == 1.0
    assert m["mrr"] == 0.75  # (1 + 1/2) / 2
    ndcg_q1 = (1 + 1 / 2) / (1 + 1 / 1.5849625007211562)
    assert m["ndcg@10"] == pytest.approx((ndcg_q1 + 1 / 1.5849625007211562) / 2, abs=1e-4)


def test_qa_metrics_and_decision_rule():
    assert parse_decision("Yes. Because ...") == "yes"
    assert parse_decision("The answer is: no, it does not") == "no"
    assert parse_decision("Unclear from the evidence") == "maybe"
    m = qa_metrics(["yes", "no", "yes", "maybe"], ["yes", "no", "no", "maybe"], ("yes", "no", "maybe"))
    assert m["accuracy"] == 0.75 and m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-4)


def test_roc_auc():
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.5], [0.5]) == 0.5


def test_bioasq_snippet_documents_from_real_golden_file():
    from tests.conftest import FIXTURES

    raw = json.loads((FIXTURES / "bioasq_9B1_sample.json").read_text())["questions"]
    docs = {r.pmid: r for r in bioasq_snippet_records(raw, exclude=set())}
    assert docs and all(r.title or r.abstract for r in docs.values())
    first = raw[0]["snippets"][0]
    pmid = first["document"].rsplit("/", 1)[-1]
    assert " ".join(first["text"].split()) in (docs[pmid].title + " " + docs[pmid].abstract)

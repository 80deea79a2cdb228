"""Each claim-verification format read by its own loader, on real records (tests/fixtures/claim_data)."""

from __future__ import annotations

import pytest

from rag.evaluation.claim_sets import ClaimSetError, dataset_files, load_claims, load_dataset
from tests.conftest import FIXTURES

DATA = FIXTURES / "claim_data"
S, C, N = "supported", "contradicted", "not enough information"


def test_scifact_items_carry_the_cited_abstract_and_its_rationale():
    items = load_dataset("scifact", "dev", DATA)
    assert [i.label for i in items].count(C) == 2 and len(items) == 6
    first = items[0]
    assert first.id == "1:31715818" and first.dataset == "scifact"
    assert first.claim == "0-dimensional biomaterials show inductive properties."
    assert first.label == N and first.evidence == []
    supported = next(i for i in items if i.label == S)
    assert supported.evidence and all(0 <= k < len(supported.sentences) for k in supported.evidence)


def test_healthver_reads_doc_ids_and_labels_each_document():
    items = load_dataset("healthver", "dev", DATA)
    by_claim = {}
    for item in items:
        by_claim.setdefault(item.id.split(":")[0], []).append(item.label)
    assert by_claim["1393"] == [S, N]  # one cited abstract with SUPPORT evidence, one without evidence
    assert items[0].claim == "'Social distancing' could help stop coronavirus spread"


def test_check_covid_is_checked_against_its_evidence_sentences_only():
    items = load_dataset("check-covid", "dev", DATA)
    assert sorted(i.label for i in items) == sorted([S, C, N])
    nei = next(i for i in items if i.label == N)
    assert len(nei.sentences) == 1 and nei.evidence == []  # one sentence, not the abstract it comes from
    claims, corpus = dataset_files("check-covid", "dev", DATA)
    assert [i.claim for i in load_claims(claims, corpus)] == [i.claim for i in items]  # told apart by its format


def test_citation_integrity_carries_fine_grained_refute_kinds():
    items = load_dataset("citation-integrity", "dev", DATA)
    contradiction = next(i for i in items if i.id.startswith("24:"))
    assert contradiction.label == C and contradiction.kind == "CONTRADICT"
    assert "<|" not in contradiction.claim and contradiction.claim.startswith("PWLD and particularly those with")
    assert {i.kind for i in items if i.label == C} == {"CONTRADICT", "NOT_SUBSTANTIATE", "NO_RATIONALE"}


def test_bad_files_name_the_file_and_line(tmp_path):
    claims, corpus = tmp_path / "claims.jsonl", tmp_path / "corpus.jsonl"
    corpus.write_text('{"doc_id": 1, "abstract": ["One."]}\n')
    claims.write_text('{"id": 1, "claim": "x", "cited_doc_ids": [1], "evidence": {}}\nnot json\n')
    with pytest.raises(ClaimSetError, match=r"claims.jsonl, line 2: not JSON"):
        load_claims(claims, corpus)
    claims.write_text('{"id": 1, "claim": "x", "cited_doc_ids": [1], "evidence": {"1": [{"sentences": [0], '
                      '"label": "MAYBE"}]}}\n')
    with pytest.raises(ClaimSetError, match=r"line 1: unknown label 'MAYBE'"):
        load_claims(claims, corpus)
    with pytest.raises(ClaimSetError, match="unknown split 'test'"):
        load_dataset("scifact", "test", DATA)
    with pytest.raises(ClaimSetError, match="not found"):
        load_dataset("scifact", "dev", tmp_path)

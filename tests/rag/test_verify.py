"""The citation verifier: three verdicts with reasons on the NEJM SYGMA 1 abstract, offline loading, clear errors."""

from __future__ import annotations

import shutil
import socket

import pytest

from ingest.index import LoadedIndex
from pubmed_rag.settings import VerifySettings
from rag.verify import SHIPPED, Support, SupportScorer, VerifierError, load_verifier

NONINFERIOR = "As-needed budesonide-formoterol was noninferior to budesonide maintenance"
LOWER = "Exacerbation rates were lower with as-needed budesonide-formoterol than with terbutaline"
UNRELATED = "Metformin inhibits mitochondrial complex I and reduces tumour growth in pancreatic cancer cells"


@pytest.fixture(scope="module")
def sygma(small_index_dir) -> str:
    index = LoadedIndex(small_index_dir, "small")
    return index.store.get_many(["29768149"])["29768149"].abstract


@pytest.fixture(scope="module")
def verifier(embedder) -> SupportScorer:
    return SupportScorer(embedder, VerifySettings())


def test_noninferior_claim_is_contradicted_with_the_reason(verifier, sygma):
    s = verifier.check(NONINFERIOR, sygma)
    assert s.label == "contradicted" and verifier.verdict(s) == "contradicted"
    assert "'inferior' in the abstract, 'noninferior' in the claim" in s.reason
    assert "inferior to budesonide maintenance" in s.sentence and s.sentences[0] == s.sentence
    assert 0.5 <= s.probability <= 1 and s.scorer == "verifier"


def test_lower_exacerbations_claim_is_supported(verifier, sygma):
    s = verifier.check(LOWER, sygma)
    assert s.label == "supported" and s.rule == "" and s.probability >= 0.5
    assert "terbutaline" in s.sentence and "exacerbation" in s.sentence.lower()
    assert set(s.probabilities) == {"supported", "contradicted", "not enough information"}
    assert abs(sum(s.probabilities.values()) - 1) < 1e-3


def test_unrelated_claim_is_not_enough_information(verifier, sygma):
    s = verifier.check(UNRELATED, sygma)
    assert s.label == "not enough information" and s.reason


def test_score_matrix_and_similarity_verdict_keep_working(verifier, sygma, embedder):
    matrix = verifier.score_matrix([LOWER, UNRELATED], [sygma, "Metformin inhibits mitochondrial complex I."])
    assert [len(row) for row in matrix] == [2, 2] and all(isinstance(s, Support) for row in matrix for s in row)
    assert matrix[1][1].score > matrix[1][0].score  # .score stays the cosine similarity
    assert verifier.verdict(0.9) == "supported" and verifier.verdict(0.32) == "weak" and verifier.verdict(0.1) == "unsupported"


def test_cosine_fallback_needs_no_weights_and_still_applies_the_rules(embedder, sygma, tmp_path):
    scorer = SupportScorer(embedder, VerifySettings(scorer="cosine", model=str(tmp_path / "absent")))
    assert scorer.model is None
    s = scorer.check(NONINFERIOR, sygma)
    assert s.label == "contradicted" and s.rule == "direction"
    assert scorer.check(LOWER, sygma).label == "supported"
    assert SupportScorer(embedder, VerifySettings(scorer="cosine", rules=False)).check(NONINFERIOR, sygma).label == "supported"


def test_shipped_weights_load_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the verifier tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    load_verifier.cache_clear()
    model = load_verifier(str(SHIPPED))  # load time is measured in docs/evaluation.md, not asserted here
    assert model.transformers_model.config.id2label[1] == "contradicted"
    assert (SHIPPED / "README.md").read_text().startswith("# pubmed-rag citation verifier")
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) < 10e6


def test_corrupted_or_missing_weights_name_the_cosine_fallback(embedder, tmp_path):
    broken = tmp_path / "verifier"
    shutil.copytree(SHIPPED, broken)
    weights = broken / "trained.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    weights.write_bytes(bytes(data))
    with pytest.raises(VerifierError, match="corrupted.*verify.scorer cosine"):
        SupportScorer(embedder, VerifySettings(model=str(broken)))
    weights.write_bytes(b"not a safetensors file")
    (broken / "training.json").unlink()  # no checksum record: refused, never loaded unchecked
    with pytest.raises(VerifierError, match="has no checksums to check its files against.*verify.scorer cosine"):
        SupportScorer(embedder, VerifySettings(model=str(broken)))
    weights.unlink()
    with pytest.raises(VerifierError, match="not found.*verify.scorer cosine"):
        SupportScorer(embedder, VerifySettings(model=str(broken)))


def test_same_verdicts_with_stored_sentences_and_on_either_runtime(embedder, sygma, small_index_dir, tmp_path):
    from rag.verify import scoring_model, verifier_path

    index = LoadedIndex(small_index_dir, "small")
    settings = VerifySettings()
    cache = str(tmp_path / "cache")
    path = str(verifier_path(settings))
    (torch_model, _), (onnx_model, warning) = scoring_model(path, "torch", cache), scoring_model(path, "onnx", cache)
    assert getattr(onnx_model, "backend", "") == "onnx" and (tmp_path / "cache" / "onnx").is_dir() and warning == ""
    claims = [NONINFERIOR, LOWER, UNRELATED]
    runs = [SupportScorer(embedder, settings, model=torch_model).score_pairs([(c, sygma) for c in claims]),
            SupportScorer(embedder, settings, model=torch_model, sentences=index.sentences)
            .score_pairs([(c, sygma) for c in claims]),
            SupportScorer(embedder, settings, model=onnx_model, sentences=index.sentences)
            .score_pairs([(c, sygma) for c in claims])]
    assert [[s.label for s in run] for run in runs] == [["contradicted", "supported", "not enough information"]] * 3
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            assert a.score == b.score and a.sentences == b.sentences
            assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) <= 1e-3

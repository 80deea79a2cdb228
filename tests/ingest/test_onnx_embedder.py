"""The ONNX Runtime embedder gives PyTorch's vectors on real abstracts, exports once, and the backend setting picks it
or falls back to PyTorch."""

from __future__ import annotations

import gzip
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import ingest.onnx_embedder as onnx_embedder
from ingest.embedder import SentenceTransformerEmbedder, _load, load_embedder, resolve_model_path
from ingest.onnx_embedder import MIN_COSINE, ModelLayout, OnnxEmbedder, OnnxUnavailable
from pubmed_rag.checksums import sha256_file
from pubmed_rag.settings import Settings, iter_fields
from pubmed_rag.threads import few_threads, one_thread_requested
from tests.conftest import SAMPLE_ABSTRACTS

MODEL = "all-MiniLM-L6-v2"


def _abstracts() -> list[str]:
    """12 PubMedQA abstracts (most over 256 tokens) and 6 BC5CDR ones (shorter)."""
    with gzip.open(SAMPLE_ABSTRACTS, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows = [r for r in rows if r["source"] == "pubmedqa"][:12] + [r for r in rows if r["source"] == "bc5cdr"][:6]
    return [f"{r['title']} {r['abstract']}".strip() for r in rows]


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    """The configured cache, where the suite's own embedder (backend auto) keeps its export: exported once per
    machine, not once per test run."""
    return Settings.load().paths.cache_dir


@pytest.fixture(scope="module")
def torch_embedder():
    return load_embedder(MODEL, 256, "torch")


@pytest.fixture(scope="module")
def onnx(cache_dir):
    return load_embedder(MODEL, 256, "onnx", cache_dir)


@pytest.fixture
def fresh_cache():
    """Embedders built inside the test are not kept for later ones (nor earlier ones reused)."""
    _load.cache_clear()
    yield
    _load.cache_clear()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_onnx_vectors_match_pytorch_on_real_abstracts(onnx, torch_embedder):
    assert isinstance(onnx, OnnxEmbedder) and isinstance(torch_embedder, SentenceTransformerEmbedder)
    assert (onnx.name, onnx.dimension, onnx.max_tokens) == (torch_embedder.name, 384, 256)
    texts = _abstracts()
    lengths = [torch_embedder.count_tokens(t) for t in texts]
    assert [onnx.count_tokens(t) for t in texts] == lengths
    assert max(lengths) > 256 and min(lengths) < 200  # some truncated to the window, some padded in the batch
    short = [t.split(". ")[0] for t in texts[:6]]  # first sentences: query-sized texts

    expected = torch_embedder.encode(texts + short, batch_size=8)
    batched = onnx.encode(texts + short, batch_size=8)
    assert batched.dtype == np.float32 and batched.shape == (24, 384)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert _cosines(batched, expected).min() >= MIN_COSINE

    longest = int(np.argmax(lengths))
    for i in (longest, 18):  # a 256-token truncated abstract alone, and a short text alone (the one-thread session)
        alone = onnx.encode([(texts + short)[i]])
        assert float(_cosines(alone, expected[i:i + 1])[0]) >= MIN_COSINE
    # Truncation is the window's: text past the 256th token changes nothing.
    cut = onnx.tokenizer.decode(onnx.tokenizer(texts[longest], add_special_tokens=False)["input_ids"][:300])
    assert float(_cosines(onnx.encode([cut]), expected[longest:longest + 1])[0]) >= MIN_COSINE
    assert onnx.encode([]).shape == (0, 384)


def test_direct_tokenizer_gives_the_model_tokenizers_ids(onnx):
    """encode() calls the Rust tokenizer directly (faster for a query): same ids and type ids as the model's
    tokenizer with the window's truncation, on abstracts over the window, short texts, accents and an empty one."""
    texts = _abstracts() + ["Is aspirin effective?", "", "ÄÖü naïve café — β-blockers ≥ 5 mg", "x " * 400]
    for text in texts:
        expected = onnx.tokenizer(text, truncation="longest_first", max_length=onnx.max_tokens)
        got = onnx._fast.encode(text)
        assert (got.ids, got.type_ids) == (expected["input_ids"], expected["token_type_ids"])


def test_export_is_cached_and_its_check_recorded(onnx, cache_dir, fresh_cache, monkeypatch):
    model_file = Path(onnx.model_file)
    check = json.loads((model_file.parent / "check.json").read_text())
    assert check["passed"] and check["min_cosine"] >= MIN_COSINE and check["texts"] >= 10
    assert model_file.parent.parent == Path(cache_dir).expanduser() / "onnx"
    before = {p.name: p.stat().st_mtime_ns for p in model_file.parent.iterdir()}

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_embedder, "export", no_export)
    again = load_embedder(MODEL, 256, "onnx", cache_dir)
    assert again is not onnx and again.model_file == onnx.model_file
    assert {p.name: p.stat().st_mtime_ns for p in model_file.parent.iterdir()} == before
    assert not [p for p in model_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_export_folder_is_keyed_by_the_model(tmp_path):
    real = Path(resolve_model_path(MODEL))
    layout = ModelLayout.read(str(real))
    assert (layout.pooling, layout.dimension, layout.max_seq_length) == ("mean", 384, 256)
    assert layout.export_dir(tmp_path) == ModelLayout.read(str(real)).export_dir(tmp_path)
    # The same files elsewhere with one setting changed: another model, another export.
    other = tmp_path / "other-model"
    for file in real.rglob("*"):
        if file.is_file():
            target = other / file.relative_to(real)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(file, target)
    (other / "config.json").unlink()
    config = json.loads((real / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    assert ModelLayout.read(str(other)).export_dir(tmp_path) != layout.export_dir(tmp_path)


def test_models_the_onnx_backend_does_not_handle(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(OnnxUnavailable, match="Dense") as info:
        ModelLayout.read(str(tmp_path))
    assert info.value.expected
    with pytest.raises(OnnxUnavailable, match="local model folders"):
        ModelLayout.read("some-org/some-hub-model")


def test_backend_setting(monkeypatch, cache_dir):
    assert Settings().embedding.backend == "auto"
    assert Settings.load({"embedding.backend": "onnx"}).embedding.backend == "onnx"
    assert "embedding.backend" in dict(iter_fields())  # the CLI's --embedding.backend flag
    with pytest.raises(ValidationError):
        Settings.load({"embedding.backend": "tensorflow"})
    monkeypatch.setenv("PUBMED_RAG_EMBEDDING__BACKEND", "torch")
    assert Settings.load().embedding.backend == "torch"
    assert isinstance(load_embedder(MODEL, 256), SentenceTransformerEmbedder)  # backend from the environment
    assert isinstance(load_embedder(MODEL, 256, "auto", cache_dir), OnnxEmbedder)


def test_missing_onnxruntime_auto_falls_back_onnx_explains(monkeypatch, tmp_path, fresh_cache, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with caplog.at_level(logging.WARNING, logger="ingest.embedder"):
        fallback = load_embedder(MODEL, 256, "auto", tmp_path)
    assert isinstance(fallback, SentenceTransformerEmbedder)
    assert "onnxruntime" in caplog.text and "PyTorch" in caplog.text
    # Shown to the user too (answers and checks carry it), not only logged.
    assert fallback.warnings == ["embedding runs on PyTorch, slower: embedding.backend onnx needs the onnxruntime "
                                 "package, which is not installed (pip install onnxruntime)"]
    with pytest.raises(OnnxUnavailable, match=r"onnxruntime.*--embedding\.backend torch"):
        load_embedder(MODEL, 256, "onnx", tmp_path)
    assert not (tmp_path / "onnx").exists()


def test_failed_check_auto_falls_back_onnx_refuses(monkeypatch, tmp_path, onnx, fresh_cache, caplog):
    monkeypatch.setattr(onnx_embedder, "ensure_export",
                        lambda *a, **k: (onnx.model_file, {"passed": False, "min_cosine": 0.998}))
    with caplog.at_level(logging.WARNING, logger="ingest.embedder"):
        fallback = load_embedder(MODEL, 256, "auto", tmp_path)
    assert isinstance(fallback, SentenceTransformerEmbedder) and "0.998" in caplog.text
    assert len(fallback.warnings) == 1 and "min cosine 0.998000" in fallback.warnings[0]
    with pytest.raises(OnnxUnavailable, match=r"differ.*--embedding\.backend torch"):
        load_embedder(MODEL, 256, "onnx", tmp_path)


def test_few_threads_asks_for_one_thread_without_changing_the_process():
    import torch

    threads = torch.get_num_threads()
    assert not one_thread_requested()
    with few_threads(3, limit=512):
        # Only this call's own session is chosen by it: torch's process-wide count stays as configured.
        assert one_thread_requested() and torch.get_num_threads() == threads
    assert not one_thread_requested()
    with few_threads(2):  # more than one text: the caller's threads
        assert not one_thread_requested()


def test_a_damaged_cached_export_is_exported_again(tmp_path, fresh_cache, caplog):
    first = load_embedder(MODEL, 256, "onnx", tmp_path)
    expected = first.encode(["Budesonide-formoterol reduced severe exacerbations."])
    model_file = Path(first.model_file)
    check = json.loads((model_file.parent / "check.json").read_text())
    assert check["sha256"] == sha256_file(model_file)
    with open(model_file, "r+b") as handle:  # one flipped byte in the middle of the weights
        handle.seek(model_file.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    _load.cache_clear()
    with caplog.at_level(logging.WARNING, logger="ingest.onnx_embedder"):
        again = load_embedder(MODEL, 256, "onnx", tmp_path)
    assert "does not match the checksum" in caplog.text and str(model_file) in caplog.text
    rewritten = json.loads((model_file.parent / "check.json").read_text())
    assert rewritten["passed"] and sha256_file(model_file) == rewritten["sha256"]  # exported and checked again
    np.testing.assert_allclose(again.encode(["Budesonide-formoterol reduced severe exacerbations."]), expected,
                               atol=1e-6)

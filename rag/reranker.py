"""The reranker trained here (``pubmed_rag/models/reranker``, ``pubmed-rag train reranker``): loading it, and its score.

A CrossEncoder reads (question, text) and gives P(relevant): the softmax of a 2-output model's logits (the shipped
one), or the sigmoid of a 1-output model's logit (other CrossEncoders given by path). Used to reorder retrieval
candidates (``rag.retrieve``) and to choose key-finding sentences (``rag.sentence_scorers.reranker``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pubmed_rag.paths import MODELS
from rag.cross_encoder import check_weights, load_cross_encoder

SHIPPED = MODELS / "reranker"
REBUILD = "Rebuild it with `pubmed-rag train reranker`"


class RerankerError(RuntimeError):
    """The reranker cannot be loaded; the message names the file and how to rebuild it."""


def reranker_path(value: str) -> Path:
    """The reranker folder a setting names: ``""`` or ``"shipped"`` -> ``pubmed_rag/models/reranker``, else the
    path given."""
    return SHIPPED if value in ("", "shipped") else Path(value)


@lru_cache(maxsize=2)
def load_reranker(path: str, cache_dir: str = "") -> Any:
    """The CrossEncoder at ``path``; a folder trained here is checked against the sha256 in its training.json.
    Loads offline; ``cache_dir`` (default ``paths.cache_dir``) holds its rebuilt weights. Raises ``RerankerError``
    naming the file and the rebuild command."""
    folder = Path(path)
    if folder.is_dir() or folder == SHIPPED:
        remedy = f"{REBUILD}, or turn reranking off (retrieval.reranker '', answer.sentence_scorer cosine)."
        check_weights(folder, what="reranker", error=RerankerError, remedy=remedy)
    else:
        remedy = "Give a local CrossEncoder folder or turn reranking off."
    return load_cross_encoder(folder, what="the reranker", error=RerankerError, remedy=remedy,
                              cache_dir=cache_dir or None)


def relevance(model: Any, pairs: list[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
    """P(relevant) of each (question, text) pair, in [0, 1]."""
    if not pairs:
        return np.zeros(0, dtype=np.float64)
    import torch

    logits = np.asarray(model.predict(pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True,
                                      activation_fn=torch.nn.Identity()), dtype=np.float64)
    if logits.ndim == 2 and logits.shape[1] == 2:
        return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))
    return 1.0 / (1.0 + np.exp(-logits.reshape(len(pairs), -1)[:, -1]))

"""Models trained here, on a CPU, from the shared data: one training loop and one way to ship, several tasks.

The cross-encoder tasks (verifier, reranker) build ``Example`` pairs and call ``train_cross_encoder`` (a
sentence-transformers ``CrossEncoder`` initialised from the installed all-MiniLM-L6-v2 weights) and ``ship`` (the
change from the base weights, int8, and a model card); the generator task (``rag.training.generator``) fine-tunes
SmolLM2-135M-Instruct with LoRA and ships the adapter. Tasks are listed in ``TASKS``; ``pubmed-rag train <task>``
runs one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pubmed_rag.paths import MODELS
from rag.training.common import (
    RUNS,
    Example,
    TrainConfig,
    TrainResult,
    _batches,
    base_model_path,
    config_dict,
    loader_checksums,
    progress_printer,
    run_metadata,
    set_seed,
    ship,
    shipped_size_mb,
    train_cross_encoder,
)

__all__ = ["MODELS", "RUNS", "TASKS", "Example", "TrainConfig", "TrainResult", "_batches", "base_model_path",
           "config_dict", "loader_checksums", "progress_printer", "run_metadata", "set_seed", "ship",
           "shipped_size_mb", "train_cross_encoder"]


def _train_verifier(**kwargs: Any) -> dict[str, Any]:
    from rag.training.verifier import train_verifier

    return train_verifier(**kwargs)


def _train_reranker(**kwargs: Any) -> dict[str, Any]:
    from rag.training.reranker import train_reranker

    return train_reranker(**kwargs)


def _train_generator(**kwargs: Any) -> dict[str, Any]:
    from rag.training.generator import train_generator

    return train_generator(**kwargs)


TASKS: dict[str, Callable[..., dict[str, Any]]] = {"verifier": _train_verifier, "reranker": _train_reranker,
                                                    "generator": _train_generator}

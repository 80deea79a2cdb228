"""Loading sentence-transformers ``CrossEncoder`` models (the reranker, the verifier) with one clear error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def check_weights(folder: str | Path, *, what: str, remedy: str, error: type[Exception] = RuntimeError) -> Path:
    """The weights file of a model trained here (``folder/model.safetensors``), checked against the sha256 its
    training.json records (``rag.training.ship`` writes both). Raises ``error`` naming the file and ``remedy`` when
    the file is missing or its checksum differs: a damaged file would otherwise mis-score silently."""
    weights = Path(folder) / "model.safetensors"
    if not weights.is_file():
        raise error(f"{what} weights not found: {weights}. {remedy}")
    record = Path(folder) / "training.json"
    expected = json.loads(record.read_text(encoding="utf-8")).get("sha256") if record.is_file() else None
    if expected and hashlib.sha256(weights.read_bytes()).hexdigest() != expected:
        raise error(f"{what} weights {weights} are corrupted (checksum differs from training.json). {remedy}")
    return weights


def load_cross_encoder(path: str | Path, *, what: str, remedy: str, error: type[Exception] = RuntimeError) -> Any:
    """The ``CrossEncoder`` at ``path`` on the CPU in float32; a local folder loads with no network.

    Any failure raises ``error`` as "cannot load {what} '{path}' ({cause}); {remedy}": a damaged file surfaces as one
    of many exception types, all meaning the same to the user."""
    import torch
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(str(path), device="cpu", local_files_only=Path(path).is_dir(),
                            model_kwargs={"dtype": torch.float32})
    except Exception as exc:
        raise error(f"cannot load {what} {str(path)!r} ({exc}); {remedy}") from exc

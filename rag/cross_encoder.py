"""Loading sentence-transformers ``CrossEncoder`` models (the reranker, the verifier) with one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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

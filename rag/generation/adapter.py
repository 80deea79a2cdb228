"""The generator's trained weights: a LoRA adapter for the installed SmolLM2-135M-Instruct, shipped in
``pubmed_rag/models/generator`` (``pubmed-rag train generator`` writes it).

The folder holds ``adapter.safetensors`` (per adapted Linear layer a low-rank pair ``lora_A`` (rank x in) and
``lora_B`` (out x rank), float16; the rank, scale and base checksum in its metadata), ``training.json`` (what the
run was, with the sha256 of every file the loader reads) and ``README.md`` (the model card). Loading checks both
checksums (the adapter's, and the installed base GGUF's against the one it was trained from) and adds
``scale * B @ A`` to each base weight, so generation runs at the base model's speed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from pubmed_rag.checksums import installed_sha256
from pubmed_rag.paths import MODELS

ADAPTER_FILE = "adapter.safetensors"
RECORD_FILE = "training.json"
SHIPPED = MODELS / "generator"
REMEDY = "rebuild it with `pubmed-rag train generator`, or use the base model with --generator.adapter ''"


class AdapterError(RuntimeError):
    """The trained generator weights are missing, damaged or made for other base weights."""


def adapter_path(setting: str) -> Path | None:
    """The adapter folder a ``generator.adapter`` setting names (``None`` for '': the base model)."""
    if not setting:
        return None
    return SHIPPED if setting == "shipped" else Path(setting).expanduser()


def read_adapter(folder: Path, base_file: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float, dict]:
    """``({layer name: (A, B)}, scale, training record)`` of the adapter in ``folder``, checked.

    Raises ``AdapterError`` naming the file when the folder or a file is missing, a checksum differs from
    training.json, or the adapter was trained from other base weights than ``base_file``."""
    from safetensors.numpy import load

    folder = Path(folder)
    weights, record_file = folder / ADAPTER_FILE, folder / RECORD_FILE
    for path in (weights, record_file):
        if not path.is_file():
            raise AdapterError(f"trained generator file not found: {path}; {REMEDY}")
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        expected = record["files"][ADAPTER_FILE]
    except (ValueError, KeyError, TypeError) as exc:
        raise AdapterError(f"{record_file} is damaged ({exc}); {REMEDY}") from exc
    data = weights.read_bytes()  # one read: hashed, then parsed
    if hashlib.sha256(data).hexdigest() != expected:
        raise AdapterError(f"trained generator weights {weights} are corrupted (checksum differs from "
                           f"{record_file.name}); {REMEDY}")
    try:
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        meta = header.get("__metadata__") or {}
        tensors = load(data)
    except Exception as exc:  # a damaged header surfaces as one of several exception types
        raise AdapterError(f"cannot read {weights} ({exc}); {REMEDY}") from exc
    if meta.get("base_sha256") != installed_sha256(base_file):
        raise AdapterError(f"{weights} was trained from other base weights than the installed {base_file}; {REMEDY}")
    layers = {}
    for name in tensors:
        if name.endswith(".lora_A"):
            layer = name.removesuffix(".lora_A")
            layers[layer] = (tensors[name], tensors[f"{layer}.lora_B"])
    return layers, float(meta["scale"]), record


def merge_adapter(model: Any, layers: dict[str, tuple[np.ndarray, np.ndarray]], scale: float) -> int:
    """Add ``scale * B @ A`` to the weight of each named Linear layer of ``model`` (float32); returns the count."""
    import torch

    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise AdapterError(f"the adapter names layers this model lacks ({missing[:3]}); {REMEDY}")
    with torch.no_grad():
        for name, (a, b) in layers.items():
            weight = modules[name].weight
            delta = torch.from_numpy(b.astype(np.float32)) @ torch.from_numpy(a.astype(np.float32))
            if delta.shape != weight.shape:
                raise AdapterError(f"adapter layer {name} has shape {tuple(delta.shape)}, the model's "
                                   f"{tuple(weight.shape)}; {REMEDY}")
            weight.add_(delta.to(weight.dtype), alpha=scale)
    return len(layers)

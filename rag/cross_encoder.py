"""Loading sentence-transformers ``CrossEncoder`` models (the reranker, the verifier) with one clear error, and the
compact form the models trained here are shipped in.

Training starts from the installed all-MiniLM-L6-v2 and leaves its embeddings and lowest layers frozen, so a shipped
model stores only what training changed (``trained.safetensors``): each changed tensor as an int8 difference from
the base weights with one float32 scale a row (for a 3-layer fine-tune, 5.5 MB instead of 45 MB of fp16 weights),
and tensors the base does not have (the classification head) whole. Loading adds the differences back to the base
weights, which the file names by checksum, once per trained file: the rebuilt float32 model is kept in the cache
(``rebuilt_model``) and checked, not rebuilt, at the next start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pubmed_rag.checksums import checksum_problem, file_checksums, sha256_file
from pubmed_rag.settings import Settings

log = logging.getLogger(__name__)
TRAINED_FILE = "trained.safetensors"
REBUILT_RECORD = "rebuilt.json"
_SCALE, _WHOLE, _PREFIX = "::scale", "::whole", "bert."


def base_weights_file() -> Path:
    """The installed all-MiniLM-L6-v2 weights every model trained here starts from."""
    from ingest.embedder import resolve_model_path
    from pubmed_rag.settings import DEFAULT_EMBEDDER

    return Path(resolve_model_path(DEFAULT_EMBEDDER)) / "model.safetensors"


def _load_base() -> tuple[Path, dict[str, np.ndarray], str]:
    """The installed base weights: their file, their tensors and their sha256, from one read of the file."""
    from safetensors.numpy import load

    base_file = base_weights_file()
    data = base_file.read_bytes()
    return base_file, load(data), hashlib.sha256(data).hexdigest()


def pack_trained(state: dict[str, np.ndarray], out: Path, tolerance: float = 1e-3) -> int:
    """Write the tensors of ``state`` (a fine-tuned ``BertFor...`` state dict, float32) that differ from the base
    weights to ``out``: int8 differences with a per-row scale, or whole where the base has no such tensor. A tensor
    whose difference is below ``tolerance`` of the base's norm (frozen: equal, or equal up to fp16 rounding) is left
    out. Returns the number of tensors written."""
    from safetensors.numpy import save_file

    base_file, base, base_sha256 = _load_base()
    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        value = np.asarray(value, dtype=np.float32)
        reference = base.get(name.removeprefix(_PREFIX))
        if reference is None or reference.shape != value.shape:
            tensors[name + _WHOLE] = value
            continue
        delta = value - reference.astype(np.float32)
        if np.linalg.norm(delta) <= tolerance * max(float(np.linalg.norm(reference)), 1e-12):
            continue
        rows = delta.reshape(delta.shape[0], -1) if delta.ndim > 1 else delta.reshape(1, -1)
        scale = np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127.0
        tensors[name] = np.round(rows / scale[:, None]).astype(np.int8).reshape(delta.shape)
        tensors[name + _SCALE] = scale.astype(np.float32)
    save_file(tensors, str(out), metadata={"base": base_file.parent.parent.name, "base_sha256": base_sha256})
    return sum(1 for n in tensors if not n.endswith(_SCALE))


def unpack_trained(path: Path, error: type[Exception] = RuntimeError) -> dict[str, np.ndarray]:
    """The full float32 state dict of a model shipped by ``pack_trained``: the base weights plus its differences."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), framework="np") as handle:
        expected = (handle.metadata() or {}).get("base_sha256")
    base_file, base, base_sha256 = _load_base()
    if expected and base_sha256 != expected:
        raise error(f"{path} was trained from other base weights than the installed {base_file}; rebuild it with "
                    "`pubmed-rag train`.")
    packed = load_file(str(path))
    state = {_PREFIX + k: v.astype(np.float32, copy=False) for k, v in base.items()}
    for name, value in packed.items():
        if name.endswith(_WHOLE):
            state[name.removesuffix(_WHOLE)] = value
        elif not name.endswith(_SCALE):
            scale = packed[name + _SCALE]
            rows = value.reshape(len(scale), -1).astype(np.float32) * scale[:, None]
            state[name] = state[name] + rows.reshape(value.shape)
    return state


def check_weights(folder: str | Path, *, what: str, remedy: str, error: type[Exception] = RuntimeError) -> Path:
    """The weights file of a model trained here (``folder/trained.safetensors``), checked with every other file the
    loader reads (config, tokenizer) against the sha256 its training.json records (``rag.training.ship`` writes
    them; a record from before ``files`` covers the weights alone). Raises ``error`` naming the file and ``remedy``
    when a file is missing, its checksum differs or no checksum is recorded: a damaged file would otherwise mis-score
    silently."""
    weights = Path(folder) / TRAINED_FILE
    if not weights.is_file():
        raise error(f"{what} weights not found: {weights}. {remedy}")
    record = Path(folder) / "training.json"
    metadata = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    expected = dict(metadata.get("files") or {})
    if not expected and metadata.get("sha256"):
        expected = {TRAINED_FILE: metadata["sha256"]}
    if not expected:  # nothing to check against is an error, not a pass
        raise error(f"{what} in {folder} has no checksums to check its files against ({record} with their sha256 is "
                    f"missing). {remedy}")
    for name, digest in sorted(expected.items(), key=lambda kv: kv[0] != TRAINED_FILE):
        path = Path(folder) / name
        if not path.is_file():
            raise error(f"{what} file {path} is missing (training.json lists it). {remedy}")
        if sha256_file(path) != digest:
            kind = "weights" if name == TRAINED_FILE else "file"
            raise error(f"{what} {kind} {path} are corrupted (checksum differs from training.json). {remedy}"
                        if kind == "weights" else
                        f"{what} file {path} is corrupted (checksum differs from training.json). {remedy}")
    return weights


def rebuilt_model(folder: Path, cache_dir: str | Path | None = None, error: type[Exception] = RuntimeError) -> Path:
    """The model shipped compactly in ``folder`` as a plain CrossEncoder folder: rebuilt on the base weights once per
    checksum of its trained file, into ``<paths.cache_dir>/models/<name>-<sha256[:16]>`` (written under a temporary
    name and renamed into place), then reused. Every file there is checked against ``rebuilt.json`` at each load; a
    damaged copy is rebuilt."""
    from safetensors.numpy import save_file

    cache_dir = Path(cache_dir if cache_dir is not None else Settings.load().paths.cache_dir).expanduser()
    trained = sha256_file(folder / TRAINED_FILE)
    target = cache_dir / "models" / f"{folder.name}-{trained[:16]}"
    problem = _rebuilt_problem(target, trained)
    if not problem:
        return target
    if target.exists():
        log.warning("rebuilding the cached model %s (%s)", target, problem)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        for item in folder.iterdir():
            if item.is_file() and item.name not in (TRAINED_FILE, "training.json", "README.md"):
                shutil.copy2(item, tmp)
        save_file(unpack_trained(folder / TRAINED_FILE, error), str(tmp / "model.safetensors"))
        record = {"source": str(folder), "trained_sha256": trained, "files": file_checksums(tmp)}
        (tmp / REBUILT_RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would keep the cache from other users
        if not _rebuilt_problem(target, trained):  # another thread or process published it meanwhile: in use
            return target
        if target.exists():  # damaged: moved aside first, so that no one ever loads a half-removed folder
            aside = target.with_name(f".{target.name}.damaged-{os.getpid()}-{threading.get_ident()}")
            os.replace(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process published the same model first: use it if it is whole
            if _rebuilt_problem(target, trained):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _rebuilt_problem(target: Path, trained: str) -> str:
    record_file = target / REBUILT_RECORD
    if not record_file.is_file():
        return f"{record_file} is missing"
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        return f"{record_file} is damaged ({exc})"
    if record.get("trained_sha256") != trained:
        return f"{record_file} names other trained weights"
    return checksum_problem(target, record.get("files") or {})


def load_cross_encoder(path: str | Path, *, what: str, remedy: str, error: type[Exception] = RuntimeError,
                       cache_dir: str | Path | None = None) -> Any:
    """The ``CrossEncoder`` at ``path`` on the CPU in float32; a local folder loads with no network. A folder
    shipped in the compact form (``trained.safetensors``) loads from its rebuilt copy (``rebuilt_model``).

    Any failure raises ``error`` as "cannot load {what} '{path}' ({cause}); {remedy}": a damaged file surfaces as one
    of many exception types, all meaning the same to the user."""
    import torch
    from sentence_transformers import CrossEncoder

    path = Path(path) if Path(path).is_dir() else path
    try:
        if isinstance(path, Path) and (path / TRAINED_FILE).is_file():
            try:
                path = rebuilt_model(path, cache_dir, error)
            except OSError as exc:  # the cache cannot be written: rebuild for this load only
                log.warning("cannot keep the rebuilt %s in the cache (%s); rebuilding it for this run", what, exc)
                with tempfile.TemporaryDirectory(prefix="pubmed-rag-model-") as tmp:
                    folder = rebuilt_model(path, tmp, error)
                    return CrossEncoder(str(folder), device="cpu", local_files_only=True,
                                        model_kwargs={"dtype": torch.float32})
        return CrossEncoder(str(path), device="cpu", local_files_only=isinstance(path, Path),
                            model_kwargs={"dtype": torch.float32})
    except error:
        raise
    except Exception as exc:
        raise error(f"cannot load {what} {str(path)!r} ({exc}); {remedy}") from exc

"""A trained ``CrossEncoder`` (the verifier) run with ONNX Runtime: the same logits as PyTorch, fewer milliseconds.

On first use the classifier is exported once with the legacy ``torch.onnx.export`` into
``<paths.cache_dir>/onnx/<name>-<hash>/model.onnx`` (the hash covers the shipped weights' checksum, the export
version and torch's version), its BERT graph fused by onnxruntime's transformer optimizer (``ingest.onnx_embedder``
does the same for the embedder), and checked against PyTorch on real pairs; ``check.json`` records the check and the
file's sha256, checked at every load (a damaged file is exported again). A failed export or check leaves the PyTorch
model in use (``load_onnx`` raises ``OnnxUnavailable``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ingest.onnx_embedder import (
    INPUTS,
    OPSET,
    OnnxUnavailable,
    check_texts,
    export_graph,
    fast_tokenizer,
    import_onnxruntime,
    open_session,
    padded_inputs,
    read_export,
    write_json_atomic,
)
from pubmed_rag.checksums import sha256_file
from pubmed_rag.threads import one_thread_requested

EXPORT_VERSION = 1
MAX_PROBABILITY_DIFFERENCE = 1e-3  # the export must give every check pair's probabilities within this of PyTorch's


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class OnnxCrossEncoder:
    """``predict(pairs)`` like ``CrossEncoder.predict`` (logits, pairs x labels), with onnxruntime: a session on the
    machine's cores, or on one thread inside ``pubmed_rag.threads.few_threads``."""

    backend = "onnx"

    def __init__(self, model_file: str | Path, tokenizer: Any, max_length: int, labels: int) -> None:
        self._ort = import_onnxruntime()
        self.model_file = str(model_file)
        self.labels = labels
        self._fast = fast_tokenizer(tokenizer, max_length)
        self._pad_id = int(tokenizer.pad_token_id or 0)
        self._sessions: dict[bool, Any] = {}

    def _session(self, single: bool) -> Any:
        if single not in self._sessions:
            self._sessions[single] = open_session(self._ort, self.model_file, 1 if single else 0)
        return self._sessions[single]

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 16, **_: Any) -> np.ndarray:
        """Logits for each (first, second) pair; the keyword arguments of ``CrossEncoder.predict`` are accepted."""
        if not pairs:
            return np.zeros((0, self.labels), dtype=np.float32)
        session = self._session(one_thread_requested())
        encodings = self._fast.encode_batch([(a, b) for a, b in pairs])
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(pairs), self.labels), dtype=np.float32)
        for start in range(0, len(pairs), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = session.run(None, padded_inputs([encodings[i] for i in rows], self._pad_id))[0]
        return out


def _check_pairs() -> list[tuple[str, str]]:
    """Real sentence pairs (abstract text from ``ingest/onnx_check_texts.json``), short and long."""
    texts = check_texts()
    return [(texts[i][:200], texts[(i + 1) % len(texts)]) for i in range(len(texts))]


def export_dir(cache_dir: Path, name: str, weights_sha256: str) -> Path:
    import torch

    digest = hashlib.sha256(f"{EXPORT_VERSION} {OPSET} {torch.__version__} {weights_sha256}".encode()).hexdigest()
    return Path(cache_dir).expanduser() / "onnx" / f"{name}-{digest[:16]}"


def export(model: Any, folder: Path) -> dict[str, Any]:
    """Export ``model`` (a loaded ``CrossEncoder``) into ``folder/model.onnx`` and check it against PyTorch."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    hf = model.transformers_model
    example = model.tokenizer(["Aspirin for the primary prevention of cardiovascular events.", "Aspirin."],
                              ["Aspirin reduced events.", "No."], padding=True, return_tensors="pt")

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model.", suffix=".onnx.tmp")
    os.close(fd)
    try:
        axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS} | {"logits": {0: "batch"}}
        fused = export_graph(hf, example, tmp, "logits", axes)
        pairs = _check_pairs()
        candidate = OnnxCrossEncoder(tmp, model.tokenizer, model.max_seq_length, hf.config.num_labels)
        expected = _softmax(np.asarray(model.predict(pairs, show_progress_bar=False, convert_to_numpy=True)))
        got = np.concatenate([_softmax(candidate.predict([p])) for p in pairs] + [_softmax(candidate.predict(pairs))])
        difference = float(np.abs(np.concatenate([expected, expected]) - got).max())
        check = {"passed": difference <= MAX_PROBABILITY_DIFFERENCE, "max_probability_difference": difference,
                 "threshold": MAX_PROBABILITY_DIFFERENCE, "pairs": len(pairs), "fused": fused,
                 "export_version": EXPORT_VERSION, "opset": OPSET, "torch": torch.__version__,
                 "onnxruntime": import_onnxruntime().__version__, "sha256": sha256_file(Path(tmp))}
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / "model.onnx")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_json_atomic(folder / "check.json", check)
    return check


def load_onnx(model: Any, name: str, weights_sha256: str, cache_dir: Path) -> OnnxCrossEncoder:
    """The ONNX Runtime twin of ``model`` (exported on first use, then read from the cache); ``OnnxUnavailable``
    when onnxruntime is missing, the export fails or its check does not pass."""
    import_onnxruntime()
    folder = export_dir(cache_dir, name, weights_sha256)
    model_file = folder / "model.onnx"
    check = read_export(folder)  # None: none yet, or damaged (checksum)
    if check is None:
        try:
            check = export(model, folder)
        except Exception as exc:  # the exporter fails in many ways, all meaning "use PyTorch"
            raise OnnxUnavailable(f"exporting the {name} to ONNX failed ({type(exc).__name__}: {exc})") from exc
    if not check.get("passed"):
        raise OnnxUnavailable(f"the ONNX export of the {name} differs from PyTorch (max probability difference "
                              f"{check.get('max_probability_difference')})")
    hf = model.transformers_model
    return OnnxCrossEncoder(model_file, model.tokenizer, model.max_seq_length, hf.config.num_labels)

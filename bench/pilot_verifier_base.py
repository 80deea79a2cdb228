"""Pilot: which installed base makes the better verifier in a session's time, MiniLM-L6 (22M) or SmolLM2-135M with a
classification head, side by side on the same pairs.

Both train one epoch on the same seeded sample of ``pubmed-rag train verifier``'s pairs (same order, class-weighted,
linear warm-up and decay), then classify a third of the calibration claims' pairs (train claims held out of
training; rationale, window and retrieved views, as ``claim_set_examples`` builds them). Reported: macro-F1 and
CONTRADICT F1 of the argmax, training seconds per pair and inference milliseconds per pair (batch 16). The result
decided the verifier's base (docs/evaluation.md).

    python bench/pilot_verifier_base.py [--n 480] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from pubmed_rag.paths import SHARED_DATA
from rag.evaluation.verify import verdict_metrics
from rag.training import TrainConfig, base_model_path, train_cross_encoder
from rag.training.verifier import LABELS, balanced_weights, build_claim_examples, calibration_items, claim_set_examples

ROOT = Path(__file__).parents[1]
DATA = SHARED_DATA


def smollm2_folder() -> Path:
    """The installed SmolLM2-135M-Instruct, converted once to safetensors (as the generator loads it)."""
    from pubmed_rag.settings import DEFAULT_GENERATOR, Settings
    from rag.generation.local import converted_folder, resolve_model

    source, gguf = resolve_model(DEFAULT_GENERATOR)
    return converted_folder(source, gguf, Settings().paths.cache_dir)


def train_smollm2(examples: list, weights: list[float], lr: float, seed: int, max_length: int) -> tuple:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    batches = [examples[i:i + 16] for i in range(0, len(examples), 16)]
    warmup = max(1, len(batches) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (len(batches) - s) / max(1, len(batches) - warmup))))
    weight = torch.tensor(weights)
    model.train()
    for batch in batches:
        enc = tokenizer([f"Claim: {e.first}\nEvidence: {e.second}" for e in batch], truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt")
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, torch.tensor([e.label for e in batch]),
                                                 weight=weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()

    def predict(pairs: list[tuple[str, str]]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(pairs), 16):
                enc = tokenizer([f"Claim: {a}\nEvidence: {b}" for a, b in pairs[i:i + 16]], truncation=True,
                                max_length=max_length, padding=True, return_tensors="pt")
                out.append(model(**enc).logits.float().numpy())
        return np.concatenate(out)

    return predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=480, help="training pairs (a seeded sample)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    examples = build_claim_examples(DATA, seed=13)
    random.Random(13).shuffle(examples)
    examples = examples[:args.n]
    weights = balanced_weights(examples)
    held = claim_set_examples(calibration_items(DATA))
    held = [held[i] for i in range(0, len(held), 3)]  # one view of each claim, about a third of the pairs
    pairs, gold = [(e.first, e.second) for e in held], [LABELS[e.label] for e in held]
    rows = {}
    config = TrainConfig(epochs=1, max_length=args.max_length, freeze_layers=2, threads=args.threads,
                         class_weights=weights)
    for name in ("minilm-l6", "smollm2-135m"):
        started = time.perf_counter()
        if name == "minilm-l6":
            model, _ = train_cross_encoder(examples, LABELS, config, base=base_model_path())

            def predict(p: list[tuple[str, str]], model=model) -> np.ndarray:
                return np.asarray(model.predict(p, batch_size=16, show_progress_bar=False))
        else:
            predict = train_smollm2(examples, weights, 3e-5, 13, args.max_length)
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        logits = predict(pairs)
        infer_ms = (time.perf_counter() - started) / len(pairs) * 1000
        m = verdict_metrics(gold, [LABELS[int(i)] for i in logits.argmax(axis=1)])
        rows[name] = {"macro_f1": m["macro_f1"], "contradict_f1": m["per_class"]["contradicted"]["f1"],
                      "train_s_per_pair": round(train_s / len(examples), 3), "infer_ms_per_pair": round(infer_ms, 1)}
        print(name, json.dumps(rows[name]), flush=True)
    print(f"\n{len(examples)} training pairs, {len(pairs)} calibration pairs\n")
    print("| base | macro-F1 | CONTRADICT F1 | train s/pair | inference ms/pair |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['macro_f1']:.3f} | {r['contradict_f1']:.3f} | {r['train_s_per_pair']:.3f} | "
              f"{r['infer_ms_per_pair']:.1f} |")
    if args.out:
        args.out.write_text(json.dumps({"n": len(examples), "held": len(pairs), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

"""Pilot: LoRA against full fine-tuning of SmolLM2-135M-Instruct for the bottom line, on a small run, side by side.

Both train on the same first N examples (seeded, same batches), then are scored on the 9B choice slice (9B1-9B2,
never trained on): mean negative log-likelihood of the target tokens, base vs trained, and training speed. The
result decided ``pubmed-rag train generator``'s method (docs/evaluation.md, "Generator").

    python bench/pilot_generator.py --examples models/generator-run/examples.jsonl [--n 64] [--held 40]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import Settings
from rag.training.generator import (
    GeneratorTrainConfig,
    base_model_files,
    choice_examples,
    load_trainable,
    target_nll,
    train_generator_model,
)
from rag.training.generator_data import read_examples, write_examples

ROOT = Path(__file__).parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=Path, required=True, help="training examples (a run's examples.jsonl)")
    parser.add_argument("--choice", type=Path, default=ROOT / "test-artifacts" / "choice-examples.jsonl",
                        help="9B choice-slice examples (built over --index and kept here when missing)")
    parser.add_argument("--index", default="eval-bioasq")
    parser.add_argument("--n", type=int, default=64, help="training examples per method")
    parser.add_argument("--held", type=int, default=40, help="choice-slice examples scored")
    parser.add_argument("--methods", default="lora,full")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    args = parser.parse_args()
    settings = Settings.load()
    if not args.choice.is_file():
        args.choice.parent.mkdir(parents=True, exist_ok=True)
        write_examples(choice_examples(SHARED_DATA, settings, args.index), args.choice)
    train = read_examples(args.examples)[: args.n]
    held = read_examples(args.choice)[: args.held]
    _, folder = base_model_files(settings.paths.cache_dir)
    base = GeneratorTrainConfig()
    base_model, tokenizer = load_trainable(replace(base, method="full"), folder)
    results = {"n_train": len(train), "n_held": len(held),
               "base_nll": round(target_nll(base_model, tokenizer, held, base.max_length), 4)}
    del base_model
    rates = {"lora": base.learning_rate, "full": base.learning_rate / 10}
    for method in args.methods.split(","):
        config = replace(base, method=method, learning_rate=rates[method])
        started = time.perf_counter()
        model, tokenizer, result = train_generator_model(train, config, folder)
        seconds = time.perf_counter() - started
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        results[method] = {"learning_rate": config.learning_rate, "seconds": round(seconds, 1),
                           "examples_per_s": round(result.examples / result.seconds, 3),
                           "trainable_parameters": trainable, "final_loss": result.final_loss,
                           "held_nll": round(target_nll(model, tokenizer, held, config.max_length), 4)}
        print(method, json.dumps(results[method]), flush=True)
        del model
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

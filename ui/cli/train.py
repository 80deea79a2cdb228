"""``pubmed-rag train``: rebuild a shipped model from the shared data (a thin shell over ``rag.training``)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pubmed_rag.paths import SHARED_DATA as SHARED
from pubmed_rag.settings import Settings


def add_parser(sub: argparse._SubParsersAction, add_common_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``train`` subcommand."""
    from rag.training import TASKS, TrainConfig
    from rag.training.generator import GeneratorTrainConfig

    p = sub.add_parser("train", help="train a model shipped with pubmed-rag (seeded; CPU)")
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--data", type=Path, default=SHARED, help=f"shared data folder (default: {SHARED})")
    p.add_argument("--out", type=Path, help="output folder, new or holding this task's interrupted run (default: "
                   "models/<task>-<date-time> under the working directory; the shipped pubmed_rag/models/<task> is never "
                   "written by default)")
    p.add_argument("--replace-shipped", dest="replace_shipped", action="store_true",
                   help="write into the shipped pubmed_rag/models/<task> (replacing it): only after comparing a run in a "
                   "new folder with it")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    # None: the task's own default (TrainConfig for the cross-encoders, GeneratorTrainConfig for the generator).
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--learning-rate", dest="learning_rate", type=float)
    p.add_argument("--max-length", dest="max_length", type=int,
                   help="tokens per (claim, sentence) or (question, text) pair; generator: prompt plus target")
    p.add_argument("--freeze-layers", dest="freeze_layers", type=int,
                   help="cross-encoders: lowest transformer layers (and the embeddings) left frozen")
    p.add_argument("--limit", type=int, default=0,
                   help="a tiny slice that checks the command in seconds: at most N pairs per data source "
                   "(verifier), the first N questions (reranker), N examples (generator)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="skip scoring the held-out split after training")
    g = p.add_argument_group("generator")
    g.add_argument("--method", choices=["lora"], default="lora",
                   help="LoRA through peft (full fine-tuning was measured and not kept: docs/evaluation.md)")
    g.add_argument("--rank", type=int, default=GeneratorTrainConfig.rank, help="LoRA rank")
    g.add_argument("--alpha", type=int, default=GeneratorTrainConfig.alpha, help="LoRA alpha (scale = alpha/rank)")
    g.add_argument("--index", default="eval-bioasq", help="the evaluation index the examples are retrieved from "
                   "(`pubmed-rag eval answers` builds it)")
    g.add_argument("--examples", type=Path, help="train on these examples (JSON Lines, as a run writes to "
                   "<out>/examples.jsonl) instead of building them")
    add_common_flags(p)


def _given(args: argparse.Namespace, *names: str) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def cmd_train(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run ``pubmed-rag train <task>``; prints what was trained, where, and how long it took."""
    from rag.training import MODELS, RUNS, TASKS, TrainConfig
    from rag.training.generator import GeneratorTrainConfig
    from rag.training.verifier import VERIFIER_CONFIG

    if not args.data.is_dir() and not (args.task == "generator" and args.examples):
        print(f"error: data folder {args.data} not found (give --data)", file=sys.stderr)
        return 1
    shipped = MODELS / args.task
    out = shipped if args.replace_shipped else args.out or RUNS / f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.replace_shipped and args.out and args.out.resolve() != shipped.resolve():
        print(f"error: --replace-shipped writes {shipped}; drop --out {args.out}", file=sys.stderr)
        return 2
    if out.resolve() == shipped.resolve() and (out / "training.json").is_file() and not args.replace_shipped:
        print(f"error: {out} holds the shipped {args.task}; train into a new folder (--out) and compare before "
              "replacing it (--replace-shipped)", file=sys.stderr)
        return 2
    command = "pubmed-rag " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["train"] else \
        f"pubmed-rag train {args.task} --seed {args.seed}"
    common = dict(seed=args.seed, limit=args.limit, **_given(args, "epochs", "batch_size", "learning_rate",
                                                            "max_length"))
    settings = settings or Settings.load()
    if settings.threads:  # the `threads` setting (--threads, PUBMED_RAG_THREADS); 0: the task's own default
        common["threads"] = settings.threads
    try:
        if args.task == "generator":
            config = GeneratorTrainConfig(**common, method=args.method, rank=args.rank, alpha=args.alpha)
            metadata = TASKS["generator"](data_dir=args.data, out_dir=out, config=config, settings=settings,
                                          index=args.index, examples_file=args.examples,
                                          evaluate=args.evaluate and not args.limit, command=command)
        else:
            defaults = VERIFIER_CONFIG if args.task == "verifier" else {}
            config = TrainConfig(**{**defaults, **common, **_given(args, "freeze_layers")})
            metadata = TASKS[args.task](data_dir=args.data, out_dir=out, config=config,
                                        evaluate=args.evaluate and not args.limit, command=command)
    except LookupError as exc:  # the evaluation index the generator's examples are retrieved from
        print(f"error: {exc.args[0] if exc.args else exc}; build it with `pubmed-rag eval answers --dataset bioasq "
              f"--index {args.index}` or give --index / --examples", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = {k: metadata[k] for k in ("task", "examples", "steps", "train_seconds", "total_seconds")}
    print(json.dumps({**summary, "out": str(out)}, indent=2))
    return 0

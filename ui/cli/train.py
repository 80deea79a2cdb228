"""``pubmed-rag train``: rebuild a shipped model from the shared data (a thin shell over ``rag.training``)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from ui.cli.eval import SHARED


def add_parser(sub: argparse._SubParsersAction, add_common_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``train`` subcommand."""
    from rag.training import TASKS, TrainConfig

    defaults = TrainConfig()
    p = sub.add_parser("train", help="train a model shipped with pubmed-rag (seeded; CPU)")
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--data", type=Path, default=SHARED, help=f"shared data folder (default: {SHARED})")
    p.add_argument("--out", type=Path, help="output folder (default: the shipped models/<task>)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=defaults.batch_size)
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=defaults.learning_rate)
    p.add_argument("--max-length", dest="max_length", type=int, default=defaults.max_length,
                   help="tokens per (claim, sentence) or (question, text) pair")
    p.add_argument("--freeze-layers", dest="freeze_layers", type=int, default=defaults.freeze_layers,
                   help="lowest transformer layers (and the embeddings) left frozen")
    p.add_argument("--limit", type=int, default=0,
                   help="a tiny slice that checks the command in seconds: at most N pairs per data source "
                   "(verifier), the first N questions (reranker)")
    p.add_argument("--threads", type=int, default=defaults.threads,
                   help="torch threads (0 = torch's default; results depend on it)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="skip scoring the dev split after training")
    add_common_flags(p)


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``pubmed-rag train <task>``; prints what was trained, where, and how long it took."""
    from rag.training import MODELS, TASKS, TrainConfig

    if not args.data.is_dir():
        print(f"error: data folder {args.data} not found (give --data)", file=sys.stderr)
        return 1
    config = TrainConfig(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, max_length=args.max_length,
                         freeze_layers=args.freeze_layers, limit=args.limit, threads=args.threads)
    out = args.out or MODELS / args.task
    command = "pubmed-rag " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["train"] else \
        f"pubmed-rag train {args.task} --seed {args.seed}"
    metadata = TASKS[args.task](data_dir=args.data, out_dir=out, config=config,
                                evaluate=args.evaluate and not args.limit, command=command)
    summary = {k: metadata[k] for k in ("task", "examples", "steps", "train_seconds", "total_seconds")}
    print(json.dumps({**summary, "out": str(out)}, indent=2))
    return 0

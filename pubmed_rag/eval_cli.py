"""``pubmed-rag eval``: retrieval and QA evaluation on BioASQ and PubMedQA files (a thin shell over rag.evaluate)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pubmed_rag.settings import Settings

SHARED = Path("..") / "shared" / "data"


def default_bioasq_files() -> list[Path]:
    """The BioASQ golden test batches in the shared data folder (none if it is absent)."""
    return sorted((SHARED / "bioasq").glob("Task*/*_golden.json"))


def add_parser(sub: argparse._SubParsersAction, add_common_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``eval`` subcommand; ``add_common_flags`` adds the flags every subcommand shares."""
    p = sub.add_parser("eval", help="evaluate retrieval or QA on BioASQ / PubMedQA")
    p.add_argument("task", choices=["retrieval", "qa", "calibrate"])
    p.add_argument("--dataset", default="pubmedqa", choices=["bioasq", "pubmedqa", "bioasq-yesno"])
    p.add_argument("--pqal", type=Path, default=SHARED / "pubmedqa" / "ori_pqal.json",
                   help="calibrate: PubMedQA-L file (conclusions vs own and random abstracts)")
    p.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "abstracts.jsonl.gz")
    p.add_argument("--bioasq", type=Path, nargs="+",
                   help=f"BioASQ golden files (default: {SHARED / 'bioasq'}/Task*/*_golden.json)")
    p.add_argument("--pubmedqa", type=Path, default=SHARED / "pubmedqa" / "test_set.json")
    p.add_argument("--index", default="eval-bioasq", help="evaluation index (built from the corpus if missing)")
    p.add_argument("--retrievers", default="bm25,dense,hybrid")
    p.add_argument("--n", type=int, help="only N questions, evenly spaced through the file")
    p.add_argument("--qa-settings", dest="qa_settings", default="retrieval,no-retrieval",
                   help="qa: comma-separated settings among retrieval, no-retrieval, verified")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=64,
                   help="qa verified: tokens generated per answer before verification")
    p.add_argument("--out", type=Path, help="write results JSON here")
    add_common_flags(p)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``pubmed-rag eval``: build the evaluation index if missing, then evaluate and print the results."""
    from tqdm import tqdm

    from ingest.build import RecordsSource, ingest
    from ingest.index import IndexLayout
    from pubmed_rag.cli import TqdmProgress
    from rag.evaluate import (
        bioasq_corpus,
        bioasq_questions,
        evaluate_retrieval,
        load_bioasq,
        markdown_table,
        pubmedqa_questions,
    )
    from rag.pipeline import Asker

    if args.bioasq is None:  # resolved here, not when the parser is built for every command
        args.bioasq = default_bioasq_files()
    if not IndexLayout(settings.paths.index_dir, args.index).exists():
        records, _ = bioasq_corpus(args.corpus, args.bioasq)
        print(f"building evaluation index {args.index!r} from {len(records)} documents", file=sys.stderr)
        ingest([RecordsSource("eval-corpus", records)], args.index, settings, progress=TqdmProgress())
    asker = Asker(settings, index=args.index)
    if args.dataset == "pubmedqa":
        questions = pubmedqa_questions(args.pubmedqa)
    else:
        questions = bioasq_questions(load_bioasq(args.bioasq), yesno_only=args.dataset == "bioasq-yesno")
    if args.n and args.n < len(questions):  # evenly spaced: PubMedQA's test file is ordered by label
        questions = [questions[i * len(questions) // args.n] for i in range(args.n)]
    results: dict = {}
    if args.task == "calibrate":
        from rag.evaluate import calibrate_abstention, calibrate_support

        results = {"support": calibrate_support(args.pqal, asker.scorer),
                   "abstention": calibrate_abstention(asker, questions)}
        print(json.dumps(results, indent=2))
    elif args.task == "retrieval":
        for mode in args.retrievers.split(","):
            bar = tqdm(total=len(questions), desc=mode, file=sys.stderr, disable=False)
            started = time.perf_counter()
            metrics = evaluate_retrieval(
                questions, lambda q, mode=mode: [h.pmid for h in asker.retriever.rank(q, 20, retriever=mode)],
                progress=bar.update)
            bar.close()
            metrics["ms_per_query"] = round((time.perf_counter() - started) / len(questions) * 1000, 1)
            results[mode] = metrics
        print(markdown_table(results))
    else:
        results = run_qa(asker, questions, args.dataset, args.qa_settings.split(","), args.max_new_tokens)
        summary = {name: {k: v for k, v in r.items() if k != "per_question"} for name, r in results.items()}
        print(json.dumps(summary, indent=2))  # per-question decisions go to --out only
    if args.out:
        args.out.write_text(json.dumps({"task": args.task, "dataset": args.dataset, "n": len(questions),
                                        "index": args.index, "results": results}, indent=2))
    return 0


def run_qa(asker, questions, dataset: str, settings: list[str], max_new_tokens: int) -> dict:
    """Each QA setting over the questions, with a progress bar (PubMedQA: the question's own abstract excluded)."""
    from tqdm import tqdm

    from rag.evaluate import evaluate_qa

    labels = ("yes", "no", "maybe") if dataset == "pubmedqa" else ("yes", "no")
    out = {}
    for setting in settings:
        with tqdm(total=len(questions), desc=setting, file=sys.stderr, disable=False) as bar:
            started = time.perf_counter()
            out[setting] = evaluate_qa(asker, questions, labels, setting, exclude_own=dataset == "pubmedqa",
                                       max_new_tokens=max_new_tokens, progress=bar.update)
            out[setting]["s_per_question"] = round((time.perf_counter() - started) / max(1, len(questions)), 2)
    return out

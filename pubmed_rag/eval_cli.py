"""``pubmed-rag eval``: retrieval and QA evaluation on BioASQ and PubMedQA files (a thin shell over rag.evaluate)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SHARED = Path("..") / "shared" / "data"


def add_parser(sub: argparse._SubParsersAction, add_setting_flags) -> None:
    p = sub.add_parser("eval", help="evaluate retrieval or QA on BioASQ / PubMedQA")
    p.add_argument("task", choices=["retrieval", "qa", "calibrate"])
    p.add_argument("--dataset", default="pubmedqa", choices=["bioasq", "pubmedqa", "bioasq-yesno"])
    p.add_argument("--pqal", type=Path, default=SHARED / "pubmedqa" / "ori_pqal.json",
                   help="calibrate: PubMedQA-L file (conclusions vs own and random abstracts)")
    p.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "abstracts.jsonl.gz")
    p.add_argument("--bioasq", type=Path, nargs="+",
                   default=sorted((SHARED / "bioasq").glob("Task*/*_golden.json")), help="BioASQ golden files")
    p.add_argument("--pubmedqa", type=Path, default=SHARED / "pubmedqa" / "test_set.json")
    p.add_argument("--index", default="eval-bioasq", help="evaluation index (built from the corpus if missing)")
    p.add_argument("--retrievers", default="bm25,dense,hybrid")
    p.add_argument("--n", type=int, help="only the first N questions")
    p.add_argument("--out", type=Path, help="write results JSON here")
    add_setting_flags(p)


def cmd_eval(args: argparse.Namespace, settings) -> int:
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

    if not IndexLayout(settings.paths.index_dir, args.index).exists():
        records, _ = bioasq_corpus(args.corpus, args.bioasq)
        print(f"building evaluation index {args.index!r} from {len(records)} documents", file=sys.stderr)
        ingest([RecordsSource("eval-corpus", records)], args.index, settings, progress=TqdmProgress())
    asker = Asker(settings, index=args.index)
    if args.dataset == "pubmedqa":
        questions = pubmedqa_questions(args.pubmedqa)
    else:
        questions = bioasq_questions(load_bioasq(args.bioasq), yesno_only=args.dataset == "bioasq-yesno")
    questions = questions[: args.n] if args.n else questions
    results: dict = {}
    if args.task == "calibrate":
        from rag.evaluate import calibrate_abstention, calibrate_support

        results = {"support": calibrate_support(args.pqal, asker.scorer),
                   "abstention": calibrate_abstention(asker, questions)}
        print(json.dumps(results, indent=2))
    elif args.task == "retrieval":
        for mode in args.retrievers.split(","):
            bar = tqdm(total=len(questions), desc=mode, file=sys.stderr)
            started = time.perf_counter()
            metrics = evaluate_retrieval(
                questions, lambda q, mode=mode: [h.pmid for h in asker.retriever.rank(q, 20, retriever=mode)],
                progress=bar.update)
            bar.close()
            metrics["ms_per_query"] = round((time.perf_counter() - started) / len(questions) * 1000, 1)
            results[mode] = metrics
        print(markdown_table(results))
    else:
        results = run_qa(asker, questions, args.dataset)
        print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"task": args.task, "dataset": args.dataset, "n": len(questions),
                                        "index": args.index, "results": results}, indent=2))
    return 0


def run_qa(asker, questions, dataset: str) -> dict:
    """Yes/no(/maybe) accuracy with retrieval (the question's own abstract excluded) and without retrieval."""
    from tqdm import tqdm

    from rag.evaluate import QA_SYSTEM, parse_decision, qa_metrics, qa_prompt
    from rag.prompt import _clip
    from rag.retrieve import Filters

    labels = ("yes", "no", "maybe") if dataset == "pubmedqa" else ("yes", "no")
    out = {}
    for setting in ("retrieval", "no-retrieval"):
        predicted = []
        for q in tqdm(questions, desc=setting, file=sys.stderr):
            evidence_text = ""
            if setting == "retrieval":
                exclude = q.gold if dataset == "pubmedqa" else []
                evidence = asker.retriever.search(q.text, asker.settings.retrieval.k, Filters(exclude_pmids=exclude))
                evidence_text = "\n".join(f"[{e.number}] {_clip(e.passage, 400)}" for e in evidence)
            text = "".join(asker.generator.stream(QA_SYSTEM, qa_prompt(q.text, evidence_text), 8))
            decision = parse_decision(text)
            predicted.append(decision if decision in labels else "no")
        out[setting] = qa_metrics(predicted, [q.answer for q in questions], labels)
    return out

"""``pubmed-rag eval``: retrieval and QA evaluation on BioASQ and PubMedQA files (a thin shell over rag.evaluation)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import Settings
from rag.evaluation.claim_sets import DATASETS as CLAIM_SETS

SHARED = SHARED_DATA


def default_bioasq_files() -> list[Path]:
    """The BioASQ golden test batches in the shared data folder (none if it is absent)."""
    return sorted((SHARED / "bioasq").glob("Task*/*_golden.json"))


def add_parser(sub: argparse._SubParsersAction, add_common_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``eval`` subcommand; ``add_common_flags`` adds the flags every subcommand shares."""
    p = sub.add_parser("eval", help="evaluate retrieval, QA, support calibration or citation verdicts")
    p.add_argument("task", choices=["retrieval", "reranking", "qa", "calibrate", "verify", "answers", "cases"])
    p.add_argument("--dataset", choices=["bioasq", "pubmedqa", "bioasq-yesno", *CLAIM_SETS, "all"],
                   help="retrieval/qa/answers: bioasq, pubmedqa (default) or bioasq-yesno; verify: a claim-"
                   "verification set, or all (default) for the four side by side")
    p.add_argument("--pqal", type=Path, default=SHARED / "pubmedqa" / "ori_pqal.json",
                   help="calibrate: PubMedQA-L file (conclusions vs own and random abstracts)")
    p.add_argument("--corpus", type=Path, help="retrieval/qa: abstracts (default: the shared corpus); verify: the "
                   "corpus file of --claims (SciFact's corpus.jsonl or Check-COVID's corpus.json)")
    p.add_argument("--claims", type=Path, help="verify: a claims file in SciFact's format (SciFact, HealthVer, "
                   "Citation-Integrity) or Check-COVID's, instead of --dataset")
    p.add_argument("--split", default="dev", choices=["dev", "train"], help="verify: which split of --dataset")
    p.add_argument("--data", type=Path, default=SHARED, help=f"verify: the shared data folder (default: {SHARED})")
    p.add_argument("--scorers", default="cosine,cosine+rules,verifier,verifier+rules",
                   help="verify: comma-separated scorers, side by side")
    p.add_argument("--tune", action="store_true",
                   help="verify: choose the verifier's reading width and thresholds on the calibration claims (train "
                   "claims held out of training) and score with them, instead of the settings' values")
    p.add_argument("--pubmedqa-checks", dest="pubmedqa_checks", action="store_true",
                   help="verify: also PubMedQA-L calibration AUCs and synthetic flips (--pubmedqa file)")
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
    p.add_argument("--answer-settings", dest="answer_settings", default="default,base-generator,findings-only,lead",
                   help="answers: comma-separated settings among default, base-generator (the default answer with "
                   "the base model writing the bottom line), findings-only, generated, lead, findings-cosine, "
                   "findings-reranker (findings only, sentences scored by that answer.sentence_scorer)")
    p.add_argument("--types", default="yesno,factoid,list,summary",
                   help="answers: BioASQ question types (all four have ideal answers)")
    p.add_argument("--depths", default="20,50",
                   help="reranking: comma-separated N: hybrid vs hybrid with its top N reranked, side by side")
    p.add_argument("--distractors", type=int,
                   help="when the evaluation index is built: keep only N corpus abstracts (evenly spaced) beside the "
                   "gold-snippet documents")
    p.add_argument("--out", type=Path, help="write results JSON here")
    p.add_argument("--trec-cds", dest="trec_cds", type=Path, nargs=2, metavar=("DESCRIPTIONS.csv", "SUMMARIES.csv"),
                   help="cases: TREC CDS topics (descriptions and physicians' summaries, one case a line); the "
                   "problem list's concept recall and precision against the summaries")
    p.add_argument("--medqa", type=Path, help="cases: MedQA-USMLE questions (JSON lines); diagnosis and "
                   "pharmacotherapy questions ranked by the differential / drug evidence, beside BM25 and chance")
    add_common_flags(p)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``pubmed-rag eval``: build the evaluation index if missing, then evaluate and print the results."""
    from tqdm import tqdm

    from ingest.build import RecordsSource, ingest
    from ingest.index import IndexLayout
    from rag.evaluation import (
        bioasq_corpus,
        bioasq_questions,
        evaluate_retrieval,
        load_bioasq,
        markdown_table,
        pubmedqa_questions,
    )
    from rag.pipeline import Asker
    from ui.cli.progress import TqdmProgress

    if args.task == "verify":
        return run_verify(args, settings)
    if args.task == "cases":
        return run_cases(args, settings)
    args.dataset = args.dataset or "pubmedqa"
    if args.dataset not in ("bioasq", "pubmedqa", "bioasq-yesno"):
        print(f"error: eval {args.task} takes --dataset bioasq, pubmedqa or bioasq-yesno", file=sys.stderr)
        return 2
    if args.task == "answers":  # before any index is built or model loaded
        from rag.evaluation.answers import ANSWER_SETTINGS, GENERATOR_SETTINGS, SCORER_SETTINGS

        unknown = set(args.answer_settings.split(",")) - {*ANSWER_SETTINGS, *GENERATOR_SETTINGS, *SCORER_SETTINGS}
        if unknown:
            print(f"error: unknown answer setting(s) {sorted(unknown)}", file=sys.stderr)
            return 2
    if args.bioasq is None:  # resolved here, not when the parser is built for every command
        args.bioasq = default_bioasq_files()
    args.corpus = args.corpus or SHARED / "corpus" / "abstracts.jsonl.gz"
    if not IndexLayout(settings.paths.index_dir, args.index).exists():
        records, _ = bioasq_corpus(args.corpus, args.bioasq, args.distractors)
        print(f"building evaluation index {args.index!r} from {len(records)} documents", file=sys.stderr)
        ingest([RecordsSource("eval-corpus", records)], args.index, settings, progress=TqdmProgress())
    asker = Asker(settings, index=args.index)
    if args.task == "answers":
        from rag.evaluation import bioasq_answer_questions

        if args.dataset != "bioasq":
            print("error: eval answers needs --dataset bioasq (questions with ideal answers)", file=sys.stderr)
            return 2
        questions = bioasq_answer_questions(args.bioasq, tuple(t.strip() for t in args.types.split(",")))
    elif args.dataset == "pubmedqa":
        questions = pubmedqa_questions(args.pubmedqa)
    else:
        questions = bioasq_questions(load_bioasq(args.bioasq), yesno_only=args.dataset == "bioasq-yesno")
    if args.n and args.n < len(questions):  # evenly spaced: PubMedQA's test file is ordered by label
        questions = [questions[i * len(questions) // args.n] for i in range(args.n)]
    results: dict = {}
    if args.task == "calibrate":
        from rag.evaluation import calibrate_abstention, calibrate_support

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
    elif args.task == "reranking":
        from rag.evaluation.reranking import evaluate_reranking

        with tqdm(total=len(questions), desc="reranking", file=sys.stderr, disable=False) as bar:
            results = evaluate_reranking(asker.retriever, questions, [int(n) for n in args.depths.split(",")],
                                         progress=bar.update)
        print(markdown_table(results))
    elif args.task == "answers":
        from rag.evaluation import answers_table, evaluate_answers
        with tqdm(total=len(questions), desc="answers", file=sys.stderr, disable=False) as bar:
            results = evaluate_answers(asker, questions, args.answer_settings.split(","), progress=bar.update)
        print(answers_table(results))
    else:
        results = run_qa(asker, questions, args.dataset, args.qa_settings.split(","), args.max_new_tokens)
        summary = {name: {k: v for k, v in r.items() if k != "per_question"} for name, r in results.items()}
        print(json.dumps(summary, indent=2))  # per-question decisions go to --out only
    if args.out:
        payload = {"task": args.task, "dataset": args.dataset, "n": len(questions), "index": args.index,
                   "results": results}
        if args.task == "answers":
            payload["questions"] = questions
        args.out.write_text(json.dumps(payload, indent=2))
    return 0


def run_qa(asker, questions, dataset: str, settings: list[str], max_new_tokens: int) -> dict:
    """Each QA setting over the questions, with a progress bar (PubMedQA: the question's own abstract excluded)."""
    from tqdm import tqdm

    from rag.evaluation import evaluate_qa

    labels = ("yes", "no", "maybe") if dataset == "pubmedqa" else ("yes", "no")
    out = {}
    for setting in settings:
        with tqdm(total=len(questions), desc=setting, file=sys.stderr, disable=False) as bar:
            started = time.perf_counter()
            out[setting] = evaluate_qa(asker, questions, labels, setting, exclude_own=dataset == "pubmedqa",
                                       max_new_tokens=max_new_tokens, progress=bar.update)
            out[setting]["s_per_question"] = round((time.perf_counter() - started) / max(1, len(questions)), 2)
    return out


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    """``eval verify``: citation verdicts on one claim-verification set (or all four, or any file in one of their
    formats), scorers side by side; Citation-Integrity's REFUTE kinds apart."""
    from tqdm import tqdm

    from ingest.embedder import load_embedder
    from rag.evaluation import calibrate_support
    from rag.evaluation.claim_sets import ClaimSetError, load_claims, load_dataset
    from rag.evaluation.verify import (
        SCORERS,
        evaluate_verify,
        kinds_markdown,
        markdown,
        synthetic_flips,
        tune_scorers,
    )
    from rag.training.verifier import calibration_items
    from rag.verify import SupportScorer, VerifierError

    if bool(args.claims) != bool(args.corpus):
        print("error: eval verify takes --claims FILE and --corpus FILE together", file=sys.stderr)
        return 2
    dataset = args.dataset or "all"
    if not args.claims and dataset not in (*CLAIM_SETS, "all"):
        print(f"error: eval verify takes --dataset {'|'.join(CLAIM_SETS)}|all, or --claims FILE --corpus FILE",
              file=sys.stderr)
        return 2
    names = [n.strip() for n in args.scorers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        print(f"error: unknown scorer(s) {unknown}; choose among {', '.join(SCORERS)}", file=sys.stderr)
        return 2
    try:
        if args.claims:
            sets = {args.claims.name: load_claims(args.claims, args.corpus)}
        else:
            sets = {name: load_dataset(name, args.split, args.data)
                    for name in (CLAIM_SETS if dataset == "all" else (dataset,))}
    except ClaimSetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    embedder = load_embedder(settings.embedding.model, settings.embedding.max_tokens, settings.embedding.backend,
                             settings.paths.cache_dir, settings.allow_network)
    bars: dict[str, tqdm] = {}

    def progress(name: str, n: int) -> None:
        if name not in bars:
            bars[name] = tqdm(desc=name, file=sys.stderr, disable=False)
        bars[name].update(n)

    results: dict[str, Any] = {"split": None if args.claims else args.split, "datasets": {}}
    try:
        tuned: dict[str, dict[str, Any]] = {}
        if args.tune:
            calibration = calibration_items(args.data)
            tuned, _ = tune_scorers(calibration, embedder, settings.verify, names, settings.paths.cache_dir)
            for name, chosen in tuned.items():
                print(f"{name}: chosen on {len(calibration)} calibration claims: {json.dumps(chosen)}")
            results["tuned"] = tuned
        for set_name, items in sets.items():
            items = items[: args.n] if args.n else items
            result = evaluate_verify(items, embedder, settings, names, progress=progress, tuned=tuned)
            for bar in bars.values():
                bar.close()
            bars.clear()
            results["datasets"][set_name] = result
            print(f"\n## {set_name} ({args.split if not args.claims else 'file'}, {len(items)} pairs)\n")
            print(markdown(result))
            for name, m in result["scorers"].items():
                if m.get("refute_kinds"):
                    print(f"\nREFUTE kinds, {name}:\n\n{kinds_markdown(m)}")
        if args.pubmedqa_checks:
            base = SupportScorer(embedder, settings.verify.model_copy(update={"scorer": "cosine"}))
            results["pubmedqa_calibration"], results["synthetic_flips"] = {}, {}
            for name in names:
                scorer = base.variant(**SCORERS[name])  # abstract embeddings and model outputs are shared
                started = time.perf_counter()
                cal = calibrate_support(args.pubmedqa, scorer, n=args.n or 0)
                cal["seconds"] = round(time.perf_counter() - started, 1)
                results["pubmedqa_calibration"][name] = cal
                print(f"PubMedQA-L calibration ({args.pubmedqa.name}), {name}: AUC own vs random {cal['auc']:.3f}, "
                      f"own vs on-topic {cal['auc_hard']:.3f}; verdicts {cal['verdicts']}")
                flips = synthetic_flips(args.pubmedqa, scorer, n=args.n or 0)
                results["synthetic_flips"][name] = flips
                print(f"flipped conclusions ({args.pubmedqa.name}, {flips['n']}), {name}: original kept supported "
                      f"{flips['original_supported']:.1%}, flipped called contradicted "
                      f"{flips['flipped_contradicted']:.1%}, flipped still supported {flips['flipped_supported']:.1%}")
    except VerifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(json.dumps({"task": "verify", "dataset": str(args.claims or dataset),
                                        "results": results}, indent=2))
    return 0


def run_cases(args: argparse.Namespace, settings: Settings) -> int:
    """``eval cases``: problem lists against TREC CDS summaries; MedQA options ranked by the differential."""
    from tqdm import tqdm

    from ingest.index import UnknownIndexError
    from rag.case import CaseAnalyzer
    from rag.evaluation.cases import CaseDataError, evaluate_medqa, evaluate_trec, load_medqa, load_trec
    from rag.pipeline import Asker

    if not args.trec_cds and not args.medqa:
        print("error: eval cases takes --trec-cds DESCRIPTIONS.csv SUMMARIES.csv and/or --medqa FILE.jsonl",
              file=sys.stderr)
        return 2
    try:
        trec = load_trec(*args.trec_cds) if args.trec_cds else []
        medqa = load_medqa(args.medqa) if args.medqa else []
        analyzer = CaseAnalyzer(Asker(settings, index=args.index))
    except (CaseDataError, UnknownIndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"index": args.index}
    if trec:
        r = results["trec_cds"] = evaluate_trec(analyzer, trec)
        print(f"TREC CDS ({len(trec)} cases): concept recall {r['recall']:.3f}, precision {r['precision']:.3f} "
              f"({r['gold_concepts']} summary concepts, {r['problem_concepts']} problem-list concepts); explicit "
              f"negations {r['negated_mentions']}, leaked into the positive problems {r['negation_leaks']}; age group "
              f"{r['age_group_accuracy']:.0%}, sex {r['sex_accuracy']:.0%} as in the summaries")
    if medqa:
        if args.n:
            medqa = medqa[: args.n]
        bar = tqdm(desc="medqa", file=sys.stderr, disable=False)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(1)

        r = results["medqa"] = evaluate_medqa(analyzer, medqa, progress=progress)
        bar.close()
        print("| questions | n | records' similarity | differential ties | BM25 option scoring | chance | answer "
              "named by the index | options named by the index |\n|---|---|---|---|---|---|---|---|")
        for kind, row in r.items():
            print(f"| {kind} | {row['questions']} | {row['similarity']:.3f} | {row['ties']:.3f} | {row['bm25']:.3f} | "
                  f"{row['chance']:.3f} | {row['answer_in_index']:.1%} | {row['options_in_index']:.1%} |")
    if args.out:
        args.out.write_text(json.dumps({"task": "cases", "results": results}, indent=2))
    return 0

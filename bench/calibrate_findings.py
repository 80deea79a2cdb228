"""Calibrate answer.min_relevance (answer.reranker_min_relevance with ``--scorer reranker``): the best-sentence
relevance of gold vs non-gold evidence records (BioASQ).

For evenly spaced BioASQ yes/no and summary questions, the top 5 records are retrieved from the answers evaluation
index; each record's best sentence (as ``FindingExtractor`` scores it, with no threshold) gives its relevance. A
record is gold when it is one of the question's gold documents. Prints the share of gold and non-gold records kept
at each threshold.

    python bench/calibrate_findings.py [--index eval-bioasq-answers] [--n 120] [--scorer reranker] [--tasks 8B]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import Settings  # noqa: E402
from rag.evaluation import bioasq_answer_questions  # noqa: E402
from rag.pipeline import Asker  # noqa: E402

SHARED = SHARED_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="eval-bioasq-answers")
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--scorer", default="cosine", choices=["cosine", "reranker"], help="answer.sentence_scorer")
    parser.add_argument("--tasks", nargs="+", default=["7B", "8B", "9B"],
                        help="BioASQ tasks to draw questions from (the reranker's threshold: 8B, not 9B)")
    args = parser.parse_args()
    settings = Settings.load({"answer.min_relevance": -1.0, "answer.reranker_min_relevance": 0.0,
                              "answer.sentence_scorer": args.scorer})
    asker = Asker(settings, index=args.index)
    questions = bioasq_answer_questions(sorted(p for t in args.tasks
                                               for p in (SHARED / "bioasq").glob(f"Task{t}*/*_golden.json")))
    questions = [questions[i * len(questions) // args.n] for i in range(min(args.n, len(questions)))]
    gold, other = [], []
    for q in questions:
        evidence = asker.retriever.search(q["body"], settings.retrieval.k)
        for f in asker.findings.extract(q["body"], evidence):
            (gold if f.pmid in q["gold"] else other).append(f.relevance)
    gold_a, other_a = np.asarray(gold), np.asarray(other)
    print(f"{len(questions)} questions: {len(gold)} gold and {len(other)} other evidence records")
    print("| min_relevance | gold records kept | other records kept |")
    print("| --- | --- | --- |")
    grid = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5) if args.scorer == "cosine" else (
        0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    for threshold in grid:
        print(f"| {threshold} | {np.mean(gold_a >= threshold):.1%} | {np.mean(other_a >= threshold):.1%} |")


if __name__ == "__main__":
    main()

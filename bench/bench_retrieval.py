"""Retrieval latency side by side (BM25, dense, hybrid with and without feedback) on the 10,609-abstract index.

    python bench/bench_retrieval.py [--corpus ../shared/data/corpus/abstracts.jsonl.gz] [--n 300]

The index ``corpus`` holds exactly the corpus file's abstracts. When it is missing it is derived from the evaluation
index ``eval-bioasq`` (the same corpus plus gold-snippet documents, see docs/evaluation.md) by ingesting a
DeleteCitation for every PMID that is not in the corpus, so nothing is embedded twice; without that index it is
built from the corpus (about 25 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from bench_ask import pct  # bench/ is on sys.path when run as a script

from ingest.build import RecordsSource, ingest
from ingest.index import IndexLayout, LoadedIndex
from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.records import Deletion
from pubmed_rag.settings import Settings
from rag.evaluation import bioasq_questions, load_bioasq, load_corpus
from rag.pipeline import Asker

SHARED = SHARED_DATA


def corpus_index(settings: Settings, corpus: Path, name: str, base: str) -> None:
    if IndexLayout(settings.paths.index_dir, name).exists():
        return
    records = load_corpus(corpus)
    if IndexLayout(settings.paths.index_dir, base).exists():
        shutil.copytree(settings.paths.index_dir / base, settings.paths.index_dir / name)
        keep = {r.pmid for r in records}
        extra = [p for p in LoadedIndex(settings.paths.index_dir, name).store.all_pmids() if p not in keep]
        ingest([RecordsSource("not-in-corpus", [Deletion(tuple(extra), "not-in-corpus")])], name, settings)
    else:
        ingest([RecordsSource("corpus", records)], name, settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "abstracts.jsonl.gz")
    parser.add_argument("--bioasq", type=Path, nargs="+", default=sorted((SHARED / "bioasq").glob("Task*/*.json")))
    parser.add_argument("--index", default="corpus")
    parser.add_argument("--from-index", default="eval-bioasq")
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    settings = Settings.load()
    corpus_index(settings, args.corpus, args.index, args.from_index)
    asker = Asker(settings, index=args.index)
    feedback = Asker(Settings.load({"retrieval.prf_docs": 3}), index=args.index, embedder=asker.embedder)
    questions = [q.text for q in bioasq_questions(load_bioasq(args.bioasq))][: args.n]
    counts = asker.index.store.counts()
    print(f"index {args.index}: {counts['records']} records, {counts['chunks']} chunks; {len(questions)} BioASQ "
          "questions; k=5; query encoding included; the runs interleave per question")
    runs = {"bm25": (asker, "bm25"), "dense": (asker, "dense"), "hybrid (default, no feedback)": (asker, "hybrid"),
            "hybrid, dense feedback from 3": (feedback, "hybrid")}
    for who, mode in runs.values():
        who.retriever.search(questions[0], 5, retriever=mode)  # warm up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for q in questions:
        for name, (who, mode) in runs.items():
            started = time.perf_counter()
            who.retriever.search(q, 5, retriever=mode)
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["hybrid (default, no feedback)"])
    for name, values in times.items():
        print(f"{name:42s} p50 {pct(values, .5) * 1000:6.1f} ms  p95 {pct(values, .95) * 1000:6.1f} ms  "
              f"({statistics.median(values) / base:.2f}x the default)")


if __name__ == "__main__":
    main()

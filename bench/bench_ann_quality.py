"""BioASQ retrieval quality with each vector index type, side by side in one run (issue 13).

    python bench/bench_ann_quality.py [--index eval-bioasq-answers] [--n 0]

Copies the evaluation index into .cache/annq/ once per type and compacts each copy to that type with the
parameters ``auto`` or the type would get at that size (``pubmed-rag index compact NAME --index.type T``). Then the
default hybrid retrieval (BM25 + dense, RRF) ranks 20 PMIDs for every BioASQ 7B-9B question with a gold document in
the index, the types interleaved question by question; nDCG@10 and recall@20 against the gold PMIDs. Then, on the
flat copy, BM25 alone and hybrid retrieval with BM25 bounded by document frequency (``retrieval.bm25_max_df``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from pubmed_rag.paths import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = SHARED_DATA
CACHE = ROOT / ".cache" / "annq"
TYPES = ("auto", "flat", "ivfflat", "ivfpq", "hnsw")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="eval-bioasq-answers")
    parser.add_argument("--index-dir", type=Path, default=ROOT / "indexes")
    parser.add_argument("--n", type=int, default=0, help="evenly spaced questions (0: all)")
    parser.add_argument("--max-df", default="0.1,0.05,0.02", help="BM25 bounds to compare ('' = none)")
    args = parser.parse_args()

    from ingest.compact import compact
    from ingest.embedder import load_embedder
    from ingest.index import LoadedIndex
    from pubmed_rag.settings import Settings
    from rag.evaluation import bioasq_questions, load_bioasq
    from rag.evaluation.metrics import retrieval_metrics
    from rag.retrieve import IndexRetriever

    base = Settings.load({"paths.index_dir": str(CACHE)})
    retrievers, built = {}, {}
    embedder = load_embedder(base.embedding.model, base.embedding.max_tokens, base.embedding.backend,
                             base.paths.cache_dir)
    for kind in TYPES:
        name = f"{args.index}-{kind}"
        shutil.rmtree(CACHE / name, ignore_errors=True)
        shutil.copytree(args.index_dir / args.index, CACHE / name)
        settings = Settings.load({"paths.index_dir": str(CACHE), "index.type": kind})
        summary = compact(name, settings)
        index = LoadedIndex(CACHE, name)
        built[kind] = {"resolved": summary.type, "seconds": round(summary.seconds, 1),
                       **{k: v for k, v in index.manifest["index"].items() if k in ("nlist", "nprobe", "pq_m",
                                                                                    "refine", "hnsw_m", "ef_search")}}
        retrievers[kind] = IndexRetriever(index, embedder, base.retrieval, cache_dir=base.paths.cache_dir)
        print(kind, built[kind], flush=True)
    indexed = set(retrievers["flat"].index.store.all_pmids())
    files = sorted((SHARED / "bioasq").glob("Task*/*_golden.json"))
    questions = [q for q in bioasq_questions(load_bioasq(files)) if set(q.gold) & indexed]
    if args.n:
        questions = [questions[i * len(questions) // args.n] for i in range(args.n)]
    ranked = {kind: [] for kind in TYPES}
    seconds = dict.fromkeys(TYPES, 0.0)
    for i, q in enumerate(questions):
        for kind in TYPES[i % len(TYPES):] + TYPES[: i % len(TYPES)]:  # who goes first rotates
            started = time.perf_counter()
            ranked[kind].append([h.pmid for h in retrievers[kind].rank(q.text, 20)])
            seconds[kind] += time.perf_counter() - started
    gold = [q.gold for q in questions]
    flat = retrieval_metrics(ranked["flat"], gold)
    results = {}
    for kind in TYPES:
        metrics = retrieval_metrics(ranked[kind], gold)
        same = sum(a[:10] == b[:10] for a, b in zip(ranked[kind], ranked["flat"], strict=True)) / len(questions)
        results[kind] = {**built[kind], **{k: round(v, 4) for k, v in metrics.items()},
                         "ndcg@10_vs_flat": round(metrics["ndcg@10"] / flat["ndcg@10"], 4),
                         "same_top10_as_flat": round(same, 4),
                         "ms_per_query": round(seconds[kind] / len(questions) * 1000, 1)}
    bounded = {}
    if args.max_df:  # BM25 bounded by document frequency (retrieval.bm25_max_df), on the flat copy
        flat_index = retrievers["flat"].index
        variants = {(v, mode): IndexRetriever(flat_index, embedder, base.retrieval.model_copy(
            update={"bm25_max_df": v}), cache_dir=base.paths.cache_dir)
            for v in [1.0, *map(float, args.max_df.split(","))] for mode in ("bm25", "hybrid")}
        got = {key: [] for key in variants}
        for q in questions:
            for (v, mode), retriever in variants.items():
                got[(v, mode)].append([h.pmid for h in retriever.rank(q.text, 20, retriever=mode)])
        for (v, mode), ranked_v in got.items():
            metrics = retrieval_metrics(ranked_v, gold)
            unbounded = retrieval_metrics(got[(1.0, mode)], gold)
            bounded[f"{mode} max_df={v}"] = {**{k: round(x, 4) for k, x in metrics.items()},
                                              "ndcg@10_vs_unbounded": round(metrics["ndcg@10"] / unbounded["ndcg@10"], 4)}
    out = {"index": args.index, "questions": len(questions), "chunks": len(retrievers["flat"].index.vectors),
           "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]), "results": results, "bm25_bounded": bounded}
    (CACHE / "results.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

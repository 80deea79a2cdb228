"""Tune hybrid fusion (weights, RRF k) on one set of BioASQ files and report on another, side by side.

With ``--prf``, tune the dense pseudo-relevance feedback instead (records fed back, weight), through the
retriever itself, and report it against feedback off on the held-out set.

    python bench/tune_retrieval.py --tune ../shared/data/bioasq/Task7BGoldenEnriched/*.json \
        --report ../shared/data/bioasq/Task8BGoldenEnriched/*.json ../shared/data/bioasq/Task9BGoldenEnriched/*.json
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from pubmed_rag.settings import Settings
from rag.evaluation import bioasq_questions, load_bioasq, retrieval_metrics
from rag.pipeline import Asker
from rag.retrieve import Filters, IndexRetriever, fuse


def rankings(asker: Asker, questions, depth: int) -> list[tuple[list, list]]:
    out = []
    for q in questions:
        out.append((asker.retriever.dense(q.text, depth, Filters()), asker.retriever.bm25(q.text, depth, Filters())))
    return out


def fused_pmids(asker: Asker, dense, bm25, wd: float, wb: float, k: int) -> list[str]:
    """The retriever's own fusion of cached rankings, with these weights and RRF k."""
    return [h.pmid for h in fuse([(dense, wd), (bm25, wb)], k)[:20]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tune", type=Path, nargs="+", required=True)
    parser.add_argument("--report", type=Path, nargs="+", required=True)
    parser.add_argument("--index", default="eval-bioasq")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--prf", action="store_true", help="tune pseudo-relevance feedback instead of fusion")
    args = parser.parse_args()
    asker = Asker(Settings.load(), index=args.index)
    tune_q = bioasq_questions(load_bioasq(args.tune))
    report_q = bioasq_questions(load_bioasq(args.report))
    if args.prf:
        tune_prf(asker, tune_q, report_q)
        return
    tune_r, report_r = rankings(asker, tune_q, args.depth), rankings(asker, report_q, args.depth)
    grid = list(itertools.product([0.5, 0.75, 1.0], [1.0, 1.25, 1.5, 2.0], [10, 30, 60]))
    best = max(grid, key=lambda g: retrieval_metrics([fused_pmids(asker, d, b, *g) for d, b in tune_r],
                                                     [q.gold for q in tune_q])["ndcg@10"])
    print(f"tuned on {len(tune_q)} questions ({', '.join(sorted({p.parent.name for p in args.tune}))}); "
          f"best (dense_weight, bm25_weight, rrf_k) = {best}")
    for name, (wd, wb, k) in {"default RRF (1, 1, 60)": (1.0, 1.0, 60), f"tuned {best}": best}.items():
        m = retrieval_metrics([fused_pmids(asker, d, b, wd, wb, k) for d, b in report_r], [q.gold for q in report_q])
        print(f"report set ({len(report_q)} questions) {name}: nDCG@10 {m['ndcg@10']:.3f}, "
              f"recall@20 {m['recall@20']:.3f}, MRR {m['mrr']:.3f}")


def tune_prf(asker: Asker, tune_q, report_q) -> None:
    def run(questions, docs: int, weight: float) -> dict[str, float]:
        settings = asker.settings.retrieval.model_copy(update={"prf_docs": docs, "prf_weight": weight})
        retriever = IndexRetriever(asker.index, asker.embedder, settings, cache_dir=asker.settings.paths.cache_dir)
        return retrieval_metrics([[h.pmid for h in retriever.rank(q.text, 20)] for q in questions],
                                 [q.gold for q in questions])

    grid = {g: run(tune_q, *g) for g in itertools.product([2, 3, 5], [0.5, 1.0, 2.0])}
    best = max(grid, key=lambda g: grid[g]["ndcg@10"])
    print(f"tuned on {len(tune_q)} questions; best (prf_docs, prf_weight) = {best}: nDCG@10 "
          f"{grid[best]['ndcg@10']:.4f} (feedback off: {run(tune_q, 0, 1.0)['ndcg@10']:.4f})")
    for name, (docs, weight) in {"feedback off": (0, 1.0), f"feedback {best}": best}.items():
        m = run(report_q, docs, weight)
        print(f"report set ({len(report_q)} questions) {name}: nDCG@10 {m['ndcg@10']:.4f}, "
              f"recall@20 {m['recall@20']:.4f}, MRR {m['mrr']:.4f}")


if __name__ == "__main__":
    main()

"""Reranking evaluation: the same first-stage ranking per question, as it is and reranked at several depths."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np

from rag.evaluation.datasets import Question
from rag.evaluation.metrics import retrieval_metrics


def evaluate_reranking(retriever, questions: list[Question], depths: list[int], k: int = 20,
                       retriever_mode: str = "hybrid",
                       progress: Callable[[int], None] | None = None) -> dict[str, dict[str, float]]:
    """Retrieval metrics of ``retriever_mode`` (its settings' reranker off) and of that ranking with its top N
    reranked for each N in ``depths`` (``retriever.rerank``, the shipped reranker unless ``retrieval.reranker``
    names another), side by side over the same first-stage hits; with the first stage's p50 latency and the p50 and
    p90 of the time reranking adds per query (0 for the first stage itself), in milliseconds."""
    first_settings = retriever.settings.model_copy(update={"reranker": ""})
    keep, retriever.settings = retriever.settings, first_settings
    ranked: dict[str, list[list[str]]] = {retriever_mode: [], **{f"{retriever_mode} + reranker N={n}": [] for n in depths}}
    seconds: dict[str, list[float]] = {name: [] for name in ranked}
    try:
        retriever.rerank("", [])  # loads the reranker outside the timings
        for q in questions:
            started = time.perf_counter()
            hits = retriever.rank(q.text, max(k, *depths), retriever=retriever_mode)
            seconds[retriever_mode].append(time.perf_counter() - started)
            ranked[retriever_mode].append([h.pmid for h in hits[:k]])
            for n in depths:
                started = time.perf_counter()
                reranked = retriever.rerank(q.text, copy.deepcopy(hits[:n])) + hits[n:]
                seconds[f"{retriever_mode} + reranker N={n}"].append(time.perf_counter() - started)
                ranked[f"{retriever_mode} + reranker N={n}"].append([h.pmid for h in reranked[:k]])
            if progress:
                progress(1)
    finally:
        retriever.settings = keep
    gold = [q.gold for q in questions]
    first = round(float(np.median(seconds[retriever_mode])) * 1000, 1)
    out = {}
    for name, lists in ranked.items():
        ms = np.array(seconds[name]) * 1000 if name != retriever_mode else np.zeros(1)
        out[name] = {**retrieval_metrics(lists, gold), "first_stage_p50_ms": first,
                     "added_p50_ms": round(float(np.median(ms)), 1),
                     "added_p90_ms": round(float(np.percentile(ms, 90)), 1)}
    return out

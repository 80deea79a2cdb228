"""Retrieval evaluation: a search function over questions with gold PMIDs."""

from __future__ import annotations

from collections.abc import Callable

from rag.evaluation.datasets import Question
from rag.evaluation.metrics import retrieval_metrics


def evaluate_retrieval(questions: list[Question], search: Callable[[str], list[str]],
                       progress: Callable[[int], None] | None = None) -> dict[str, float]:
    ranked = []
    for q in questions:
        ranked.append(search(q.text))
        if progress:
            progress(1)
    return retrieval_metrics(ranked, [q.gold for q in questions])

"""Metrics: retrieval (recall@k, nDCG@10, MRR), QA accuracy and macro-F1, ROC AUC, ROUGE-2/SU4, markdown tables."""

from __future__ import annotations

import math
from collections import Counter

KS = (1, 5, 10, 20)


def retrieval_metrics(ranked: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """Mean recall@k (k in KS), nDCG@10 and MRR over questions."""
    sums = dict.fromkeys([f"recall@{k}" for k in KS] + ["ndcg@10", "mrr"], 0.0)
    for got, relevant in zip(ranked, gold, strict=True):
        rel = set(relevant)
        for k in KS:
            sums[f"recall@{k}"] += len(rel & set(got[:k])) / len(rel)
        dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(got[:10]) if p in rel)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(rel))))
        sums["ndcg@10"] += dcg / ideal
        sums["mrr"] += next((1 / (i + 1) for i, p in enumerate(got) if p in rel), 0.0)
    return {k: round(v / max(1, len(ranked)), 4) for k, v in sums.items()}


def qa_metrics(predicted: list[str], gold: list[str], labels: tuple[str, ...]) -> dict[str, float]:
    """Accuracy and macro-F1 over ``labels``."""
    acc = sum(p == g for p, g in zip(predicted, gold, strict=True)) / max(1, len(gold))
    f1s = []
    for label in labels:
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label != g for p, g in zip(predicted, gold, strict=True))
        fn = sum(g == label != p for p, g in zip(predicted, gold, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": round(acc, 4), "macro_f1": round(sum(f1s) / len(f1s), 4), "n": len(gold)}


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    import numpy as np

    pos, neg = np.asarray(positives), np.asarray(negatives)
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.concatenate([pos, neg])
    for v in np.unique(values):  # average ranks of ties
        mask = values == v
        if mask.sum() > 1:
            ranks[mask] = ranks[mask].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


_ROUGE_TOKENIZER = None


_ROUGE2 = None


def _rouge_tokens(text: str) -> list[str]:
    """ROUGE's own tokenisation (lower case, alphanumeric, Porter-stemmed), from the ``rouge-score`` package;
    the package has no ROUGE-SU4, which is counted here on its tokens."""
    global _ROUGE_TOKENIZER
    if _ROUGE_TOKENIZER is None:
        from rouge_score.tokenizers import DefaultTokenizer

        _ROUGE_TOKENIZER = DefaultTokenizer(use_stemmer=True)
    return _ROUGE_TOKENIZER.tokenize(text)


def _su4_grams(tokens: list[str]) -> Counter:
    """Unigrams plus skip-bigrams with at most 4 words between them (ROUGE-SU4)."""
    grams: Counter = Counter((t,) for t in tokens)
    for i, first in enumerate(tokens):
        for second in tokens[i + 1 : i + 6]:
            grams[(first, second)] += 1
    return grams


def _f1(candidate: Counter, reference: Counter) -> float:
    overlap = sum((candidate & reference).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(candidate.values()), overlap / sum(reference.values())
    return 2 * precision * recall / (precision + recall)


def rouge(candidate: str, references: list[str]) -> dict[str, float]:
    """ROUGE-2 and ROUGE-SU4 F1 of ``candidate``, best over ``references`` (as BioASQ scores ideal answers)."""
    global _ROUGE2
    if _ROUGE2 is None:
        from rouge_score.rouge_scorer import RougeScorer

        _ROUGE2 = RougeScorer(["rouge2"], use_stemmer=True)
    cand = _su4_grams(_rouge_tokens(candidate))
    best = {"rouge2": 0.0, "su4": 0.0}
    for ref in references:
        best["rouge2"] = max(best["rouge2"], _ROUGE2.score(ref, candidate)["rouge2"].fmeasure)
        best["su4"] = max(best["su4"], _f1(cand, _su4_grams(_rouge_tokens(ref))))
    return best


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    metrics = list(next(iter(results.values())))
    lines = ["| retriever | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, values in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.3f}" for m in metrics) + " |")
    return "\n".join(lines)

"""Calibration: support scores of PubMedQA conclusions against their own and other abstracts; abstention."""

from __future__ import annotations

import json
from pathlib import Path

from rag.evaluation.datasets import Question
from rag.evaluation.metrics import roc_auc


def calibrate_support(pqal_path: Path, scorer, seed: int = 0, n: int = 0) -> dict:
    """Each PubMedQA conclusion sentence scored against its own abstract (positive), a random other one (easy
    negative, which sets the thresholds) and the other abstract most similar to its own (hard, on-topic negative).

    Scores are ``Support.strength`` (the verifier's P(supported), or the similarity); ``verdicts`` counts the
    labels given in each case. ``n``: only N items, evenly spaced."""
    import random
    from collections import Counter

    import numpy as np

    from pubmed_rag.sentences import split_sentences

    data = json.loads(Path(pqal_path).read_text(encoding="utf-8"))
    items = list(data.values())
    if n and n < len(items):
        items = [items[i * len(items) // n] for i in range(n)]
    abstracts = [" ".join(item["CONTEXTS"]) for item in items]
    others = list(range(len(items)))
    random.Random(seed).shuffle(others)
    vectors = scorer.embedder.encode(abstracts)
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -np.inf)
    pos, neg, hard = [], [], []
    verdicts: dict[str, Counter] = {"own": Counter(), "random": Counter(), "on_topic": Counter()}
    for i, item in enumerate(items):
        j = others[i] if others[i] != i else (i + 1) % len(items)
        claims = split_sentences(item["LONG_ANSWER"])
        scores = scorer.score_matrix(claims, [abstracts[i], abstracts[j], abstracts[int(np.argmax(similar[i]))]])
        pos.extend(s[0].strength for s in scores)
        neg.extend(s[1].strength for s in scores)
        hard.extend(s[2].strength for s in scores)
        for s in scores:
            for case, support in zip(verdicts, s, strict=True):
                verdicts[case][support.label] += 1
    pos_a, neg_a, hard_a = np.asarray(pos), np.asarray(neg), np.asarray(hard)
    supported = float(np.percentile(neg_a, 95))  # at most 5% of mismatched citations pass as supported
    weak = float(np.percentile(neg_a, 80))
    rate = lambda values, threshold: round(float(np.mean(values >= threshold)), 3)  # noqa: E731
    return {"claims": len(pos), "auc": round(roc_auc(pos, neg), 4), "auc_hard": round(roc_auc(pos, hard), 4),
            "supported_threshold": round(supported, 3), "weak_threshold": round(weak, 3),
            "tpr_at_supported": rate(pos_a, supported), "tpr_at_weak": rate(pos_a, weak),
            "fpr_at_weak": rate(neg_a, weak), "hard_fpr_at_supported": rate(hard_a, supported),
            "hard_fpr_at_weak": rate(hard_a, weak), "verdicts": {k: dict(v) for k, v in verdicts.items()}}


def calibrate_abstention(asker, questions: list[Question], k: int = 5) -> dict:
    """Best question-evidence similarity with each question's gold abstracts kept vs removed from retrieval."""
    import numpy as np

    from rag.retrieve import Filters

    kept, removed = [], []
    for q in questions:
        for target, filters in ((kept, Filters()), (removed, Filters(exclude_pmids=q.gold))):
            target.append(asker.relevance(q.text, asker.retriever.search(q.text, k, filters)))
    out = {"questions": len(questions), "auc_kept_vs_removed": round(roc_auc(kept, removed), 4)}
    for threshold in (0.3, 0.4, 0.5, 0.6):
        out[f"abstain_rate@{threshold}"] = {"gold_kept": round(float(np.mean(np.asarray(kept) < threshold)), 3),
                                            "gold_removed": round(float(np.mean(np.asarray(removed) < threshold)), 3)}
    return out

"""``eval verify``: citation verdicts on SciFact-format claims (Citation-Integrity dev by default), scorers side by side.

Each claim is scored against the sentences of the document it cites, as ``pubmed-rag check`` scores a claim against
an abstract. Reported per scorer: macro-F1 over the three verdicts, per-class precision and recall, ROC AUC
support-vs-refute, the share of REFUTE claims called supported and of SUPPORT claims kept supported, and latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.evaluation import roc_auc
from rag.evaluation.scifact import ClaimItem, load_scifact
from rag.verify import LABELS, Support, SupportScorer

SCORERS = {  # name -> VerifySettings overrides
    "cosine": {"scorer": "cosine", "rules": False},
    "cosine+rules": {"scorer": "cosine", "rules": True},
    "verifier": {"scorer": "verifier", "rules": False},
    "verifier+rules": {"scorer": "verifier", "rules": True},
}


def verdict_metrics(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    """Macro-F1 over the three labels, per-class precision/recall/F1 and the confusion counts."""
    per_class = {}
    for label in LABELS:
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "n": tp + fn}
    confusion = {g: {p: sum(a == g and b == p for a, b in zip(gold, predicted, strict=True)) for p in LABELS}
                 for g in LABELS}
    refuted = [p for g, p in zip(gold, predicted, strict=True) if g == "contradicted"]
    supported = [p for g, p in zip(gold, predicted, strict=True) if g == "supported"]
    return {"n": len(gold), "macro_f1": round(sum(c["f1"] for c in per_class.values()) / len(LABELS), 4),
            "accuracy": round(sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(1, len(gold)), 4),
            "refute_called_supported": round(refuted.count("supported") / max(1, len(refuted)), 4),
            "support_kept": round(supported.count("supported") / max(1, len(supported)), 4),
            "per_class": per_class, "confusion": confusion}


def agreement_value(s: Support) -> float:
    """One number for ranking support over contradiction: P(supported) - P(contradicted); a rule's contradiction
    ranks below every model value; the cosine scorer's similarity otherwise."""
    if s.rule:
        return -2.0 + s.score
    if "contradicted" in s.probabilities and s.probabilities["contradicted"] > 0:
        return s.probabilities["supported"] - s.probabilities["contradicted"]
    return s.score


def score_items(items: list[ClaimItem], scorer: SupportScorer,
                progress: Callable[[int], None] | None = None) -> tuple[list[Support], float]:
    """Each claim against its cited document's sentences; returns the results and seconds per claim."""
    out = []
    started = time.perf_counter()
    for item in items:
        out.append(scorer.check(item.claim, " ".join(item.sentences)))
        if progress:
            progress(1)
    return out, (time.perf_counter() - started) / max(1, len(items))


def evaluate_items(items: list[ClaimItem], results: list[Support]) -> dict[str, Any]:
    gold = [i.label for i in items]
    metrics = verdict_metrics(gold, [r.label for r in results])
    values = [agreement_value(r) for r in results]
    pos = [v for v, g in zip(values, gold, strict=True) if g == "supported"]
    neg = [v for v, g in zip(values, gold, strict=True) if g == "contradicted"]
    nei = [v for v, g in zip(values, gold, strict=True) if g == "not enough information"]
    metrics["auc_support_vs_refute"] = round(roc_auc(pos, neg), 4) if pos and neg else None
    metrics["auc_support_vs_nei"] = round(roc_auc(pos, nei), 4) if pos and nei else None
    metrics["rules_fired"] = sum(bool(r.rule) for r in results)
    return metrics


def text_latency(items: list[ClaimItem], scorer: SupportScorer, claims: int = 20) -> tuple[float, float]:
    """Seconds per (claim, document) pair checked one by one, and seconds to check a text of ``claims`` claims
    (each citing its own document) in one batch as ``rag.check.check_text`` does; fresh scorers, so nothing is
    cached but the loaded models."""
    chosen = items[:claims]
    one = SupportScorer(scorer.embedder, scorer.settings, model=scorer.model)
    started = time.perf_counter()
    for item in chosen:
        one.check(item.claim, " ".join(item.sentences))
    per_pair = (time.perf_counter() - started) / max(1, len(chosen))
    batch = SupportScorer(scorer.embedder, scorer.settings, model=scorer.model)
    started = time.perf_counter()
    batch.score_pairs([(item.claim, " ".join(item.sentences)) for item in chosen])
    return per_pair, time.perf_counter() - started


def evaluate_verify(claims: Path, corpus: Path, embedder: Any, settings: Any, scorers: list[str],
                    progress: Callable[[str, int], None] | None = None, n: int = 0) -> dict[str, Any]:
    """Every scorer in ``scorers`` (names of ``SCORERS``) on the claims file (``n``: the first N only);
    per-scorer metrics, and latency measured on a 20-claim text with nothing cached."""
    items = load_scifact(claims, corpus)
    items = items[:n] if n else items
    out: dict[str, Any] = {"claims": str(claims), "n": len(items), "scorers": {}}
    base = SupportScorer(embedder, settings.verify.model_copy(update={"scorer": "cosine"}))
    base.check("warm-up claim", "Warm-up sentence.")  # first-call costs are not per-pair costs
    for name in scorers:
        scorer = base.variant(**SCORERS[name])  # shares embeddings and model outputs with the other scorers
        results, _ = score_items(items, scorer, progress=(lambda k, name=name: progress(name, k))
                                 if progress else None)
        metrics = evaluate_items(items, results)
        per_pair, text = text_latency(items, scorer)
        metrics["ms_per_pair"] = round(per_pair * 1000, 1)
        metrics["s_per_20_claim_text"] = round(text, 2)
        out["scorers"][name] = metrics
    return out


def synthetic_flips(pqal: Path, scorer: SupportScorer, n: int = 0, seed: int = 0) -> dict[str, Any]:
    """The edit a generated answer can make: each PubMedQA conclusion's first finding sentence, and the same
    sentence with its negation, direction or a number flipped (``rag.training.verifier.contradict``), against the
    whole abstract (conclusion included). Use the official test split: the verifier never trains on it."""
    import json
    import random

    from rag.training.verifier import contradict, finding_sentence

    data = list(json.loads(Path(pqal).read_text(encoding="utf-8")).values())
    if n and n < len(data):
        data = [data[i * len(data) // n] for i in range(n)]
    rng = random.Random(seed)
    kept, flipped, kinds = [], [], {}
    for d in data:
        finding = finding_sentence(d["LONG_ANSWER"])
        edit = contradict(finding, rng) if finding else None
        if not finding or not edit:
            continue
        abstract = " ".join([*d["CONTEXTS"], d["LONG_ANSWER"]])
        kept.append(scorer.check(finding, abstract).label)
        flipped.append(scorer.check(edit[0], abstract).label)
        kinds.setdefault(edit[1], []).append(flipped[-1])
    share = lambda labels, label: round(labels.count(label) / max(1, len(labels)), 4)  # noqa: E731
    return {"n": len(kept), "original_supported": share(kept, "supported"),
            "flipped_contradicted": share(flipped, "contradicted"),
            "flipped_supported": share(flipped, "supported"),
            "flipped_contradicted_by_kind": {k: share(v, "contradicted") for k, v in sorted(kinds.items())}}


def tune_thresholds(items: list[ClaimItem], scorer: SupportScorer) -> dict[str, Any]:
    """Grid over ``verify.min_similarity``, ``verify.contradicted`` and ``verify.supported_probability``
    (threshold choice: use a dev split). The pick: best macro-F1 among settings that call <= 30% of REFUTE claims
    supported while keeping >= 85% of SUPPORT claims supported, else best macro-F1. Model outputs are cached, so
    each point only re-decides."""
    base = scorer.settings
    grid = []
    for min_similarity in (0.0, 0.3, 0.35, 0.4, 0.45, 0.5):
        for contradicted in (0.2, 0.3, 0.4, 0.5, 0.6):
            for supported in (0.2, 0.3, 0.4, 0.5, 0.6):
                point = {"min_similarity": min_similarity, "contradicted": contradicted,
                         "supported_probability": supported}
                scorer.settings = base.model_copy(update=point)
                m = evaluate_items(items, score_items(items, scorer)[0])
                grid.append(point | {k: m[k] for k in ("macro_f1", "refute_called_supported", "support_kept")})
    scorer.settings = base
    ok = [g for g in grid if g["refute_called_supported"] <= 0.30 and g["support_kept"] >= 0.85]
    return {"best": max(ok or grid, key=lambda g: g["macro_f1"]), "meets_targets": bool(ok), "grid": grid}


def evaluate_model(model: Any, embedder: Any, claims: Path, corpus: Path) -> dict[str, Any]:
    """A freshly trained verifier (not yet shipped) on a claims file: thresholds chosen on it (``tune_thresholds``),
    then scored with and without the rules at those thresholds."""
    from pubmed_rag.settings import VerifySettings

    items = load_scifact(claims, corpus)
    out: dict[str, Any] = {"n": len(items), "scorers": {}}
    scorer = SupportScorer(embedder, VerifySettings(), model=model)  # one scorer: model outputs are reused
    scorer.settings = VerifySettings(**SCORERS["verifier+rules"])
    out["thresholds"] = tune_thresholds(items, scorer)["best"]
    chosen = {k: out["thresholds"][k] for k in ("min_similarity", "contradicted", "supported_probability")}
    for name in ("verifier", "verifier+rules"):
        scorer.settings = VerifySettings(**SCORERS[name], **chosen)
        out["scorers"][name] = evaluate_items(items, score_items(items, scorer)[0])
    return out


def markdown(results: dict[str, Any]) -> str:
    """The side-by-side table of ``evaluate_verify`` results."""
    lines = ["| scorer | macro-F1 | P/R supported | P/R contradicted | P/R NEI | REFUTE called supported | "
             "SUPPORT kept supported | AUC support-vs-refute | ms/pair | s per 20-claim text |",
             "|---" * 10 + "|"]
    for name, m in results["scorers"].items():
        pc = m["per_class"]
        pr = [f"{pc[label]['precision']:.2f}/{pc[label]['recall']:.2f}" for label in LABELS]
        auc = m["auc_support_vs_refute"]
        lines.append(f"| {name} | {m['macro_f1']:.3f} | {' | '.join(pr)} | {m['refute_called_supported']:.1%} | "
                     f"{m['support_kept']:.1%} | {auc:.3f} | {m.get('ms_per_pair', 0):.0f} | "
                     f"{m.get('s_per_20_claim_text', 0):.1f} |")
    return "\n".join(lines)

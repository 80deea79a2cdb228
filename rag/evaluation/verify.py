"""``eval verify``: citation verdicts on the claim-verification sets, scorers side by side.

Each claim is scored against the text it cites (``rag.evaluation.claim_sets``), as ``pubmed-rag check`` scores a
claim against an abstract. Reported per scorer: macro-F1 over the three verdicts, per-class precision and recall,
ROC AUC support-vs-refute, the share of REFUTE claims called supported and of SUPPORT claims kept supported, what
each fine-grained REFUTE kind is called (Citation-Integrity: true contradictions apart from the other kinds of
"not accurate"), and latency.

Thresholds are chosen on the calibration claims (train claims held out of training,
``rag.training.verifier.is_calibration``) and reported on the dev splits: never chosen and reported on one split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.evaluation import roc_auc
from rag.evaluation.claim_sets import ClaimItem
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
        out.append(scorer.check(item.claim, item.text))
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
    kinds: dict[str, list[str]] = {}
    for item, result in zip(items, results, strict=True):
        if item.kind and item.label == "contradicted":
            kinds.setdefault(item.kind, []).append(result.label)
    if kinds:
        metrics["refute_kinds"] = {kind: {"n": len(labels), **{label: round(labels.count(label) / len(labels), 4)
                                                                for label in LABELS}}
                                   for kind, labels in sorted(kinds.items(), key=lambda kv: -len(kv[1]))}
    return metrics


def text_latency(items: list[ClaimItem], scorer: SupportScorer, claims: int = 20) -> tuple[float, float]:
    """Seconds per (claim, document) pair checked one by one, and seconds to check a text of ``claims`` claims
    (each citing its own document) in one batch as ``rag.check.check_text`` does; fresh scorers, so nothing is
    cached but the loaded models."""
    chosen = items[:claims]
    one = SupportScorer(scorer.embedder, scorer.settings, model=scorer.model)
    started = time.perf_counter()
    for item in chosen:
        one.check(item.claim, item.text)
    per_pair = (time.perf_counter() - started) / max(1, len(chosen))
    batch = SupportScorer(scorer.embedder, scorer.settings, model=scorer.model)
    started = time.perf_counter()
    batch.score_pairs([(item.claim, item.text) for item in chosen])
    return per_pair, time.perf_counter() - started


def evaluate_verify(items: list[ClaimItem], embedder: Any, settings: Any, scorers: list[str],
                    progress: Callable[[str, int], None] | None = None, latency: bool = True,
                    tuned: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every scorer in ``scorers`` (names of ``SCORERS``) on ``items``; per-scorer metrics, and (``latency``) the
    time per pair and per 20-claim text with nothing cached. ``tuned``: per-scorer settings (thresholds chosen on
    another split) applied over ``settings.verify``."""
    out: dict[str, Any] = {"n": len(items), "scorers": {}}
    base = SupportScorer(embedder, settings.verify.model_copy(update={"scorer": "cosine"}))
    base.check("warm-up claim", "Warm-up sentence.")  # first-call costs are not per-pair costs
    for name in scorers:
        # Shares embeddings and model outputs with the other scorers.
        scorer = base.variant(**SCORERS[name], **(tuned or {}).get(name, {}))
        results, _ = score_items(items, scorer, progress=(lambda k, name=name: progress(name, k))
                                 if progress else None)
        metrics = evaluate_items(items, results)
        if latency:
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

    from rag.evaluation.flips import contradict, finding_sentence

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


THRESHOLD_GRID = {"min_similarity": (0.0, 0.1, 0.2, 0.3, 0.4),
                  "contradicted": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
                  "supported_probability": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)}


def tune_thresholds(items: list[ClaimItem], scorer: SupportScorer) -> dict[str, Any]:
    """Grid over ``verify.min_similarity``, ``verify.contradicted`` and ``verify.supported_probability`` on
    ``items`` (use the calibration claims, never the split you report). The pick: the best mean of the datasets'
    macro-F1 (each set counts once, however many claims it has). Model outputs are cached, so each point only
    re-decides."""
    base = scorer.settings
    by_set: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        by_set.setdefault(item.dataset, []).append(n)
    results_by_point = []
    for min_similarity in THRESHOLD_GRID["min_similarity"]:
        for contradicted in THRESHOLD_GRID["contradicted"]:
            for supported in THRESHOLD_GRID["supported_probability"]:
                point = {"min_similarity": min_similarity, "contradicted": contradicted,
                         "supported_probability": supported}
                scorer.settings = base.model_copy(update=point)
                results = score_items(items, scorer)[0]
                per_set = {name: evaluate_items([items[n] for n in rows], [results[n] for n in rows])["macro_f1"]
                           for name, rows in sorted(by_set.items())}
                results_by_point.append(point | {"mean_macro_f1": round(sum(per_set.values()) / len(per_set), 4),
                                                 "macro_f1": per_set})
    scorer.settings = base
    return {"best": max(results_by_point, key=lambda g: g["mean_macro_f1"]), "grid": results_by_point,
            "n": len(items), "datasets": sorted(by_set)}


def kinds_markdown(metrics: dict[str, Any]) -> str:
    """What each fine-grained REFUTE kind is called (Citation-Integrity), one row a kind."""
    lines = ["| REFUTE kind | n | called contradicted | called supported | called NEI |", "|---|---|---|---|---|"]
    for kind, m in metrics.get("refute_kinds", {}).items():
        lines.append(f"| {kind} | {m['n']} | {m['contradicted']:.1%} | {m['supported']:.1%} | "
                     f"{m['not enough information']:.1%} |")
    return "\n".join(lines)


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
                     f"{m['support_kept']:.1%} | {'-' if auc is None else f'{auc:.3f}'} | {m.get('ms_per_pair', 0):.0f} | "
                     f"{m.get('s_per_20_claim_text', 0):.1f} |")
    return "\n".join(lines)


def dev_report(embedder: Any, settings: Any, data_dir: Path, scorers: list[str], datasets: tuple[str, ...],
               progress: Callable[[str, int], None] | None = None, latency: bool = False,
               tuned: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every scorer on every dataset's dev split (Citation-Integrity's REFUTE kinds apart), and each scorer's mean
    macro-F1 over the datasets."""
    from rag.evaluation.claim_sets import load_dataset

    out: dict[str, Any] = {"datasets": {}}
    for name in datasets:
        items = load_dataset(name, "dev", data_dir)
        out["datasets"][name] = evaluate_verify(items, embedder, settings, scorers, progress, latency, tuned)
    out["mean_macro_f1"] = {s: round(sum(d["scorers"][s]["macro_f1"] for d in out["datasets"].values())
                                     / len(datasets), 4) for s in scorers}
    return out


def choose_settings(items: list[ClaimItem], scorer: SupportScorer,
                    candidates: tuple[int, ...] = (2, 3, 5)) -> dict[str, Any]:
    """The verifier's reading width (``verify.candidates``) and thresholds, chosen on ``items`` (the calibration
    claims) for the scorer's rules setting: the best mean macro-F1 over the datasets."""
    base = scorer.settings
    tried = []
    for width in candidates:
        scorer.settings = base.model_copy(update={"candidates": width})
        tuned = tune_thresholds(items, scorer)
        tried.append({"candidates": width, **tuned["best"]})
    scorer.settings = base
    return {"best": max(tried, key=lambda t: t["mean_macro_f1"]), "tried": tried, "n": len(items)}


TUNED_KEYS = ("candidates", "min_similarity", "contradicted", "supported_probability")


def tune_scorers(items: list[ClaimItem], embedder: Any, verify: Any, names: list[str],
                 cache_dir: Path | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """For each verifier scorer among ``names`` (``verifier``, ``verifier+rules``): its reading width and thresholds
    chosen on ``items`` (``choose_settings``; one model, its outputs shared between the scorers). Returns the chosen
    settings by scorer (``evaluate_verify``'s ``tuned``) and each choice in full."""
    base = SupportScorer(embedder, verify.model_copy(update={"scorer": "verifier"}), cache_dir=cache_dir)
    tuned: dict[str, dict[str, Any]] = {}
    choices: dict[str, Any] = {}
    for name in [n for n in names if SCORERS[n]["scorer"] == "verifier"]:
        choices[name] = choose_settings(items, base.variant(**SCORERS[name]))
        tuned[name] = {k: choices[name]["best"][k] for k in TUNED_KEYS}
    return tuned, choices

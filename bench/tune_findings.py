"""Tune the key-finding sentence weights (answer.lexical_weight, results/conclusions priors, cue_weight).

Two shared data sets, each split into a tuning part and a held-out part:

- PubMedQA-L: each item's question against its own abstract *without* the conclusion (CONTEXTS, labelled);
  target: ROUGE-SU4 of the chosen sentence against the conclusion (LONG_ANSWER). Tuned on the 500 items outside
  the official test split, reported on the 500 test items. The conclusion is removed, so this tunes which of the
  remaining sentences (results vs background, objective, methods) carries the answer; it cannot tune the
  conclusions prior.
- BioASQ (``--bioasq``, needs the evaluation index): the findings-only answer (the best sentence of each of the two
  strongest records among the top 5 retrieved) against the experts' ideal answers, yes/no and summary questions.
  Tuned on 7B+8B, reported on 9B.

    python bench/tune_findings.py [--bioasq] [--index eval-bioasq]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.embedder import load_embedder  # noqa: E402
from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.records import section_category  # noqa: E402
from rag.evaluation import bioasq_answer_questions, rouge  # noqa: E402
from rag.findings import abstract_sentences, has_cue, lexical_overlap  # noqa: E402

SHARED = SHARED_DATA
GRID = {"lexical_weight": [0.0, 0.15, 0.3, 0.5], "results_prior": [0.0, 0.05, 0.1, 0.2],
        "conclusions_prior": [0.0, 0.05, 0.1, 0.2], "cue_weight": [0.0, 0.03, 0.06], "candidates": [4, 6, 100]}


def features(embedder, question: str, sentences) -> dict:
    texts = [s.text for s in sentences]
    vecs = embedder.encode([question, *texts], batch_size=64)
    return {"texts": texts, "cos": vecs[1:] @ vecs[0], "lex": lexical_overlap(question, texts),
            "cat": [s.category for s in sentences], "cue": np.array([has_cue(t) for t in texts], dtype=float)}


def scores(group: dict, w: dict) -> np.ndarray:
    """As ``FindingExtractor.extract``: only the ``candidates`` best sentences by the cheap terms are embedded."""
    prior = np.array([{"RESULTS": w["results_prior"], "CONCLUSIONS": w["conclusions_prior"]}.get(c, 0.0)
                      for c in group["cat"]])
    cheap = w["lexical_weight"] * group["lex"] + prior + w["cue_weight"] * group["cue"]
    out = np.full(len(cheap), -np.inf)
    keep = np.argsort(-cheap, kind="stable")[: w["candidates"]]
    out[keep] = group["cos"][keep] + cheap[keep]
    return out


def pubmedqa(embedder) -> tuple[list[dict], list[dict]]:
    data = json.loads((SHARED / "pubmedqa" / "ori_pqal.json").read_text())
    test = set(json.loads((SHARED / "pubmedqa" / "test_ground_truth.json").read_text()))
    tune, held = [], []
    for pmid, item in data.items():
        sections = [(section_category(label), label, text) for label, text in zip(item["LABELS"], item["CONTEXTS"],
                                                                                   strict=True)]
        sentences = abstract_sentences(sections)
        if len(sentences) < 2:
            continue
        group = features(embedder, item["QUESTION"], sentences)
        group["su4"] = np.array([rouge(t, [item["LONG_ANSWER"]])["su4"] for t in group["texts"]])
        (held if pmid in test else tune).append({"groups": [group]})
    return tune, held


def pubmedqa_score(items: list[dict], w: dict) -> float:
    return float(np.mean([g["su4"][int(np.argmax(scores(g, w)))] for it in items for g in it["groups"]]))


def bioasq(index: str, n: int | None = None) -> tuple[list[dict], list[dict]]:
    from pubmed_rag.settings import Settings
    from rag.pipeline import Asker

    asker = Asker(Settings.load(), index=index)
    files = sorted((SHARED / "bioasq").glob("Task*/*_golden.json"))
    questions = bioasq_answer_questions(files)
    if n and n < len(questions):  # evenly spaced, so every batch of every year is represented
        questions = [questions[i * len(questions) // n] for i in range(n)]
    tune, held = [], []
    for q in questions:
        evidence = asker.retriever.search(q["body"], 5)
        groups = []
        for ev in evidence:
            sentences = abstract_sentences([tuple(s) for s in ev.sections] or [("", "", ev.abstract)])
            if sentences:
                groups.append(features(asker.embedder, q["body"], sentences))
        if groups:
            (held if q["task"] == "9B" else tune).append({"groups": groups, "refs": q["ideal"]})
    return tune, held


def bioasq_score(items: list[dict], w: dict, n: int = 2) -> float:
    """SU4 of the best sentences of the ``n`` records whose best sentence scores highest (findings-only answer)."""
    out = []
    for it in items:
        best = []
        for g in it["groups"]:
            s = scores(g, w)
            i = int(np.argmax(s))
            best.append((float(s[i]), g["texts"][i]))
        best.sort(key=lambda x: -x[0])
        out.append(rouge(" ".join(t for _, t in best[:n]), it["refs"])["su4"])
    return float(np.mean(out))


def grid_search(tune, held, score, keys) -> None:
    default = {"lexical_weight": 0.3, "results_prior": 0.05, "conclusions_prior": 0.1, "cue_weight": 0.03,
               "candidates": 6}
    results = []
    for values in itertools.product(*(GRID[k] for k in keys)):
        w = {**default, **dict(zip(keys, values, strict=True))}
        results.append((score(tune, w), w))
    results.sort(key=lambda r: -r[0])
    best = results[0][1]
    cosine_only = {**{k: 0.0 for k in default}, "candidates": 100}
    print(f"  tuning set ({len(tune)}): cosine only {score(tune, cosine_only):.4f}, defaults {score(tune, default):.4f},"
          f" best {results[0][0]:.4f} with {best}")
    print(f"  held out ({len(held)}): cosine only {score(held, cosine_only):.4f}, defaults {score(held, default):.4f}, "
          f"best-on-tuning {score(held, best):.4f}")


def cached(path: Path | None, build):
    """``build()``'s (tune, held) item lists, stored as JSON at ``path`` so a changed grid costs no re-embedding."""
    if path is not None and path.exists():
        data = json.loads(path.read_text())
    else:
        data = [[{**it, "groups": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in g.items()}
                                   for g in it["groups"]]} for it in part] for part in build()]
        if path is not None:
            path.write_text(json.dumps(data))
    return [[{**it, "groups": [{k: (np.asarray(v) if k in ("cos", "lex", "cue", "su4") else v) for k, v in g.items()}
                               for g in it["groups"]]} for it in part] for part in data]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bioasq", action="store_true")
    parser.add_argument("--index", default="eval-bioasq")
    parser.add_argument("--n", type=int, help="BioASQ: only N questions, evenly spaced")
    parser.add_argument("--cache", type=Path, help="folder for the computed features (reused when present)")
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = load_embedder()
    print("PubMedQA-L: best non-conclusion sentence vs the conclusion (SU4 F1)")
    tune, held = cached(args.cache and args.cache / "pubmedqa.json", lambda: pubmedqa(embedder))
    grid_search(tune, held, pubmedqa_score, ["lexical_weight", "results_prior", "cue_weight", "candidates"])
    if args.bioasq:
        print("BioASQ yes/no + summary: findings-only answer (2 records) vs ideal answers (SU4 F1)")
        path = args.cache and args.cache / f"bioasq-{args.index}-{args.n or 'all'}.json"
        tune, held = cached(path, lambda: bioasq(args.index, args.n))
        grid_search(tune, held, bioasq_score, list(GRID))
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

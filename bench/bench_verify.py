"""Citation-check latency: the current scorer and the verifier on each runtime, side by side, in one run.

For a manuscript-sized job, 20 claims each citing its own abstract (real SciFact dev pairs by default), measured
with nothing cached but the loaded models, each setting interleaved over ``--repeats`` rounds (the median is kept):

- ``cosine+rules``: the similarity scorer with the agreement rules (the fallback; the default before issue 20);
- ``verifier torch`` / ``verifier onnx``: the trained verifier on PyTorch and on ONNX Runtime;
- ``... stored vectors``: the same with the abstracts' sentences and their vectors already known, as an index that
  stored them at ingest would give (what storing them would buy);
- one pair at a time (``check`` per claim) and the 20 pairs in one batched call (``check_text``'s way).

Each row also splits the batched call into its parts: sentence splitting and embedding, claim embedding, the model.
``--ingest N`` also builds an index of N sample abstracts with and without ``ingest.sentence_vectors`` (the cost of
storing them), interleaved, and reports both times and the store's size.

    python bench/bench_verify.py [--dataset scifact] [--claims 20] [--repeats 3] [--model pubmed_rag/models/verifier]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from ingest.embedder import load_embedder
from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import Settings
from rag.evaluation.claim_sets import load_dataset
from rag.verify import SupportScorer, scoring_model, verifier_path

ROOT = Path(__file__).parents[1]


def timed(scorer: SupportScorer, pairs: list[tuple[str, str]], batched: bool) -> float:
    started = time.perf_counter()
    if batched:
        scorer.score_pairs(pairs)
    else:
        for pair in pairs:
            scorer.score_pairs([pair])
    return time.perf_counter() - started


def parts(scorer: SupportScorer, pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Seconds of the batched call spent embedding sentences, embedding claims and in the model."""
    out = {}
    started = time.perf_counter()
    scorer._embed_texts([t for _, t in pairs])
    out["sentences"] = time.perf_counter() - started
    started = time.perf_counter()
    scorer._claim_vectors([c for c, _ in pairs])
    out["claims"] = time.perf_counter() - started
    started = time.perf_counter()
    scorer.score_pairs(pairs)
    out["model+decide"] = time.perf_counter() - started
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--claims", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="", help="verifier folder (default: the shipped pubmed_rag/models/verifier)")
    ap.add_argument("--ingest", type=int, default=0, help="also time ingesting N sample abstracts with and without "
                    "stored sentence vectors")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    settings = Settings()
    verify = settings.verify.model_copy(update={"model": args.model} if args.model else {})
    items = load_dataset(args.dataset, "dev", SHARED_DATA)
    step = max(1, len(items) // args.claims)
    pairs = [(i.claim, i.text) for i in items[::step][:args.claims]]
    embedder = load_embedder(settings.embedding.model, settings.embedding.max_tokens, settings.embedding.backend,
                             settings.paths.cache_dir)
    path = str(verifier_path(verify))
    models = {"torch": scoring_model(path, "torch", str(settings.paths.cache_dir))[0],
              "onnx": scoring_model(path, "onnx", str(settings.paths.cache_dir))[0]}
    setups = {"cosine+rules": (verify.model_copy(update={"scorer": "cosine", "rules": True}), None, False)}
    for backend, model in models.items():
        for stored in (False, True):
            name = f"verifier {backend}" + (" stored vectors" if stored else "")
            setups[name] = (verify.model_copy(update={"scorer": "verifier", "backend": backend}), model, stored)
    warm = SupportScorer(embedder, setups["cosine+rules"][0])
    warm.score_pairs(pairs[:2])
    for _, model, _ in setups.values():
        if model is not None:
            model.predict(pairs[:2])
    times: dict[str, dict[str, list[float]]] = {name: {"one": [], "batch": []} for name in setups}
    split: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, (cfg, model, stored) in setups.items():
            for mode in ("one", "batch"):
                scorer = SupportScorer(embedder, cfg, model=model)
                if stored:
                    scorer._embed_texts([t for _, t in pairs])
                times[name][mode].append(timed(scorer, pairs, mode == "batch"))
            scorer = SupportScorer(embedder, cfg, model=model)
            if stored:
                scorer._embed_texts([t for _, t in pairs])
            split[name].append(parts(scorer, pairs))
    rows = {}
    for name in setups:
        one, batch = statistics.median(times[name]["one"]), statistics.median(times[name]["batch"])
        rows[name] = {"ms_per_pair_one_by_one": round(one / len(pairs) * 1000, 1),
                      "s_per_text_batched": round(batch, 3),
                      "parts_s": {k: round(statistics.median(p[k] for p in split[name]), 3)
                                  for k in split[name][0]}}
    base = rows["cosine+rules"]["s_per_text_batched"]
    print(f"{len(pairs)} claims from {args.dataset} dev, median of {args.repeats}; load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after\n")
    print("| setting | ms per pair, one by one | s per 20-claim text, batched | vs cosine+rules | sentences | claims "
          "| model + decide |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        p = r["parts_s"]
        print(f"| {name} | {r['ms_per_pair_one_by_one']:.1f} | {r['s_per_text_batched']:.3f} | "
              f"{r['s_per_text_batched'] / base:.2f}x | {p['sentences']:.3f} | {p['claims']:.3f} | "
              f"{p['model+decide']:.3f} |")
    result = {"pairs": len(pairs), "dataset": args.dataset, "rows": rows}
    if args.ingest:
        result["ingest"] = ingest_cost(args.ingest, args.repeats, embedder)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


def ingest_cost(n: int, repeats: int, embedder: object) -> dict[str, float]:
    """Seconds to ingest ``n`` sample abstracts into a new index with and without stored sentence vectors
    (median over ``repeats``, interleaved), and the size of the sentence store."""
    import tempfile

    from ingest.build import RecordsSource, ingest
    from ingest.jsonl import parse_jsonl_file
    from ingest.sentence_store import SENTENCES_FILE
    from pubmed_rag.records import Record

    records = [r for r in parse_jsonl_file(ROOT / "data" / "sample" / "abstracts.jsonl.gz") if isinstance(r, Record)][:n]
    seconds: dict[bool, list[float]] = {False: [], True: []}
    size = 0
    for _ in range(repeats):
        for stored in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                settings = Settings.load({"paths.index_dir": tmp, "ingest.sentence_vectors": stored})
                started = time.perf_counter()
                ingest([RecordsSource("sample", records)], "bench", settings, embedder=embedder)
                seconds[stored].append(time.perf_counter() - started)
                if stored:
                    size = (Path(tmp) / "bench" / SENTENCES_FILE).stat().st_size
    plain, stored = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"\ningest of {len(records)} abstracts: {plain:.1f} s without stored sentence vectors, {stored:.1f} s with "
          f"({stored / plain:.2f}x); sentences.sqlite {size / 1e6:.1f} MB")
    return {"abstracts": len(records), "s_without": round(plain, 1), "s_with": round(stored, 1),
            "sentences_mb": round(size / 1e6, 2)}


if __name__ == "__main__":
    main()

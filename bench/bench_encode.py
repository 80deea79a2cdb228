"""Encoding speed and agreement, side by side in one run: PyTorch (eager) vs ONNX Runtime vs ONNX int8.

    python bench/bench_encode.py [--queries 300] [--batch-texts 256] [--agreement 1000] [--threads N]

- single-query encode p50/p95: BioASQ 7B-9B questions (../shared/data/bioasq; tests/fixtures/bioasq_9B1_sample.json
  when absent), one at a time on one thread, the backends interleaved question by question so that they share the
  machine's load alike;
- batch throughput: abstracts of the shared corpus (../shared/data/corpus/abstracts.jsonl.gz) with at least 256
  tokens, so every text fills the 256-token window, batches of 32, ``--threads`` threads each, rounds interleaved;
- agreement: cosine of each backend's vector to PyTorch's over ``--agreement`` corpus abstracts (and the queries).

The int8 column is ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights) of the exported model, written to
a temporary folder: reported, adopted only if its cosine to PyTorch is >= 0.9999 everywhere.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ingest.embedder import SentenceTransformerEmbedder, load_embedder, resolve_model_path
from ingest.onnx_embedder import MIN_COSINE, OnnxEmbedder
from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import DEFAULT_EMBEDDER, Settings

ROOT = Path(__file__).parents[1]
SHARED = SHARED_DATA


def bioasq_questions(folder: Path) -> tuple[list[str], str]:
    files = sorted(folder.glob("Task[789]BGoldenEnriched/*_golden.json")) if folder.is_dir() else []
    source = f"{folder} (Task 7B-9B golden batches, {len(files)} files)"
    if not files:
        files, source = [ROOT / "tests" / "fixtures" / "bioasq_9B1_sample.json"], "tests/fixtures/bioasq_9B1_sample.json"
    questions = [q["body"] for f in files for q in json.loads(f.read_text(encoding="utf-8"))["questions"]]
    return list(dict.fromkeys(questions)), source


def corpus_texts(path: Path, n: int, embedder: SentenceTransformerEmbedder, min_tokens: int = 0) -> list[str]:
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            text = f"{row['title']} {row['abstract']}".strip()
            if min_tokens and embedder.count_tokens(text) < min_tokens:
                continue
            out.append(text)
            if len(out) == n:
                break
    return out


def quantized(model_file: str, folder: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = folder / "model.int8.onnx"
    # The fused graph's onnxruntime operators have no ONNX shape inference: their outputs are float32.
    quantize_dynamic(model_file, str(target), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bioasq", type=Path, default=SHARED / "bioasq")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "abstracts.jsonl.gz")
    parser.add_argument("--queries", type=int, default=300, help="BioASQ questions timed (after 20 warm-up ones)")
    parser.add_argument("--batch-texts", type=int, default=256, help="256-token abstracts per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per backend (median reported)")
    parser.add_argument("--agreement", type=int, default=1000, help="abstracts for the cosine agreement")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for batches, both backends")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    import onnxruntime
    import torch

    settings = Settings.load()
    torch.set_num_threads(args.threads)
    reference = load_embedder(DEFAULT_EMBEDDER, 256, "torch")
    exported = load_embedder(DEFAULT_EMBEDDER, 256, "onnx", settings.paths.cache_dir)
    assert isinstance(reference, SentenceTransformerEmbedder) and isinstance(exported, OnnxEmbedder)
    tmp = tempfile.TemporaryDirectory()
    int8_file = quantized(exported.model_file, Path(tmp.name))
    backends = {
        "torch": reference,
        "onnx": OnnxEmbedder(exported.layout, exported.model_file, 256, name=DEFAULT_EMBEDDER, threads=args.threads),
        "onnx-int8": OnnxEmbedder(exported.layout, int8_file, 256, name=DEFAULT_EMBEDDER, threads=args.threads),
    }
    names = list(backends)

    questions, q_source = bioasq_questions(args.bioasq)
    warm, timed = questions[:20], questions[20:20 + args.queries]
    for q in warm:
        for e in backends.values():
            e.encode([q])
    latency: dict[str, list[float]] = {n: [] for n in names}
    qvec: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i, q in enumerate(timed):
        for n in names[i % len(names):] + names[:i % len(names)]:  # rotate who goes first
            t = time.perf_counter()
            v = backends[n].encode([q])
            latency[n].append(time.perf_counter() - t)
            qvec[n].append(v[0])

    long_texts = corpus_texts(args.corpus, args.batch_texts, reference, min_tokens=256)
    for e in backends.values():
        e.encode(long_texts[:32], batch_size=32)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            backends[n].encode(long_texts, batch_size=32)
            rates[n].append(len(long_texts) / (time.perf_counter() - t))

    agree_texts = corpus_texts(args.corpus, args.agreement, reference)
    vectors = {n: e.encode(agree_texts, batch_size=32) for n, e in backends.items()}
    results: dict[str, dict] = {}
    for n in names:
        ms = np.array(latency[n]) * 1000
        cos = np.sum(vectors[n] * vectors["torch"], axis=1)
        qcos = np.sum(np.stack(qvec[n]) * np.stack(qvec["torch"]), axis=1)
        results[n] = {
            "query_p50_ms": float(np.percentile(ms, 50)), "query_p95_ms": float(np.percentile(ms, 95)),
            "batch_texts_per_s": float(np.median(rates[n])), "batch_rounds": [round(x, 2) for x in rates[n]],
            "cosine_min": float(min(cos.min(), qcos.min())), "cosine_mean": float(np.concatenate([cos, qcos]).mean()),
        }
    base = results["torch"]
    for n in names:
        results[n]["query_speedup"] = base["query_p50_ms"] / results[n]["query_p50_ms"]
        results[n]["batch_speedup"] = results[n]["batch_texts_per_s"] / base["batch_texts_per_s"]
        results[n]["agrees"] = results[n]["cosine_min"] >= MIN_COSINE

    load = os.getloadavg()
    print(f"model: {resolve_model_path(DEFAULT_EMBEDDER)} (max_tokens 256)")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, batch threads {args.threads}, load average after the run {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}")
    print(f"queries: {len(timed)} BioASQ questions from {q_source} (after {len(warm)} warm-up), one thread")
    print(f"batch: {len(long_texts)} abstracts of >= 256 tokens (truncated to 256), batch 32, {args.rounds} rounds: "
          "median texts/s")
    print(f"agreement: cosine to torch over {len(agree_texts)} corpus abstracts + the {len(timed)} queries\n")
    print("| | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    rows = [
        ("query encode p50 (ms)", lambda r: f"{r['query_p50_ms']:.1f}"),
        ("query encode p95 (ms)", lambda r: f"{r['query_p95_ms']:.1f}"),
        ("query p50 speedup vs torch", lambda r: f"{r['query_speedup']:.2f}x"),
        ("batch throughput (256-token texts/s)", lambda r: f"{r['batch_texts_per_s']:.1f}"),
        ("batch speedup vs torch", lambda r: f"{r['batch_speedup']:.2f}x"),
        ("cosine to torch, min", lambda r: f"{r['cosine_min']:.6f}"),
        ("cosine to torch, mean", lambda r: f"{r['cosine_mean']:.6f}"),
        (f"agrees (min >= {MIN_COSINE})", lambda r: "yes" if r["agrees"] else "no"),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(results[n]) for n in names) + " |")
    onnx = results["onnx"]
    print(f"\ntargets: query p50 <= 5 ms: {'met' if onnx['query_p50_ms'] <= 5 else 'missed'} "
          f"({onnx['query_p50_ms']:.1f} ms); batch >= 1.3x: {'met' if onnx['batch_speedup'] >= 1.3 else 'missed'} "
          f"({onnx['batch_speedup']:.2f}x); int8 {'adoptable' if results['onnx-int8']['agrees'] else 'not adopted'} "
          f"(min cosine {results['onnx-int8']['cosine_min']:.4f})")
    if args.out:
        args.out.write_text(json.dumps({"load_average": load, "threads": args.threads, "results": results}, indent=1))
    tmp.cleanup()


if __name__ == "__main__":
    main()

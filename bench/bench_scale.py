"""Vector index types at scale, side by side: build, disk, open, RSS, latency, recall@10; update cost; projection.

    python bench/bench_scale.py embed [--seconds 600]      # once: real sentence vectors + BioASQ query vectors
    python bench/bench_scale.py run --n 1000000 [--types flat,ivfflat,ivfpq,hnsw]
    python bench/bench_scale.py big --n 10000000                # IVF-PQ only, the vectors streamed

Vectors: the sentences of ../shared/data/corpus/abstracts.jsonl.gz embedded with all-MiniLM-L6-v2 (as many as fit in
``--seconds``, in a seeded random order so every source of the corpus is represented), cached under .cache/scale/.
``run`` grows them to ``--n`` by perturbation: row i (i >= the number of real vectors r) is
``normalise(real[i mod r] + sigma * g)`` with g ~ N(0, I_384), sigma = 0.3 / sqrt(384) (the noise vector has norm about
0.3, so a copy keeps cosine about 0.96 with its source), numpy seed 0; rows 0..r-1 are the real vectors themselves.
Queries: BioASQ 7B-9B question bodies (the same encoder); ground truth: exact inner-product search over the same
vectors (faiss IndexFlatIP).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from pubmed_rag.paths import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_DATA
CACHE = ROOT / ".cache" / "scale"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


def sentences(corpus: Path) -> list[str]:
    """Every sentence (>= 20 characters) of every title + abstract, in file order."""
    out: list[str] = []
    with gzip.open(corpus, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            text = f"{row['title']} {row['abstract']}".strip()
            out.extend(s for s in _SENTENCE.split(text) if len(s) >= 20)
    return out


def bioasq_bodies() -> list[str]:
    bodies: list[str] = []
    for path in sorted((SHARED / "bioasq").glob("Task*/*_golden.json")):
        bodies.extend(q["body"] for q in json.loads(path.read_text(encoding="utf-8"))["questions"])
    return list(dict.fromkeys(bodies))


def embed(seconds: float, batch: int = 64) -> None:
    """Embed BioASQ questions, then corpus sentences until ``seconds`` have passed; cache both as .npy."""
    from ingest.embedder import load_embedder

    CACHE.mkdir(parents=True, exist_ok=True)
    model = load_embedder("all-MiniLM-L6-v2", 256)
    questions = bioasq_bodies()
    np.save(CACHE / "queries.npy", model.encode(questions, batch_size=batch))
    texts = sentences(SHARED / "corpus" / "abstracts.jsonl.gz")
    order = np.random.default_rng(0).permutation(len(texts))
    texts = [texts[i] for i in order]
    print(f"{len(questions)} BioASQ questions embedded; corpus has {len(texts)} sentences", flush=True)
    parts: list[np.ndarray] = []
    started = time.perf_counter()
    done = 0
    while done < len(texts) and time.perf_counter() - started < seconds:
        parts.append(model.encode(texts[done : done + 1024], batch_size=batch))
        done += len(parts[-1])
        np.save(CACHE / "sentences.npy", np.concatenate(parts))  # survive a kill: save as we go
        print(f"{done} sentences in {time.perf_counter() - started:.0f} s", flush=True)
    (CACHE / "sentences.json").write_text(json.dumps({"embedded": done, "total": len(texts),
                                                      "seconds": round(time.perf_counter() - started, 1)}))


def grown_blocks(real: np.ndarray, n: int, noise: float = 0.3, seed: int = 0, block: int = 65_536):
    """The ``n`` vectors of ``grow`` in order, as ``(first row, rows)`` blocks of at most ``block`` rows, without
    holding them all (the same numbers as ``grow``)."""
    if len(real):
        yield 0, real[: min(n, len(real))]
    rng = np.random.default_rng(seed)
    sigma = noise / np.sqrt(real.shape[1])
    for start in range(len(real), n, block):
        rows = np.arange(start, min(n, start + block))
        part = real[rows % len(real)] + sigma * rng.standard_normal((len(rows), real.shape[1]), dtype=np.float32)
        yield start, (part / np.linalg.norm(part, axis=1, keepdims=True)).astype(np.float32)


def grow(real: np.ndarray, n: int, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors: the real ones, then perturbed copies of them (module docstring)."""
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start, rows in grown_blocks(real, n, noise, seed):
        out[start : start + len(rows)] = rows
    return out


def ground_truth(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    faiss.omp_set_num_threads(2)
    return flat.search(queries, k)[1]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(kind: str, vectors: np.ndarray, folder: Path, args: argparse.Namespace) -> float:
    """Write a one-shard version of type ``kind`` into ``folder``; return the seconds it took."""
    import shutil

    from ingest.ann import IndexSpec, resolve_spec
    from ingest.ann.sharded import ShardedIndex

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    spec = resolve_spec(IndexSpec(kind, nlist=args.nlist, train_size=args.train_size, nprobe=args.nprobe,
                                  ef_search=args.ef_search, refine=args.refine, hnsw_m=args.hnsw_m,
                                  ef_construction=args.ef_construction, pq_m=args.pq_m, pq_bits=args.pq_bits),
                       len(vectors), 200_000)
    started = time.perf_counter()
    index = ShardedIndex.create(vectors.shape[1], spec)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    section = index.save(folder)
    seconds = time.perf_counter() - started
    (folder / "index.json").write_text(json.dumps({k: v for k, v in section.items() if k != "files"}))
    return seconds


def rss_parts() -> dict[str, float]:
    """Resident MB split into private (anonymous) memory and file pages mapped from the page cache (shared, and
    reclaimable under memory pressure), from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1e3 for key in ("RssAnon", "RssFile")}


def probe(folder: Path, queries: Path, truth: Path, k: int, sweep: list[dict]) -> dict:
    """In a fresh process: open time, RSS after open and after the queries, latency and recall@k with the
    manifest's search parameters, then with each override in ``sweep``."""
    import faiss
    import psutil

    from ingest.ann.sharded import ShardedIndex

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    base = rss_parts()
    started = time.perf_counter()
    index = ShardedIndex.open(folder, json.loads((folder / "index.json").read_text()))
    open_s = time.perf_counter() - started
    rss_open = proc.memory_info().rss
    q = np.load(queries)
    gt = np.load(truth)
    faiss.omp_set_num_threads(1)
    index.search(q[0], k)

    def measure(**overrides: int) -> dict:
        times, hits = [], 0
        for row, vector in enumerate(q):
            started = time.perf_counter()
            _, ids = index.search(vector, k, **overrides)
            times.append(time.perf_counter() - started)
            hits += len(set(ids.tolist()) & set(gt[row, :k].tolist()))
        times.sort()
        return {"p50_ms": times[len(times) // 2] * 1000, "p95_ms": times[int(len(times) * 0.95)] * 1000,
                "recall": hits / (k * len(q))}

    after_open = rss_parts()
    out = {"open_s": open_s, "rss_open_mb": (rss_open - rss0) / 1e6, **measure(), "queries": len(q)}
    out["rss_queries_mb"] = (proc.memory_info().rss - rss0) / 1e6
    after = rss_parts()
    for label, parts in (("open", after_open), ("queries", after)):
        out[f"anon_{label}_mb"] = parts["RssAnon"] - base["RssAnon"]
        out[f"file_{label}_mb"] = parts["RssFile"] - base["RssFile"]
    out["sweep"] = [{**o, **measure(**o)} for o in sweep]
    return out


SWEEPS = {"ivfflat": [{"nprobe": 16}, {"nprobe": 64}, {"nprobe": 256}],
          "ivfpq": [{"refine": 1}, {"refine": 16}, {"nprobe": 64, "refine": 32}, {"nprobe": 256, "refine": 32}],
          "hnsw": [{"ef_search": 192}, {"ef_search": 768}]}


def update(folder: Path, dimension: int, records: int, chunks_per_record: float, replaced: float) -> dict:
    """A daily-update-sized change against a built version: open it, add ``records`` x ``chunks_per_record`` new
    vectors, remove the vectors of the ``replaced`` share of them (a replaced record's old chunks), save the new
    version beside it (hard links + one new shard + deletion list) and hash the files it wrote, as ingest does."""
    import shutil

    from ingest.ann.sharded import ShardedIndex
    from pubmed_rag.checksums import sha256_file as sha256

    target = folder.parent / (folder.name + "-update")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    index = ShardedIndex.open(folder, json.loads((folder / "index.json").read_text()))
    n = int(records * chunks_per_record)
    fresh = rng.standard_normal((n, dimension), dtype=np.float32)
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    total = len(index)
    index.add(np.arange(total, total + n, dtype=np.int64), fresh)
    index.remove(rng.choice(total, int(n * replaced), replace=False).tolist())
    section = index.save(target)
    written = [f for f in section["files"] if f not in section["linked"]]
    for name in written:
        sha256(target / name)
    seconds = time.perf_counter() - started
    new_bytes = sum((target / f).stat().st_size for f in written)
    shutil.rmtree(target)
    return {"seconds": seconds, "vectors_added": n, "bytes_written": new_bytes, "files_linked": len(section["linked"])}


def run(args: argparse.Namespace) -> None:
    import subprocess
    import sys

    real = np.load(CACHE / "sentences.npy")
    queries = np.load(CACHE / "queries.npy")
    vectors = grow(real, args.n)
    work = CACHE / f"n{args.n}"
    work.mkdir(parents=True, exist_ok=True)
    queries = queries[np.linspace(0, len(queries) - 1, min(args.queries, len(queries))).astype(int)]
    np.save(work / "queries.npy", queries)
    started = time.perf_counter()
    truth = ground_truth(vectors, queries, args.k)
    print(f"{len(real)} real sentence vectors grown to {args.n}; {len(queries)} BioASQ queries; exact ground truth "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    np.save(work / "truth.npy", truth)
    results = {"n": args.n, "real": len(real), "queries": len(queries), "types": {}, "args": vars(args),
               "load_before": os.getloadavg()}
    for kind in args.types.split(","):
        folder = work / (f"{kind}-{args.tag}" if args.tag else kind)
        seconds = build(kind, vectors, folder, args)
        sweep = args.sweep or json.dumps(SWEEPS.get(kind, []))
        out = subprocess.run([sys.executable, __file__, "probe", str(folder), str(work / "queries.npy"),
                              str(work / "truth.npy"), "--k", str(args.k), "--sweep", sweep],
                             capture_output=True, text=True, check=True)
        row = {"build_s": seconds, "disk_mb": folder_bytes(folder) / 1e6,
               "index": json.loads((folder / "index.json").read_text())["factory"], **json.loads(out.stdout)}
        row["update"] = update(folder, vectors.shape[1], args.update_records, args.chunks_per_record, 0.1)
        results["types"][kind] = row
        print(kind, json.dumps(row), flush=True)
    results["load_after"] = os.getloadavg()
    (work / (f"results-{args.tag}.json" if args.tag else "results.json")).write_text(json.dumps(results, indent=2))


def big(args: argparse.Namespace) -> None:
    """IVF-PQ at a size whose vectors do not fit in memory twice (10M: 15.4 GB): the grown vectors are streamed into
    one shard (the exact-vector store reserved up front, so it never reallocates) and into a running exact top-k,
    then probed like ``run``'s shards. The vectors are ``grow``'s; the training sample comes from the first 1M."""
    import subprocess
    import sys

    import faiss

    from ingest.ann import family, resolve_spec
    from ingest.ann.base import IndexSpec
    from ingest.ann.ivf import train_sample
    from ingest.ann.sharded import DELETED_FILE, SHARDS_DIR

    real = np.load(CACHE / "sentences.npy")
    queries = np.load(CACHE / "queries.npy")
    queries = queries[np.linspace(0, len(queries) - 1, min(args.queries, len(queries))).astype(int)]
    work = CACHE / f"n{args.n}"
    folder = work / (f"ivfpq-{args.tag}" if args.tag else "ivfpq")
    (folder / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    np.save(work / "queries.npy", queries)
    spec = resolve_spec(IndexSpec("ivfpq", nlist=args.nlist, nprobe=args.nprobe, refine=args.refine, pq_m=args.pq_m,
                                  pq_bits=args.pq_bits), args.n, 200_000)
    fam = family("ivfpq")
    dimension = real.shape[1]
    started = time.perf_counter()
    sample = train_sample(grow(real, min(args.n, 1_000_000)), spec)
    index = fam.empty(spec, dimension, sample)
    del sample
    trained_s = time.perf_counter() - started
    print(f"{fam.factory_string(spec)} trained in {trained_s:.0f} s", flush=True)
    exact = faiss.downcast_index(index.refine_index)
    exact.codes.resize(args.n * exact.code_size)  # reserve: a doubling std::vector would need 1.5-2x the memory
    exact.codes.resize(0)
    best_scores = np.full((len(queries), args.k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), args.k), -1, dtype=np.int64)
    add_s = truth_s = 0.0
    for start, rows in grown_blocks(real, args.n):
        t = time.perf_counter()
        index.add(rows)
        add_s += time.perf_counter() - t
        t = time.perf_counter()
        scores = queries @ rows.T
        top = np.argpartition(-scores, args.k - 1, axis=1)[:, : args.k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-merged_scores, axis=1, kind="stable")[:, : args.k]
        best_scores = np.take_along_axis(merged_scores, keep, axis=1)
        best_ids = np.take_along_axis(merged_ids, keep, axis=1)
        truth_s += time.perf_counter() - t
        if (start // 65_536) % 32 == 0:
            print(f"{start + len(rows):,} vectors added ({add_s:.0f} s adding, {truth_s:.0f} s exact search)", flush=True)
    t = time.perf_counter()
    faiss.write_index(index, str(folder / SHARDS_DIR / "s0001.faiss"))
    np.save(folder / SHARDS_DIR / "s0001.ids.npy", np.arange(args.n, dtype=np.int64))
    np.save(folder / DELETED_FILE, np.zeros(0, dtype=np.int64))
    write_s = time.perf_counter() - t
    del index, exact
    np.save(work / "truth.npy", best_ids)
    section = {"type": "ivfpq", "requested": "ivfpq", "factory": fam.factory_string(spec), "spec": spec.to_dict(),
               "dimension": dimension, "flat_below": 200_000, "shards": [{"name": "s0001", "count": args.n}],
               "deleted": 0, "vectors": args.n}
    (folder / "index.json").write_text(json.dumps(section))
    sweep = args.sweep or "[]"
    out = subprocess.run([sys.executable, __file__, "probe", str(folder), str(work / "queries.npy"),
                          str(work / "truth.npy"), "--k", str(args.k), "--sweep", sweep],
                         capture_output=True, text=True, check=True)
    row = {"n": args.n, "factory": section["factory"], "train_s": trained_s, "add_s": add_s, "write_s": write_s,
           "exact_search_s": truth_s, "disk_mb": folder_bytes(folder) / 1e6, **json.loads(out.stdout),
           "load": os.getloadavg()}
    (work / (f"results-{args.tag}.json" if args.tag else "results.json")).write_text(json.dumps(row, indent=2))
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--seconds", type=float, default=600)
    r = sub.add_parser("run")
    b = sub.add_parser("big", help="IVF-PQ only, streamed: sizes whose vectors do not fit in memory twice")
    for parser_, n, queries, nprobe, refine in ((r, 1_000_000, 1494, 32, 4), (b, 10_000_000, 600, 256, 128)):
        parser_.add_argument("--n", type=int, default=n)
        parser_.add_argument("--k", type=int, default=10)
        parser_.add_argument("--queries", type=int, default=queries, help="evenly spaced BioASQ questions used")
        parser_.add_argument("--nlist", type=int, default=0)
        parser_.add_argument("--nprobe", type=int, default=nprobe)
        parser_.add_argument("--refine", type=int, default=refine)
        parser_.add_argument("--pq-m", type=int, default=96)
        parser_.add_argument("--pq-bits", type=int, default=4, help="4: FAISS's fast-scan PQ")
        parser_.add_argument("--tag", default="", help="suffix for the index folders and results file (keeps "
                             "earlier runs)")
        parser_.add_argument("--sweep", default="", help="JSON list of search overrides probed after the defaults "
                             "(default: a per-type list)")
    r.add_argument("--types", default="flat,ivfflat,ivfpq,hnsw")
    r.add_argument("--train-size", type=int, default=0)
    r.add_argument("--ef-search", type=int, default=96)
    r.add_argument("--ef-construction", type=int, default=80)
    r.add_argument("--hnsw-m", type=int, default=32)
    r.add_argument("--update-records", type=int, default=1000)
    r.add_argument("--chunks-per-record", type=float, default=2.0)
    p = sub.add_parser("probe")
    p.add_argument("folder", type=Path)
    p.add_argument("queries", type=Path)
    p.add_argument("truth", type=Path)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--sweep", default="[]")
    args = parser.parse_args()
    if args.cmd == "embed":
        embed(args.seconds)
    elif args.cmd == "run":
        run(args)
    elif args.cmd == "big":
        big(args)
    else:
        print(json.dumps(probe(args.folder, args.queries, args.truth, args.k, json.loads(args.sweep))))


if __name__ == "__main__":
    main()

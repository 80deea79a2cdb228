"""Ray builds with 1, 2 and 4 workers against the single-process build, side by side in one run, with each stage's
rate and the driver's share; and the driver's serial work at 500k records.

    python bench/bench_ray.py run [--n 1000] [--files 8] [--workers 1,2,4] [--sizes 250,500]
    python bench/bench_ray.py driver      # needs the 16-shard store of bench/bench_bm25_shards.py build

``run``: the first N abstracts of the shared corpus (``../shared/data/corpus/abstracts.jsonl.gz``), split into
``--files`` JSONL files (as a baseline is split into files), are built into fresh indexes: once in one process, then
on a loopback-only Ray head started for each worker count (``--num-cpus`` W, W embedding actors) and stopped by its
process ids afterwards. Then the driver's share as the build grows: the same at ``--sizes`` records with 2 workers.
Reported per build: wall time, records/s, the cluster's stages (parse and chunk into store shards, embed: per core
from the tasks' own timings, and the pipeline's wall time), and the driver's stages (resolve PMIDs across shards, add
the vectors, digest and counts, write the vectors, verify, publish), with the driver's share of the wall time (all
but the cluster's pipeline: loading, resolving, writing, checking).

``driver``: what the driver does after the cluster, at 489,147 records and 1M chunks (the 16 store shards of
``bench_bm25_shards.py build`` opened as new shards): read every shard's PMIDs and resolve them, digest and count the
rows, add and write 1M vectors (random, 384-d) and hash the file, as ``ingest`` does for a build of that size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Ray reads this when it is imported: the driver binds loopback too, like the head started below.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from ingest.build import FileSource, ingest  # noqa: E402
from pubmed_rag.logs import configure  # noqa: E402
from pubmed_rag.paths import SHARED_DATA  # noqa: E402
from pubmed_rag.settings import Settings  # noqa: E402

CORPUS = SHARED_DATA / "corpus" / "abstracts.jsonl.gz"
RAY = Path(sys.executable).with_name("ray")
DRIVER_STAGES = ("resolve", "vectors", "digest", "save", "verify", "publish")


def start_head(cpus: int, temp: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    head = subprocess.Popen([str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port",
                             str(port), "--num-cpus", str(cpus), "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", str(temp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return f"127.0.0.1:{port}", head
        if head.poll() is not None or time.time() > deadline:
            raise RuntimeError("the Ray head did not start")
        time.sleep(0.5)


def stop_head(head: subprocess.Popen) -> None:
    """Stop the head and what it started, by process id (no other Ray cluster is touched)."""
    import ray

    from tests.ingest.test_distributed import stop_tree

    ray.shutdown()
    stop_tree(head)


def write_files(folder: Path, n: int, files: int) -> list[Path]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as src:
        lines = [next(src) for _ in range(n)]
    per = -(-n // files)
    paths = []
    for i in range(files):
        path = folder / f"part{i:02d}.jsonl"
        path.write_text("".join(lines[i * per:(i + 1) * per]), encoding="utf-8")
        paths.append(path)
    return paths


def build(paths: list[Path], root: Path, ray: str, workers: int) -> dict:
    settings = Settings.load({"paths.index_dir": str(root), "ingest.ray": ray, "ingest.ray_actors": workers,
                              "embedding.backend": "torch"})
    started = time.perf_counter()
    summary = ingest([FileSource(p) for p in paths], "bench", settings)
    seconds = time.perf_counter() - started
    stages = summary.stages
    cluster = stages.get("cluster", 0.0)
    return {"seconds": seconds, "records": summary.added, "chunks": summary.chunks_embedded, **stages,
            "driver": seconds - cluster if ray else 0.0}


def row(name: str, r: dict, base: dict) -> str:
    """A table row; the speed-up against the single process only for builds of the same records."""
    ratio = f"{base['seconds'] / r['seconds']:.2f}x" if r["records"] == base["records"] else "-"
    driver = " / ".join(f"{r.get(k, 0):.2f}" for k in DRIVER_STAGES)
    if "cluster" not in r:
        return (f"| {name} | {r['records']} | {r['seconds']:.1f} s | {r['records'] / r['seconds']:.1f} | - | - | - "
                f"| {driver} | - | {ratio} |")
    return (f"| {name} | {r['records']} | {r['seconds']:.1f} s | {r['records'] / r['seconds']:.1f} "
            f"| {r['records'] / r['parse_cpu']:.0f} | {r['chunks'] / r['embed_cpu']:.1f} | {r['cluster']:.1f} s "
            f"| {driver} | {100 * r['driver'] / r['seconds']:.1f}% | {ratio} |")


def run(n: int, files: int, workers: list[int], sizes: list[int]) -> None:
    configure(verbose=False)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), n, files)
        rows["single process"] = build(paths, Path(tmp) / "single", "", 0)
        for w in workers:
            address, head = start_head(w, Path(tmp) / f"ray{w}")
            try:
                rows[f"Ray, {w} worker(s)"] = build(paths, Path(tmp) / f"w{w}", address, w)
                for size in sizes:
                    part = Path(tmp) / f"size{size}"
                    part.mkdir(exist_ok=True)
                    if w == 2:
                        rows[f"Ray, 2 workers, {size} records"] = build(write_files(part, size, files),
                                                                         Path(tmp) / f"s{size}", address, 2)
            finally:
                stop_head(head)
    base = rows["single process"]
    print(f"{n} abstracts in {files} files; load average {os.getloadavg()[0]:.1f}")
    print("| build | records | wall | records/s | parse: records/s per core | embed: chunks/s per core | cluster "
          f"wall | driver: {' / '.join(DRIVER_STAGES)} (s) | driver share | vs single |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(row(name, r, base))
    print(json.dumps(rows, indent=1))


def driver() -> None:
    """The driver's serial work at 500k records, on the 16 shards of bench_bm25_shards.py (copied, so they stay)."""
    from ingest.ann import IndexSpec
    from ingest.ann.sharded import ShardedIndex
    from ingest.distributed import resolve
    from ingest.sharded_store import ShardedStore
    from ingest.store import RecordStore
    from pubmed_rag.checksums import sha256_file

    source = ROOT / ".cache" / "bm25" / "16"
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as tmp:
        names = sorted(p.name for p in source.glob("store-*.sqlite"))
        for name in names:
            shutil.copy(source / name, Path(tmp) / name)
        times: dict[str, float] = {}
        started = time.perf_counter()
        stores = [RecordStore(Path(tmp) / name, version=1) for name in names]
        counts = [dict.fromkeys(("added", "replaced", "deleted", "unchanged", "skipped", "title_only"), 0)
                  for _ in stores]
        resolve([], stores, counts)
        times["resolve (read every shard's PMIDs)"] = time.perf_counter() - started
        store = ShardedStore(stores)
        started = time.perf_counter()
        digest, counted = store.digest(), store.counts()
        times["digest and counts"] = time.perf_counter() - started
        ids = np.array(store.all_chunk_ids(), dtype=np.int64)
        store.close()
        records = counted["records"]
        started = time.perf_counter()
        vectors = ShardedIndex.create(384, IndexSpec("flat"))
        rng = np.random.default_rng(0)
        for lo in range(0, len(ids), 100_000):
            part = rng.standard_normal((min(100_000, len(ids) - lo), 384), dtype=np.float32)
            vectors.add(ids[lo:lo + 100_000], part / np.linalg.norm(part, axis=1, keepdims=True))
        times["add vectors"] = time.perf_counter() - started
        started = time.perf_counter()
        folder = Path(tmp) / "version"
        section = vectors.save(folder)
        times["write vectors"] = time.perf_counter() - started
        started = time.perf_counter()
        for name in section["files"]:
            sha256_file(folder / name)
        times["hash files"] = time.perf_counter() - started
    total = sum(times.values())
    print(f"driver at {records} records, {len(ids)} chunks, 16 store shards (digest {digest[:12]}...); load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| step | seconds | records/s |")
    print("|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.1f} | {records / seconds:,.0f} |")
    print(f"| all | {total:.1f} | {records / total:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--n", type=int, default=1000, help="abstracts (the first N of the shared corpus)")
    r.add_argument("--files", type=int, default=8)
    r.add_argument("--workers", default="1,2,4")
    r.add_argument("--sizes", default="250,500", help="smaller builds with 2 workers (the driver's share as it grows)")
    sub.add_parser("driver")
    args = parser.parse_args()
    if args.command == "run":
        run(args.n, args.files, [int(w) for w in args.workers.split(",")],
            [int(s) for s in args.sizes.split(",") if s])
    else:
        driver()


if __name__ == "__main__":
    main()

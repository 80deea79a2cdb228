"""Single-process build vs Ray builds with one and two embedding actors, side by side in one run.

    python bench/bench_ray.py [--n 2000] [--address ADDRESS]

The same first N abstracts of the shared corpus (``../shared/data/corpus/abstracts.jsonl.gz``) are built three times
into fresh indexes. Without ``--address`` a loopback-only Ray head with 2 CPUs is started for the run and stopped
afterwards. Reported: wall time, records/s, chunks/s, and the startup overhead (seconds from the start of the build to
the first embedded chunk). On a 2-core machine the point is correctness and overhead, not speed-up.
"""

from __future__ import annotations

import argparse
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.build import FileSource, ingest  # noqa: E402
from pubmed_rag.logs import configure  # noqa: E402
from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import Settings  # noqa: E402

CORPUS = SHARED_DATA / "corpus" / "abstracts.jsonl.gz"
RAY = Path(sys.executable).with_name("ray")


def start_head() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the head binds loopback only
    subprocess.run([str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus",
                    "2", "--include-dashboard", "false", "--disable-usage-stats"], check=True, capture_output=True)
    return f"127.0.0.1:{port}"


def build(path: Path, root: Path, ray: str, actors: int) -> dict:
    settings = Settings.load({"paths.index_dir": str(root), "ingest.ray": ray, "ingest.ray_actors": actors,
                              "embedding.backend": "torch"})
    first: list[float] = []

    def progress(stage: str, advance: int, total: int | None = None) -> None:
        if stage == "embed" and advance and not first:
            first.append(time.perf_counter())

    started = time.perf_counter()
    summary = ingest([FileSource(path)], "bench", settings, progress=progress)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": summary.added, "chunks": summary.chunks_embedded,
            "startup": (first[0] - started) if first else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="abstracts (the first N of the shared corpus)")
    parser.add_argument("--address", help="an existing Ray cluster (default: a loopback head started here)")
    args = parser.parse_args()
    configure(verbose=False)
    started_head = args.address is None
    address = args.address or start_head()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "corpus.jsonl"
            with gzip.open(CORPUS, "rt", encoding="utf-8") as src:
                data.write_text("".join(next(src) for _ in range(args.n)), encoding="utf-8")
            rows = {"single process": build(data, Path(tmp) / "a", "", 0),
                    "Ray, 1 embedding actor": build(data, Path(tmp) / "b", address, 1),
                    "Ray, 2 embedding actors": build(data, Path(tmp) / "c", address, 2)}
    finally:
        if started_head:
            subprocess.run([str(RAY), "stop", "--force"], capture_output=True)
    base = rows["single process"]["seconds"]
    print(f"{args.n} abstracts; load average {os.getloadavg()[0]:.1f}")
    print("| build | wall | records/s | chunks/s | startup (to first chunk) | vs single |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['seconds']:.1f} s | {r['records'] / r['seconds']:.1f} | {r['chunks'] / r['seconds']:.1f} "
              f"| {r['startup']:.1f} s | {base / r['seconds']:.2f}x |")


if __name__ == "__main__":
    main()

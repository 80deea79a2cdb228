"""Ingest throughput: parsing records/s, embedding chunks/s, and index size per 1,000 records.

    python bench/bench_ingest.py [--corpus ../shared/data/corpus/abstracts.jsonl.gz] [--n 2000]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

from ingest.build import RecordsSource, ingest
from ingest.embedder import load_embedder
from ingest.jsonl import record_from_json
from ingest.pubmed_xml import parse_xml_file
from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import Settings

ROOT = Path(__file__).parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    shared = SHARED_DATA
    parser.add_argument("--corpus", type=Path, default=shared / "corpus" / "abstracts.jsonl.gz")
    parser.add_argument("--xml", type=Path, default=ROOT / "tests" / "fixtures" / "pubmed_xml" / "medline16n0902.xml.gz")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    with gzip.open(args.corpus, "rt", encoding="utf-8") as handle:
        lines = [line for _, line in zip(range(args.n), handle, strict=False)]
    t = time.perf_counter()
    records = [record_from_json(line, "bench", str(args.corpus)) for line in lines]
    jsonl_rate = len(records) / (time.perf_counter() - t)
    t = time.perf_counter()
    xml_n = sum(1 for _ in parse_xml_file(args.xml))
    xml_rate = xml_n / (time.perf_counter() - t)

    embedder = load_embedder("all-MiniLM-L6-v2", 256)
    embedder.encode(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load({"paths.index_dir": tmp})
        t = time.perf_counter()
        summary = ingest([RecordsSource("bench", records)], "bench", settings, embedder=embedder)
        seconds = time.perf_counter() - t
        folder = next((Path(tmp) / "bench" / "versions").glob("v*"))
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    print(f"records: {len(records)} from {args.corpus.name}")
    print(f"parse JSONL: {jsonl_rate:,.0f} records/s; parse PubMed XML ({args.xml.name}): {xml_rate:,.0f} items/s")
    print(f"build: {summary.chunks_embedded} chunks in {seconds:.1f} s = {summary.chunks_embedded / seconds:.1f} "
          f"chunks/s ({len(records) / seconds:.1f} records/s, everything included)")
    print(f"index size: {size_mb:.2f} MB = {size_mb / len(records) * 1000:.2f} MB per 1,000 records")


if __name__ == "__main__":
    main()

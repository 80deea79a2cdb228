"""The record store at 1M records: what a 1,000-record update costs, and BM25 (FTS5) latency.

    python bench/bench_store.py build --records 1000000      # once: a 1M-record index under .cache/store/
    python bench/bench_store.py update                        # a real 1,000-record update through ingest()
    python bench/bench_store.py bm25 --queries 300            # FTS5 latency of the BioASQ questions

Records: the 10,609 real abstracts of ../shared/data/corpus/abstracts.jsonl.gz, cycled: record i is abstract
``i mod 10,609`` under PMID ``100000000 + i`` (outside PubMed's range, so no real record collides), version 1,
chunked with the project's own chunker (each distinct abstract chunked once, its chunks reused by every copy). So
every word's document frequency is that of the real corpus and the FTS5 posting lists have the length they would
have at 1M records of this mix. Vectors: one per chunk, the scale benchmark's real sentence vectors cycled with
the same perturbation (bench/bench_scale.py ``grow``); the update does not read them, and searching them is
measured there. The index is a flat, one-shard version 1 written directly (bulk SQL, one transaction), with the
manifest ``ingest`` would write, and verified once.

``update`` applies 1,000 new records (the 604 of the real 2016 MEDLINE baseline file medline16n0902, then corpus
abstracts under new PMIDs) plus 100 corrected versions of indexed records through ``ingest()``, as a librarian's
update would, timing the embedding apart from everything else; then it times what the previous design did on top (a
full copy of the store and its checksum) on the same files, and a full ``index verify``. ``bm25`` runs the
retriever's own FTS5 OR-query (``rag.retrieve.fts_query``) of BioASQ 7B-9B question bodies through
``RecordStore.bm25`` (limit 300, what a hybrid search asks for).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from pubmed_rag.paths import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = SHARED_DATA
CACHE = ROOT / ".cache" / "store"
NAME = "big"
BASE_PMID = 100_000_000


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def settings_for(folder: Path):
    from pubmed_rag.settings import Settings

    return Settings.load({"paths.index_dir": str(folder), "index.type": "flat"})


def build(records: int) -> None:
    """Write version 1 of index ``big`` with ``records`` records straight into the shared store's schema."""
    from bench_scale import grow

    from ingest.ann.sharded import ShardedIndex
    from ingest.build import index_spec
    from ingest.chunking import Chunker
    from ingest.embedder import load_embedder
    from ingest.index import IndexLayout
    from ingest.jsonl import record_from_json
    from ingest.manifest import STORE_FILE, verify_folder, write_manifest
    from ingest.store import RECORD_COLUMNS, RecordStore, now
    from pubmed_rag.records import Record

    shutil.rmtree(CACHE, ignore_errors=True)
    settings = settings_for(CACHE)
    layout = IndexLayout(CACHE, NAME)
    layout.root.mkdir(parents=True)
    embedder = load_embedder(settings.embedding.model, settings.embedding.max_tokens, "auto", settings.paths.cache_dir)
    chunker = Chunker(embedder, settings.embedding.chunk_overlap)
    started = time.perf_counter()
    with gzip.open(SHARED / "corpus" / "abstracts.jsonl.gz", "rt", encoding="utf-8") as handle:
        corpus = [r for i, line in enumerate(handle) if isinstance(r := record_from_json(line, f"corpus:{i}", "corpus"),
                                                                      Record)]
    pieces = [chunker.split(r) for r in corpus]
    print(f"{len(corpus)} real abstracts chunked in {time.perf_counter() - started:.0f} s "
          f"({sum(map(len, pieces)) / len(corpus):.2f} chunks each)", flush=True)

    store = RecordStore(layout.root / STORE_FILE, version=1)
    conn = store.conn
    conn.execute("PRAGMA synchronous = OFF")
    started = time.perf_counter()
    chunk_id = 0
    for lo in range(0, records, 50_000):
        rows, chunk_rows = [], []
        for i in range(lo, min(records, lo + 50_000)):
            src = corpus[i % len(corpus)]
            rec = Record.from_dict({**src.to_dict(), "pmid": str(BASE_PMID + i), "version": 1})
            rows.append((rec.pmid, rec.version, rec.title, rec.abstract, json.dumps(rec.to_dict(), ensure_ascii=False),
                         rec.year, int(rec.retracted), int(rec.is_retraction_notice), int(rec.title_only),
                         rec.content_hash(), rec.source, now(), 1))
            for text, start, end in pieces[i % len(corpus)]:
                chunk_id += 1
                chunk_rows.append((chunk_id, rec.pmid, text, start, end, 1))
        conn.executemany(f"INSERT INTO records ({RECORD_COLUMNS}, valid_from) VALUES ({','.join('?' * 13)})", rows)
        conn.executemany("INSERT INTO chunks (chunk_id, pmid, text, start, end, valid_from) VALUES (?,?,?,?,?,?)",
                         chunk_rows)
        conn.executemany("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", [(c[0], c[2]) for c in chunk_rows])
        conn.commit()
        print(f"{min(records, lo + 50_000)} records, {chunk_id} chunks in {time.perf_counter() - started:.0f} s",
              flush=True)
    prov = store.start_provenance("bench", f"{records} corpus abstracts, cycled")
    store.finish_provenance(prov, {"added": records, "replaced": 0, "deleted": 0, "unchanged": 0, "skipped": 0})
    store.commit()
    store_seconds = time.perf_counter() - started
    digest_started = time.perf_counter()
    digest = store.digest()
    digest_seconds = time.perf_counter() - digest_started
    counts, provenance = store.counts(), store.provenance()
    store.close()

    real = np.load(ROOT / ".cache" / "scale" / "sentences.npy")
    staging = layout.new_version()
    started = time.perf_counter()
    vectors = ShardedIndex.create(embedder.dimension, index_spec(settings.index))
    vectors.add(np.arange(1, chunk_id + 1, dtype=np.int64), grow(real, chunk_id))
    section = vectors.save(staging)
    vector_seconds = time.perf_counter() - started
    write_manifest(staging, {
        "name": NAME, "index": {k: v for k, v in section.items() if k not in ("files", "linked")},
        "store": {"shared": True, "file": STORE_FILE, "version": 1, "digest": digest, "changed": {}},
        "embedding": {"model": settings.embedding.model, "dimension": embedder.dimension,
                      "max_tokens": settings.embedding.max_tokens, "chunk_overlap": settings.embedding.chunk_overlap},
        "counts": counts,
        "sources": [{k: p[k] for k in ("kind", "name", "at", "added", "replaced", "deleted", "unchanged", "skipped")}
                    for p in provenance],
        "created": now(), "updated": now(),
    }, section["files"])
    started = time.perf_counter()
    report = verify_folder(staging)
    verify_seconds = time.perf_counter() - started
    assert report.ok, report.problems
    layout.publish(staging, 1)
    info = {"records": records, "chunks": chunk_id, "store_bytes": (layout.root / STORE_FILE).stat().st_size,
            "store_seconds": round(store_seconds, 1), "digest_seconds": round(digest_seconds, 1),
            "vector_seconds": round(vector_seconds, 1), "verify_seconds": round(verify_seconds, 1),
            "load_after": load_avg()}
    (CACHE / "build.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2))


class TimedEmbedder:
    """The real embedder, with the seconds spent in ``encode`` added up."""

    def __init__(self, inner) -> None:
        self.inner, self.seconds, self.texts = inner, 0.0, 0

    def encode(self, texts, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.inner.encode(texts, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def update(n_new: int, n_corrected: int) -> None:
    from ingest.build import RecordsSource, ingest
    from ingest.chunking import Chunker
    from ingest.embedder import load_embedder
    from ingest.index import IndexLayout, LoadedIndex, verify_index
    from ingest.jsonl import record_from_json
    from ingest.manifest import STORE_FILE
    from ingest.pubmed_xml import parse_xml_file
    from ingest.store import RecordStore
    from pubmed_rag.checksums import sha256_file as sha256
    from pubmed_rag.records import Record

    settings = settings_for(CACHE)
    layout = IndexLayout(CACHE, NAME)
    before = layout.current()
    new = [r for r in parse_xml_file(ROOT / "tests" / "fixtures" / "pubmed_xml" / "medline16n0902.xml.gz")
           if isinstance(r, Record)][:n_new]
    served = LoadedIndex(CACHE, NAME)
    with gzip.open(SHARED / "corpus" / "abstracts.jsonl.gz", "rt", encoding="utf-8") as handle:
        for j, line in zip(range(n_new - len(new)), handle, strict=False):  # fill up with corpus abstracts
            new.append(record_from_json(line, f"corpus:{j}", "corpus"))
    # Fresh PMIDs above every indexed one, so that a repeated run adds records too.
    first = int(served.store.shards[0].reader().execute("SELECT MAX(CAST(pmid AS INTEGER)) FROM records").fetchone()[0]) + 1
    new = [Record.from_dict({**r.to_dict(), "pmid": str(first + j)}) for j, r in enumerate(new)]
    records = served.manifest["counts"]["records"]
    step = records // max(1, n_corrected)
    corrected = []
    for i in range(n_corrected):
        rec = served.store.get(str(BASE_PMID + i * step))
        corrected.append(Record.from_dict({**rec.to_dict(), "version": rec.version + 1,
                                           "title": rec.title + " (corrected)"}))
    served.store.close()
    embedder = TimedEmbedder(load_embedder(settings.embedding.model, settings.embedding.max_tokens,
                                           settings.embedding.backend, settings.paths.cache_dir))
    embedder.encode(["warm up"])
    embedder.seconds, embedder.texts = 0.0, 0
    # Any index this release adds to the store's schema is created now, once, not inside the timed update.
    RecordStore(layout.root / STORE_FILE, version=served.manifest["store"]["version"]).close()
    chunking = [0.0]
    split = Chunker.split

    def timed_split(self, record):
        started = time.perf_counter()
        try:
            return split(self, record)
        finally:
            chunking[0] += time.perf_counter() - started

    Chunker.split = timed_split
    load_before = load_avg()
    started = time.perf_counter()
    summary = ingest([RecordsSource("medline16n0902 (first records)", new),
                      RecordsSource("corrections", corrected)], NAME, settings, embedder=embedder)
    total = time.perf_counter() - started
    after = layout.current()
    store = layout.root / STORE_FILE
    size = store.stat().st_size
    # What the previous design added on top: a full copy of the served store, then its checksum.
    started = time.perf_counter()
    shutil.copy2(store, CACHE / "copy.sqlite")
    copy_seconds = time.perf_counter() - started
    started = time.perf_counter()
    sha256(CACHE / "copy.sqlite")
    hash_seconds = time.perf_counter() - started
    (CACHE / "copy.sqlite").unlink()
    started = time.perf_counter()
    ok = verify_index(CACHE, NAME).ok
    verify_seconds = time.perf_counter() - started
    result = {
        "version": f"{before.name} -> {after.name}", "summary": summary.line(), "added": summary.added,
        "replaced": summary.replaced, "chunks_embedded": summary.chunks_embedded,
        "total_s": round(total, 2), "embed_s": round(embedder.seconds, 2), "chunking_s": round(chunking[0], 2),
        "other_s": round(total - embedder.seconds - chunking[0], 2),
        "store_bytes": size, "previous_design_copy_s": round(copy_seconds, 2),
        "previous_design_hash_s": round(hash_seconds, 2), "full_verify_s": round(verify_seconds, 1),
        "full_verify_ok": ok, "load_before": load_before, "load_after": load_avg(),
    }
    (CACHE / "update.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def bm25(queries: int, limit: int, max_dfs: list[float]) -> None:
    """BM25 latency of the BioASQ questions, unbounded and bounded (``retrieval.bm25_max_df``), interleaved
    question by question; the bounded runs include looking up the words' document frequencies (remembered per word
    by the store, as in a long-running app: the first questions pay for the common words)."""
    from bench_scale import bioasq_bodies

    from ingest.index import LoadedIndex
    from rag.retrieve import bounded_words, fts_query, query_words

    bodies = bioasq_bodies()
    bodies = [bodies[int(i)] for i in np.linspace(0, len(bodies) - 1, queries)]
    started = time.perf_counter()
    index = LoadedIndex(CACHE, NAME)
    open_seconds = time.perf_counter() - started
    store = index.store
    chunks = int(index.manifest["counts"]["chunks"])
    for body in bodies[:5]:  # warm-up: the FTS index's pages into the page cache
        store.bm25(fts_query(body), limit)
    variants = [1.0, *max_dfs]
    times: dict[float, list[float]] = {v: [] for v in variants}
    kept: dict[float, list[int]] = {v: [] for v in variants}
    load_before = load_avg()
    for i, body in enumerate(bodies):
        for v in variants[i % len(variants):] + variants[: i % len(variants)]:
            started = time.perf_counter()
            words = query_words(body)
            if v < 1 and len(words) > 2:
                words = bounded_words(words, store.document_frequencies(words), chunks, v)
            store.bm25(fts_query(words), limit)
            times[v].append((time.perf_counter() - started) * 1000)
            kept[v].append(len(words))
    frequencies = store.document_frequencies(sorted({w for body in bodies[:50] for w in query_words(body)}))
    result = {
        "records": index.manifest["counts"]["records"], "chunks": chunks, "queries": len(bodies), "limit": limit,
        "open_s": round(open_seconds, 2),
        "variants": {str(v): {"p50_ms": round(float(np.percentile(times[v], 50)), 1),
                              "p95_ms": round(float(np.percentile(times[v], 95)), 1),
                              "max_ms": round(max(times[v]), 1), "words_p50": float(np.median(kept[v]))}
                     for v in variants},
        "commonest_words": sorted(frequencies.items(), key=lambda kv: -kv[1])[:12],
        "load_before": load_before, "load_after": load_avg(),
    }
    (CACHE / f"bm25-{queries}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build").add_argument("--records", type=int, default=1_000_000)
    up = sub.add_parser("update")
    up.add_argument("--new", type=int, default=1000)
    up.add_argument("--corrected", type=int, default=100)
    bm = sub.add_parser("bm25")
    bm.add_argument("--queries", type=int, default=300)
    bm.add_argument("--limit", type=int, default=300)
    bm.add_argument("--max-df", default="0.1,0.05,0.02", help="bounded variants (retrieval.bm25_max_df)")
    args = parser.parse_args()
    if args.command == "build":
        build(args.records)
    elif args.command == "update":
        update(args.new, args.corrected)
    else:
        bm25(args.queries, args.limit, [float(v) for v in args.max_df.split(",")])


if __name__ == "__main__":
    main()

"""BM25 over a record store in 1, 4 and 16 shards at 1M chunks: latency of the fan-out with collection-wide statistics.

    python bench/bench_bm25_shards.py build --chunks 1000000   # once: the three layouts under .cache/bm25/
    python bench/bench_bm25_shards.py query --queries 300       # p50/p90 per layout, side by side in one run
    python bench/bench_bm25_shards.py quality                   # BioASQ retrieval: eval-bioasq in 1 and 4 shards

Records: the 10,609 real abstracts of ../shared/data/corpus/abstracts.jsonl.gz, cycled as in bench/bench_store.py
(record i is abstract ``i mod 10,609`` under PMID ``100000000 + i``, chunked with the project's chunker), until the
store holds the number of chunks asked for. The same records are written three times: one store, and split into 4 and
16 shards of consecutive PMIDs (as PubMed's files are). Queries: BioASQ 7B-9B question bodies through the retriever's
own word bounding and OR-query (``rag.retrieve``), limit 300, what a hybrid search asks for; the layouts are measured
interleaved, query by query, so load changes hit all of them alike.

``quality`` copies the BioASQ evaluation index (``indexes/eval-bioasq``, docs/evaluation.md) to a temporary folder,
splits the copy's record store into 4 shards (``pubmed-rag index reshard``: same rows, same vectors) and runs the
retrieval evaluation of all 1,497 BioASQ 7B-9B questions (recall@k, nDCG@10, MRR) on both, question by question.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pubmed_rag.paths import SHARED_DATA  # noqa: E402

CACHE = ROOT / ".cache" / "bm25"
BASE_PMID = 100_000_000
LAYOUTS = (1, 4, 16)


def build(chunks: int) -> None:
    from ingest.chunking import Chunker
    from ingest.embedder import load_embedder
    from ingest.jsonl import record_from_json
    from ingest.store import RECORD_COLUMNS, RecordStore, now
    from pubmed_rag.records import Record
    from pubmed_rag.settings import Settings

    settings = Settings.load()
    embedder = load_embedder(settings.embedding.model, settings.embedding.max_tokens, "torch", settings.paths.cache_dir)
    chunker = Chunker(embedder, settings.embedding.chunk_overlap)
    with gzip.open(SHARED_DATA / "corpus" / "abstracts.jsonl.gz", "rt", encoding="utf-8") as handle:
        corpus = [r for i, line in enumerate(handle)
                  if isinstance(r := record_from_json(line, f"corpus:{i}", "corpus"), Record)]
    pieces = [chunker.split(r) for r in corpus]
    rows, n = [], 0
    while n < chunks:
        i = len(rows)
        rows.append(i)
        n += len(pieces[i % len(corpus)])
    print(f"{len(rows)} records, {n} chunks", flush=True)
    shutil.rmtree(CACHE, ignore_errors=True)
    for layout in LAYOUTS:
        folder = CACHE / str(layout)
        folder.mkdir(parents=True)
        started = time.perf_counter()
        per = -(-len(rows) // layout)
        chunk_id = 0
        for shard in range(layout):
            store = RecordStore(folder / f"store-{shard:05d}.sqlite", version=1)
            conn = store.conn
            conn.execute("PRAGMA synchronous = OFF")
            for lo in range(shard * per, min(len(rows), (shard + 1) * per), 50_000):
                recs, chunk_rows = [], []
                for i in range(lo, min(len(rows), (shard + 1) * per, lo + 50_000)):
                    src = corpus[i % len(corpus)]
                    rec = Record.from_dict({**src.to_dict(), "pmid": str(BASE_PMID + i), "version": 1})
                    recs.append((rec.pmid, rec.version, rec.title, rec.abstract,
                                 json.dumps(rec.to_dict(), ensure_ascii=False), rec.year, int(rec.retracted),
                                 int(rec.is_retraction_notice), int(rec.title_only), rec.content_hash(), rec.source,
                                 now(), 1))
                    for text, start, end in pieces[i % len(corpus)]:
                        chunk_id += 1
                        chunk_rows.append((chunk_id, rec.pmid, text, start, end, 1))
                conn.executemany(f"INSERT INTO records ({RECORD_COLUMNS}, valid_from) VALUES ({','.join('?' * 13)})",
                                 recs)
                conn.executemany("INSERT INTO chunks (chunk_id, pmid, text, start, end, valid_from) "
                                 "VALUES (?,?,?,?,?,?)", chunk_rows)
                conn.executemany("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)",
                                 [(c[0], c[2]) for c in chunk_rows])
                conn.commit()
            conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")
            conn.commit()
            store.close()
        print(f"{layout} shard(s): {chunk_id} chunks in {time.perf_counter() - started:.0f} s", flush=True)
    (CACHE / "built.json").write_text(json.dumps({"records": len(rows), "chunks": n}))


def query(queries: int, limit: int) -> None:
    from bench_scale import bioasq_bodies

    from ingest.sharded_store import ShardedStore
    from ingest.store import RecordStore
    from rag.retrieve import bounded_words, fts_query, query_words

    built = json.loads((CACHE / "built.json").read_text())
    stores = {layout: ShardedStore([RecordStore(p, readonly=True, version=1)
                                    for p in sorted((CACHE / str(layout)).glob("store-*.sqlite"))])
              for layout in LAYOUTS}
    bodies = bioasq_bodies()[:queries]
    times: dict[int, list[float]] = {layout: [] for layout in LAYOUTS}
    same = full = 0
    for store in stores.values():  # warm the page cache and the connections
        for body in bodies[:20]:
            store.bm25(fts_query(body), limit)
    for body in bodies:
        words = query_words(body)
        tops = {}
        for layout, store in stores.items():
            started = time.perf_counter()
            w = words
            if len(w) > 2:
                w = bounded_words(w, store.document_frequencies(w), built["chunks"], 0.05)
            ids, _ = store.bm25(fts_query(w), limit) if w else ([], [])
            times[layout].append(time.perf_counter() - started)
            tops[layout] = list(ids)
        same += all(t[:10] == tops[1][:10] for t in tops.values())
        full += all(t == tops[1] for t in tops.values())
    print(f"{built['chunks']} chunks ({built['records']} records), {len(bodies)} BioASQ questions, limit {limit}; "
          f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print("| store shards | p50 | p90 | mean |")
    print("|---|---|---|---|")
    for layout, t in times.items():
        t = sorted(t)
        print(f"| {layout} | {1000 * statistics.median(t):.1f} ms | {1000 * t[int(0.9 * len(t))]:.1f} ms "
              f"| {1000 * statistics.fmean(t):.1f} ms |")
    print(f"same top 10 chunk ids in every layout: {same}/{len(bodies)}; the same {limit}: {full}/{len(bodies)}")


def quality(shards: int, retrievers: list[str]) -> None:
    import tempfile

    from ingest.reshard import reshard
    from pubmed_rag.settings import Settings
    from rag.evaluation import bioasq_questions, evaluate_retrieval, load_bioasq
    from rag.pipeline import Asker

    source = ROOT / "indexes" / "eval-bioasq"
    questions = bioasq_questions(load_bioasq(sorted((SHARED_DATA / "bioasq").glob("Task*/*_golden.json"))))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(source, Path(tmp) / "eval-bioasq")
        settings = Settings.load({"paths.index_dir": tmp})
        one = Asker(settings, index="eval-bioasq")
        print(reshard("eval-bioasq", shards, settings).line())
        many = Asker(settings, index="eval-bioasq", embedder=one.embedder)
        print(f"{len(questions)} BioASQ questions; store shards: {len(one.index.store.shards)} vs "
              f"{len(many.index.store.shards)}")
        print("| retriever | store shards | recall@10 | recall@20 | nDCG@10 | MRR | ms/query |")
        print("|---|---|---|---|---|---|---|")
        for mode in retrievers:
            for asker in (one, many):
                started = time.perf_counter()
                m = evaluate_retrieval(questions, lambda q, a=asker, mode=mode: [
                    h.pmid for h in a.retriever.rank(q, 20, retriever=mode)])
                ms = (time.perf_counter() - started) / len(questions) * 1000
                print(f"| {mode} | {len(asker.index.store.shards)} | {m['recall@10']:.4f} | {m['recall@20']:.4f} "
                      f"| {m['ndcg@10']:.4f} | {m['mrr']:.4f} | {ms:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--chunks", type=int, default=1_000_000)
    q = sub.add_parser("query")
    q.add_argument("--queries", type=int, default=300)
    q.add_argument("--limit", type=int, default=300)
    v = sub.add_parser("quality")
    v.add_argument("--shards", type=int, default=4)
    v.add_argument("--retrievers", default="hybrid,bm25")
    args = parser.parse_args()
    if args.command == "build":
        build(args.chunks)
    elif args.command == "quality":
        quality(args.shards, args.retrievers.split(","))
    else:
        query(args.queries, args.limit)


if __name__ == "__main__":
    main()

"""Reliability figures for docs/reliability.md: load (concurrent callers of one shared ``Asker``) and soak (index
updates while readers query).

Load: ``--questions`` questions (BioASQ golden questions from ../shared/data, evenly spaced, repeated in order when
there are fewer) answered in full (evidence, findings, checked bottom line) serially, then by ``--callers`` threads
at once through the same ``Asker``, as the app's sessions share it. Reports errors, whether every concurrent answer is
identical to its serial one (everything but timings), throughput and latency of each run, and resident memory after
loading, after the serial run and after each of ``--rounds`` concurrent runs of the same questions.

Soak: ``--base`` abstracts of the shared corpus (else the sample's) built into a scratch index, then ``--updates``
updates (10 real abstracts added and 2 records deleted each) while ``--readers`` threads open the served version and
check it (store rows against the manifest's digest, counts, every vector hit resolving to a stored record) and one
reader holds the first version open throughout. Reports versions published, reader checks, inconsistencies and the
held version's state at the end.

    python bench/bench_load.py [--index eval-bioasq] [--questions 200] [--callers 8] [--rounds 2] [--updates 10]
        [--base 1000] [--readers 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from ingest.build import RecordsSource, ingest
from ingest.embedder import load_embedder
from ingest.index import LoadedIndex
from ingest.jsonl import parse_jsonl_file
from pubmed_rag.paths import ROOT, SHARED_DATA
from pubmed_rag.records import Deletion, Record
from pubmed_rag.settings import Settings
from rag.evaluation import bioasq_answer_questions
from rag.pipeline import Asker

QUERY = "asthma exacerbations inhaled corticosteroid"


def rss_mib() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def questions(n: int) -> list[str]:
    files = sorted((SHARED_DATA / "bioasq").glob("Task*/*_golden.json"))
    if files:
        pool = [q["body"] for q in bioasq_answer_questions(files, ("yesno", "factoid", "list", "summary"))]
        pool = [pool[i * len(pool) // n] for i in range(min(n, len(pool)))]
    else:
        pool = [q["question"] for q in json.loads((ROOT / "tests/fixtures/pubmedqa_questions.json").read_text())]
    return [pool[i % len(pool)] for i in range(n)]


def load(args: argparse.Namespace) -> None:
    settings = Settings.load()
    asker = Asker(settings, index=args.index)
    qs = questions(args.questions)
    asker.ask(qs[0])  # models loaded and warm
    loaded = rss_mib()

    def timed(question: str) -> tuple[dict, float]:
        t = time.perf_counter()
        answer = asker.ask(question)
        return answer.model_dump(exclude={"timings"}), time.perf_counter() - t

    started = time.perf_counter()
    serial = [timed(q) for q in qs]
    serial_wall = time.perf_counter() - started
    after_serial = rss_mib()
    errors, rounds = 0, []
    for _ in range(args.rounds):  # the same questions again: memory that grew with every round would show here
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.callers) as pool:
            futures = [pool.submit(timed, q) for q in qs]
            answers = []
            for future in futures:
                try:
                    answers.append(future.result())
                except Exception:  # noqa: BLE001 - counted
                    errors += 1
                    answers.append(({}, float("nan")))
        rounds.append((answers, time.perf_counter() - started, rss_mib()))
    same = [sum(a == b for (a, _), (b, _) in zip(serial, answers, strict=True)) for answers, _, _ in rounds]
    shown = sum(bool(a["bottom_line"]) for a, _ in serial)
    print(f"## Load: index {args.index}, {len(qs)} questions ({len(set(qs))} distinct), {args.callers} callers, "
          f"{os.cpu_count()} CPUs")
    print(f"errors {errors}; concurrent answers identical to serial: {', '.join(f'{n}/{len(qs)}' for n in same)} "
          f"(per round); bottom line shown {shown}/{len(qs)}")
    print("| run | wall | answers/s | latency p50 | p90 | resident memory after |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| loaded, one answer to warm up | | | | | {loaded:.0f} MiB |")
    runs = [("serial", serial, serial_wall, after_serial)] + [
        (f"{args.callers} callers, round {n + 1}", answers, wall, rss) for n, (answers, wall, rss) in enumerate(rounds)]
    for name, rows, wall, rss in runs:
        latency = [t for _, t in rows if t == t]
        print(f"| {name} | {wall:.0f} s | {len(rows) / wall:.2f} | {statistics.median(latency):.2f} s | "
              f"{pct(latency, 0.9):.2f} s | {rss:.0f} MiB |")
    print(f"verifier caches: {len(asker.scorer._texts)} abstracts ({asker.scorer._texts.nbytes / 2**20:.1f} MiB), "
          f"{len(asker.scorer._pairs)} pairs, {len(asker.scorer._claims)} claims; bound "
          f"{settings.verify.cache_mb:.0f} MiB")


def soak(args: argparse.Namespace) -> None:
    settings = Settings.load()
    embedder = load_embedder(settings.embedding.model, settings.embedding.max_tokens)
    corpus = SHARED_DATA / "corpus" / "abstracts.jsonl.gz"
    corpus = corpus if corpus.is_file() else ROOT / "data" / "sample" / "abstracts.jsonl.gz"
    records = []
    for item in parse_jsonl_file(corpus):
        if isinstance(item, Record):
            records.append(item)
        if len(records) == args.base + 10 * args.updates:
            break
    base, extra = records[: args.base], records[args.base:]
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.load({"paths.index_dir": tmp})
        ingest([RecordsSource("base", base)], "soak", s, embedder=embedder)
        first = LoadedIndex(Path(tmp), "soak")
        pmids = first.store.all_pmids()
        query = embedder.encode([QUERY])[0]
        done = threading.Event()
        checks, problems, versions, update_times = [0], [], set(), []

        def view(index: LoadedIndex) -> tuple:
            m, counts = index.manifest, index.store.counts()
            ok = (index.store.digest() == m["store"]["digest"] and counts["records"] == m["counts"]["records"]
                  and len(index.vectors) == counts["chunks"])
            ids = [int(i) for i in index.vectors.search(query, 10)[1].reshape(-1) if i >= 0]
            ok = ok and len(index.store.chunk_pmids(ids)) == len(ids)
            if not ok:
                problems.append(index.folder.name)
            return index.folder.name, tuple(ids)

        held = view(first)

        def reader() -> None:
            while not done.is_set():
                try:
                    index = LoadedIndex(Path(tmp), "soak")
                    versions.add(view(index)[0])
                    index.close()
                except Exception as exc:  # noqa: BLE001 - an error is an inconsistency, counted
                    problems.append(f"{type(exc).__name__}: {exc}")
                checks[0] += 1

        threads = [threading.Thread(target=reader) for _ in range(args.readers)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        for n in range(args.updates):
            t = time.perf_counter()
            ingest([RecordsSource(f"u{n}", [*extra[10 * n: 10 * n + 10],
                                            Deletion(tuple(pmids[2 * n: 2 * n + 2]), "bench")])],
                   "soak", s, embedder=embedder)
            update_times.append(time.perf_counter() - t)
        done.set()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        still = view(first) == held
        first.close()
        print(f"## Soak: {len(base)} abstracts of {corpus.name}, then {args.updates} updates (10 added, 2 deleted each), "
              f"{args.readers} readers + 1 holding the first version")
        print(f"{wall:.0f} s; update p50 {statistics.median(update_times):.1f} s; {checks[0]} reader checks over "
              f"{len(versions)} versions; inconsistent views: {len(problems)}; held first version whole and unchanged "
              f"at the end: {still}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", default="eval-bioasq", help="an index the BioASQ questions are asked of "
                        "(`pubmed-rag eval answers` builds eval-bioasq); sample works too, with fewer answers")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="concurrent runs of the same questions")
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--base", type=int, default=1000, help="abstracts in the soak index before the updates")
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--only", choices=("load", "soak"))
    args = parser.parse_args()
    if args.only != "soak":
        load(args)
    if args.only != "load":
        soak(args)


if __name__ == "__main__":
    main()

"""Ask latency on the sample index: retrieval p50/p95, first token, decode tokens/s, total, peak RSS.

    python bench/bench_ask.py [--index sample] [--n 20] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from pubmed_rag.settings import Settings
from rag.pipeline import Asker

ROOT = Path(__file__).parents[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, default=ROOT / "tests" / "fixtures" / "pubmedqa_questions.json")
    parser.add_argument("--index", default="sample")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--precision", default="int8")
    args = parser.parse_args()
    questions = json.loads(args.questions.read_text())[: args.n]
    settings = Settings.load({"generator.precision": args.precision})
    asker = Asker(settings, index=args.index)
    asker.ask(questions[0]["question"], max_new_tokens=8)  # load and warm up
    retrieve, first, total, decode, found = [], [], [], [], 0
    for q in questions:
        t = time.perf_counter()
        asker.retriever.search(q["question"], settings.retrieval.k)
        retrieve.append(time.perf_counter() - t)
        answer = asker.ask(q["question"], max_new_tokens=args.max_new_tokens)
        found += q["pmid"] in [e.pmid for e in answer.evidence]
        if answer.timings.first_token is None:
            continue
        first.append(answer.timings.first_token)
        total.append(answer.timings.total)
        gen_after_first = answer.timings.generate - (answer.timings.first_token - answer.timings.retrieve)
        if answer.new_tokens > 1 and gen_after_first > 0:
            decode.append((answer.new_tokens - 1) / gen_after_first)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(questions)} PubMedQA questions, index {args.index}, k={settings.retrieval.k}, "
          f"retriever {settings.retrieval.retriever}, precision {args.precision}, max_new_tokens {args.max_new_tokens}")
    print(f"gold PMID among evidence: {found}/{len(questions)}")
    print(f"retrieval p50 {pct(retrieve, .5) * 1000:.1f} ms, p95 {pct(retrieve, .95) * 1000:.1f} ms")
    print(f"first token p50 {statistics.median(first):.2f} s; decode {statistics.median(decode):.1f} tokens/s (p50); "
          f"total p50 {statistics.median(total):.2f} s ({len(first)} generated answers)")
    print(f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()

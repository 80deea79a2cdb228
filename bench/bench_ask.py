"""Ask latency, the evidence-first answer side by side with the previous (generated) design, same questions.

Per question, interleaved: retrieval alone; the evidence-first answer (time from the end of retrieval until the
key findings are ready, first bottom-line token, total); the previous design (first token, total). Also decode
speed and peak RSS. Models are loaded and warmed up before timing.

    python bench/bench_ask.py [--index eval-bioasq-answers] [--n 20]

Questions: BioASQ yes/no and summary questions (evenly spaced) from ../shared/data/bioasq against the answers
evaluation index (`pubmed-rag eval answers` builds it); ``--questions FILE`` takes a PubMedQA-style list
(``question``, ``pmid``) instead, e.g. tests/fixtures/pubmedqa_questions.json with an index holding those abstracts.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from pubmed_rag.settings import Settings
from rag.evaluation import bioasq_answer_questions
from rag.pipeline import Asker

ROOT = Path(__file__).parents[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, help="PubMedQA-style JSON list (default: BioASQ from ../shared)")
    parser.add_argument("--index", default="eval-bioasq-answers")
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    if args.questions:
        questions = [{"question": q["question"], "gold": [q["pmid"]]} for q in json.loads(args.questions.read_text())]
    else:
        files = sorted((ROOT.parent / "shared" / "data" / "bioasq").glob("Task*/*_golden.json"))
        questions = [{"question": q["body"], "gold": q["gold"]} for q in bioasq_answer_questions(files)]
    questions = [questions[i * len(questions) // args.n] for i in range(min(args.n, len(questions)))]
    settings = Settings.load()
    asker = Asker(settings, index=args.index)
    asker.ask(questions[0]["question"])  # load and warm up both paths
    asker.ask(questions[0]["question"], mode="generated", max_new_tokens=8)
    rows: dict[str, list[float]] = {k: [] for k in ("retrieve", "findings", "first", "total", "old_first",
                                                    "old_total", "decode", "old_decode")}
    found = survived = abstained = 0
    for q in questions:
        t = time.perf_counter()
        asker.retriever.search(q["question"], settings.retrieval.k)
        rows["retrieve"].append(time.perf_counter() - t)
        new = asker.ask(q["question"])
        old = asker.ask(q["question"], mode="generated")
        found += bool(set(q["gold"]) & {e.pmid for e in new.evidence})
        abstained += new.abstained
        survived += bool(new.bottom_line)
        if not new.abstained:
            rows["findings"].append(new.timings.findings)
            rows["total"].append(new.timings.total)
        for answer, prefix in ((new, ""), (old, "old_")):
            t = answer.timings
            if t.first_token is None:
                continue
            rows[f"{prefix}first"].append(t.first_token)
            if prefix:
                rows["old_total"].append(t.total)
            after_first = t.generate - (t.first_token - t.retrieve - t.findings)
            if answer.new_tokens > 1 and after_first > 0:
                rows[f"{prefix}decode"].append((answer.new_tokens - 1) / after_first)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50 = {k: statistics.median(v) if v else float("nan") for k, v in rows.items()}
    print(f"{len(questions)} questions, index {args.index}, k={settings.retrieval.k}, retriever "
          f"{settings.retrieval.retriever}, precision {settings.generator.precision}; bottom line <= "
          f"{settings.answer.bottom_line_tokens} tokens, previous design <= {settings.generator.max_new_tokens}")
    print(f"a gold PMID among the evidence: {found}/{len(questions)}; evidence-first abstained {abstained}, bottom line "
          f"shown for {survived}")
    print("| measure | evidence-first (default) | previous design | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| retrieval p50 / p95 | {p50['retrieve'] * 1000:.0f} ms / {pct(rows['retrieve'], .95) * 1000:.0f} ms | "
          "same | |")
    print(f"| findings ready after retrieval, p50 / p95 | {p50['findings'] * 1000:.0f} ms / "
          f"{pct(rows['findings'], .95) * 1000:.0f} ms | - | |")
    print(f"| first token p50 | {p50['first']:.2f} s | {p50['old_first']:.2f} s | "
          f"{p50['first'] / p50['old_first']:.2f}x |")
    print(f"| decode p50 | {p50['decode']:.1f} tokens/s | {p50['old_decode']:.1f} tokens/s | |")
    print(f"| full answer p50 | {p50['total']:.2f} s | {p50['old_total']:.2f} s | "
          f"{p50['total'] / p50['old_total']:.2f}x |")
    print(f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()

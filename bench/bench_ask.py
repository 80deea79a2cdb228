"""Ask latency: the default answer with the trained generator and with the base model, side by side, same questions.

Per question, interleaved: retrieval alone; then the evidence-first answer written by each generator (time from the
end of retrieval until the key findings are ready, first bottom-line token, total), whether a bottom line was
shown; decode speed and peak RSS. Models are loaded and warmed up before timing; the load average is printed
before and after (the machine's other work shows in it).

    python bench/bench_ask.py [--index eval-bioasq] [--n 20] [--files 9B3,9B4,9B5]

Questions: BioASQ questions with ideal answers (all four types, evenly spaced) from ../shared/data/bioasq (``--files``
keeps those whose file name starts with one of the prefixes) against the answers evaluation index (`pubmed-rag eval
answers` builds it); ``--questions FILE`` takes a PubMedQA-style list (``question``, ``pmid``) instead, e.g.
tests/fixtures/pubmedqa_questions.json with an index holding those abstracts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

from pubmed_rag.paths import SHARED_DATA
from pubmed_rag.settings import Settings
from rag.evaluation import bioasq_answer_questions
from rag.generation import load_generator
from rag.pipeline import Asker
from rag.training.generator import REPORT_FILES

ROOT = Path(__file__).parents[1]
TYPES = ("yesno", "factoid", "list", "summary")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, help="PubMedQA-style JSON list (default: BioASQ from ../shared)")
    parser.add_argument("--index", default="eval-bioasq")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--files", default=",".join(REPORT_FILES),
                        help="BioASQ golden files whose names start with these (default: the generator's report slice)")
    args = parser.parse_args()
    if args.questions:
        questions = [{"question": q["question"], "gold": [q["pmid"]]} for q in json.loads(args.questions.read_text())]
    else:
        prefixes = tuple(p.strip() for p in args.files.split(","))
        files = [f for f in sorted((SHARED_DATA / "bioasq").glob("Task*/*_golden.json"))
                 if f.name.startswith(prefixes)]
        questions = [{"question": q["body"], "gold": q["gold"]} for q in bioasq_answer_questions(files, TYPES)]
    questions = [questions[i * len(questions) // args.n] for i in range(min(args.n, len(questions)))]
    settings = Settings.load()
    asker = Asker(settings, index=args.index)
    generators = {"trained": asker.generator,
                  "base": load_generator(settings.generator.model_copy(update={"adapter": ""}),
                                         settings.paths.cache_dir)}
    for generator in generators.values():  # load and warm up
        asker._generator = generator
        asker.ask(questions[0]["question"])
    load_before = os.getloadavg()
    rows: dict[str, dict[str, list[float]]] = {name: {k: [] for k in ("findings", "first", "total", "decode")}
                                               for name in generators}
    retrieve: list[float] = []
    shown = dict.fromkeys(generators, 0)
    found = abstained = 0
    for q in questions:
        t = time.perf_counter()
        asker.retriever.search(q["question"], settings.retrieval.k)
        retrieve.append(time.perf_counter() - t)
        for name, generator in generators.items():
            asker._generator = generator
            answer = asker.ask(q["question"])
            shown[name] += bool(answer.bottom_line)
            if name == "trained":
                found += bool(set(q["gold"]) & {e.pmid for e in answer.evidence})
                abstained += answer.abstained
            if answer.abstained:
                continue
            t = answer.timings
            rows[name]["findings"].append(t.findings)
            rows[name]["total"].append(t.total)
            if t.first_token is not None:
                rows[name]["first"].append(t.first_token)
                after_first = t.generate - (t.first_token - t.retrieve - t.findings)
                if answer.new_tokens > 1 and after_first > 0:
                    rows[name]["decode"].append((answer.new_tokens - 1) / after_first)
    load_after = os.getloadavg()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50 = {name: {k: statistics.median(v) if v else float("nan") for k, v in r.items()} for name, r in rows.items()}
    tr, ba = p50["trained"], p50["base"]
    print(f"{len(questions)} questions, index {args.index}, k={settings.retrieval.k}, retriever "
          f"{settings.retrieval.retriever}, precision {settings.generator.precision}, bottom line <= "
          f"{settings.answer.bottom_line_tokens} tokens; {os.cpu_count()} CPUs, load average (1/5/15 min) "
          f"{'/'.join(f'{x:.2f}' for x in load_before)} before, {'/'.join(f'{x:.2f}' for x in load_after)} after")
    print(f"a gold PMID among the evidence: {found}/{len(questions)}; abstained {abstained}")
    print("(the base model answers each question second: its findings come from the sentence-vector cache)")
    print("| measure | trained generator (default) | base model | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| retrieval p50 / p95 | {statistics.median(retrieve) * 1000:.0f} ms / {pct(retrieve, .95) * 1000:.0f} ms "
          "| same | |")
    print(f"| findings ready after retrieval, p50 / p95 | {tr['findings'] * 1000:.0f} ms / "
          f"{pct(rows['trained']['findings'], .95) * 1000:.0f} ms | {ba['findings'] * 1000:.0f} ms | |")
    print(f"| first token p50 | {tr['first']:.2f} s | {ba['first']:.2f} s | {tr['first'] / ba['first']:.2f}x |")
    print(f"| decode p50 | {tr['decode']:.1f} tokens/s | {ba['decode']:.1f} tokens/s | |")
    print(f"| full answer p50 / p95 | {tr['total']:.2f} s / {pct(rows['trained']['total'], .95):.2f} s | "
          f"{ba['total']:.2f} s / {pct(rows['base']['total'], .95):.2f} s | {tr['total'] / ba['total']:.2f}x |")
    print(f"| bottom line shown | {shown['trained']}/{len(questions)} | {shown['base']}/{len(questions)} | |")
    print(f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()

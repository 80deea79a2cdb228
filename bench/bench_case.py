"""Case-report latency on an index (the sample index by default): the 30 TREC CDS 2014 cases, each analysed end to
end (redact, read, differential, evidence per problem) with the models already loaded, ``--repeats`` rounds; the
median (p50) and p90 per case, the stage split, and the machine's load average while it ran.

    python bench/bench_case.py [--index sample] [--repeats 2] [--cases data/cases/2014_description.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from pathlib import Path

from pubmed_rag.settings import Settings
from rag.case import CaseAnalyzer
from rag.pipeline import Asker

ROOT = Path(__file__).parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="sample")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cases", type=Path, default=ROOT / "data" / "cases" / "2014_description.csv")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with open(args.cases, encoding="utf-8", newline="") as fh:
        cases = [row[0] for row in csv.reader(fh) if row]
    started = time.perf_counter()
    analyzer = CaseAnalyzer(Asker(Settings.load(), index=args.index))
    analyzer.analyze(cases[0])  # loads the vocabulary, the reader and the models
    load_seconds = time.perf_counter() - started
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for case in cases:
            at = time.perf_counter()
            report = analyzer.analyze(case)
            totals.append(time.perf_counter() - at)
            for name, seconds in report.timings.items():
                stages.setdefault(name, []).append(seconds)
    load_after = os.getloadavg()
    totals.sort()
    result = {
        "index": args.index, "cases": len(cases), "runs": len(totals), "cpus": os.cpu_count(),
        "first_load_seconds": round(load_seconds, 2),
        "p50_seconds": round(statistics.median(totals), 3), "p90_seconds": round(totals[int(0.9 * len(totals))], 3),
        "max_seconds": round(totals[-1], 3),
        "stage_p50_seconds": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

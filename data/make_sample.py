"""Rebuild the bundled sample data from ../shared/data (see data/README.md for sources and licences).

    python data/make_sample.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

HERE = Path(__file__).parent / "sample"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data")
    parser.add_argument("--bc5cdr", type=int, default=500, help="BC5CDR abstracts added to the PubMedQA ones")
    args = parser.parse_args()
    pqal = json.loads((args.shared / "pubmedqa" / "ori_pqal.json").read_text())
    test_ids = set(json.loads((args.shared / "pubmedqa" / "test_ground_truth.json").read_text()))
    out, bc5cdr = [], 0
    with gzip.open(args.shared / "corpus" / "abstracts.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            rec = json.loads(line)
            if rec["source"] == "pubmedqa":
                meta = pqal[rec["pmid"]]
                rec.update(year=int(meta["YEAR"]) if meta.get("YEAR") else None, mesh=meta["MESHES"])
            elif rec["source"] == "bc5cdr" and bc5cdr < args.bc5cdr:
                bc5cdr += 1
            else:
                continue
            out.append({k: rec[k] for k in ("pmid", "title", "abstract", "year", "mesh", "source") if k in rec})
    HERE.mkdir(exist_ok=True)
    with gzip.open(HERE / "abstracts.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as handle:
        for rec in out:
            handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
    # 40 questions of the official PubMedQA test split, in file order, for tests and bench/ask.py.
    questions = [
        {"pmid": pmid, "question": pqal[pmid]["QUESTION"], "final_decision": pqal[pmid]["final_decision"],
         "long_answer": pqal[pmid]["LONG_ANSWER"]}
        for pmid in pqal if pmid in test_ids
    ][:40]
    (HERE / "pubmedqa_questions.json").write_text(json.dumps(questions, indent=1, ensure_ascii=False))
    print(f"{len(out)} abstracts ({bc5cdr} BC5CDR), {len(questions)} questions -> {HERE}")


if __name__ == "__main__":
    main()

"""Write docs/answers.md: 20 evenly spaced answers from an `eval answers --out` file, printed verbatim.

    pubmed-rag eval answers --dataset bioasq --out answers.json
    python bench/answers_md.py answers.json docs/answers.md [--n 20]

The answers are not chosen: question i of n is question ``i * total // n`` of the evaluated list.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def render(row: dict, number: int, base: dict | None = None) -> str:
    lines = [f"## {number}. {row['question'] if 'question' in row else row['id']}", ""]
    lines.append(f"BioASQ {row['task']} {row['type']} question `{row['id']}`; gold document among the evidence: "
                 f"{'yes' if row['gold_in_evidence'] else 'no'}; ROUGE-SU4 {row['su4']:.3f}; {row['seconds']:.1f} s.")
    lines.append("")
    if row["abstained"]:
        lines.append(f"**Abstained:** {row['abstain_reason']}")
        return "\n".join(lines)
    lines.append("**Bottom line:** " + (" ".join(row["bottom_line"]) or "_(no generated sentence passed the checks)_"))
    for text, reason in row["dropped"]:
        lines.append(f"- dropped ({reason}): {text}")
    if base is not None:  # the same question, the same evidence, the base model writing the bottom line
        lines.append("")
        lines.append("**Base model's bottom line (same findings):** "
                     + (" ".join(base["bottom_line"]) or "_(no generated sentence passed the checks)_"))
        for text, reason in base["dropped"]:
            lines.append(f"- dropped ({reason}): {text}")
    lines.append("")
    lines.append("**Key findings:**")
    lines.append("")
    for f in row["findings"]:
        badges = ", ".join(x for x in (f["design"], str(f["year"] or ""),
                                       f"n = {f['sample_size']:,}" if f["sample_size"] else "",
                                       (f["section"] or "").lower()) if x)
        lines.append(f"- [{f['number']}] \"{' '.join(f['sentences'])}\" (PMID {f['pmid']}; {badges})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    rows = data["results"]["default"]["per_question"]
    base_rows = {r["id"]: r for r in data["results"].get("base-generator", {}).get("per_question", [])}
    questions = {q["id"]: q for q in data.get("questions", [])}
    picked = [rows[i * len(rows) // args.n] for i in range(min(args.n, len(rows)))]
    parts = ["# Answers, printed verbatim", "",
             f"{len(picked)} of the {len(rows)} BioASQ questions of `pubmed-rag eval answers` (index "
             f"`{data['index']}`), evenly spaced, not chosen: whatever they look like. Each shows the bottom line (only "
             "generated sentences that passed every check) written by the trained generator, the sentences that were "
             "dropped and why, the base model's bottom line for the same findings where it was run, and the key "
             "findings quoted from the evidence.", ""]
    for i, row in enumerate(picked, start=1):
        row = {**row, "question": questions.get(row["id"], {}).get("body", row["id"])}
        parts.append(render(row, i, base_rows.get(row["id"])))
        parts.append("")
        parts.append("Experts' ideal answer: " + questions.get(row["id"], {}).get("ideal", [""])[0])
        parts.append("")
    args.out.write_text("\n".join(parts))


if __name__ == "__main__":
    main()

"""Evaluation harness: retrieval (recall@k, nDCG@10, MRR) and yes/no/maybe QA on BioASQ and PubMedQA files.

Data files are taken by path, so other splits in the same formats work too.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pubmed_rag.records import Record

KS = (1, 5, 10, 20)


@dataclass
class Question:
    qid: str
    text: str
    gold: list[str]  # relevant PMIDs
    answer: str = ""  # yes / no / maybe for QA


def _pmid(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def load_corpus(path: Path, drop_titles: bool = False) -> list[Record]:
    """The JSONL corpus (``pmid``, ``title``, ``abstract``) as records."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") if str(path).endswith(".gz") else open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append(Record(pmid=str(d["pmid"]), title="" if drop_titles else d.get("title", ""),
                              sections=[("", d["abstract"])], source=str(path)))
    return out


def load_bioasq(files: Iterable[Path]) -> list[dict]:
    questions: list[dict] = []
    for path in sorted(files):
        questions.extend(json.loads(Path(path).read_text(encoding="utf-8"))["questions"])
    return questions


def bioasq_questions(raw: list[dict], yesno_only: bool = False) -> list[Question]:
    out = []
    for q in raw:
        if yesno_only and q["type"] != "yesno":
            continue
        answer = q.get("exact_answer", "") if q["type"] == "yesno" else ""
        out.append(Question(q["id"], q["body"], list(dict.fromkeys(_pmid(d) for d in q["documents"])),
                            answer.lower() if isinstance(answer, str) else ""))
    return out


def bioasq_snippet_records(raw: list[dict], exclude: set[str]) -> list[Record]:
    """One document per gold PMID outside ``exclude``, built from that PMID's gold snippets (title and abstract)."""
    titles: dict[str, list[str]] = {}
    bodies: dict[str, list[str]] = {}
    for q in raw:
        for s in q.get("snippets", []):
            pmid = _pmid(s["document"])
            if pmid in exclude:
                continue
            target = titles if s.get("beginSection") == "title" else bodies
            text = " ".join(s["text"].split())
            if text not in target.setdefault(pmid, []):
                target[pmid].append(text)
            titles.setdefault(pmid, [])
            bodies.setdefault(pmid, [])
    return [Record(pmid=p, title=" ".join(titles[p]), sections=[("", " ".join(bodies[p]))] if bodies[p] else [],
                   source="bioasq-snippets") for p in sorted(titles)]


def pubmedqa_questions(path: Path) -> list[Question]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Question(pmid, d["QUESTION"], [pmid], d["final_decision"]) for pmid, d in data.items()]


# -- metrics ---------------------------------------------------------------------------------------------------
def retrieval_metrics(ranked: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """Mean recall@k (k in KS), nDCG@10 and MRR over questions."""
    sums = dict.fromkeys([f"recall@{k}" for k in KS] + ["ndcg@10", "mrr"], 0.0)
    for got, relevant in zip(ranked, gold, strict=True):
        rel = set(relevant)
        for k in KS:
            sums[f"recall@{k}"] += len(rel & set(got[:k])) / len(rel)
        dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(got[:10]) if p in rel)
        ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(rel))))
        sums["ndcg@10"] += dcg / ideal
        sums["mrr"] += next((1 / (i + 1) for i, p in enumerate(got) if p in rel), 0.0)
    return {k: round(v / max(1, len(ranked)), 4) for k, v in sums.items()}


_DECISION = re.compile(r"\b(yes|no|maybe)\b", re.I)


def parse_decision(text: str) -> str:
    """The stated rule: the first standalone 'yes', 'no' or 'maybe' in the output; none found -> 'maybe'."""
    match = _DECISION.search(text)
    return match.group(1).lower() if match else "maybe"


def qa_metrics(predicted: list[str], gold: list[str], labels: tuple[str, ...]) -> dict[str, float]:
    """Accuracy and macro-F1 over ``labels``."""
    acc = sum(p == g for p, g in zip(predicted, gold, strict=True)) / max(1, len(gold))
    f1s = []
    for label in labels:
        tp = sum(p == g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label != g for p, g in zip(predicted, gold, strict=True))
        fn = sum(g == label != p for p, g in zip(predicted, gold, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": round(acc, 4), "macro_f1": round(sum(f1s) / len(f1s), 4), "n": len(gold)}


def evaluate_retrieval(questions: list[Question], search: Callable[[str], list[str]],
                       progress: Callable[[int], None] | None = None) -> dict[str, float]:
    ranked = []
    for q in questions:
        ranked.append(search(q.text))
        if progress:
            progress(1)
    return retrieval_metrics(ranked, [q.gold for q in questions])


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    metrics = list(next(iter(results.values())))
    lines = ["| retriever | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, values in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.3f}" for m in metrics) + " |")
    return "\n".join(lines)


def bioasq_corpus(corpus_path: Path, bioasq_files: Iterable[Path]) -> tuple[list[Record], list[dict]]:
    """The 10,609-abstract corpus plus one gold-snippet document per gold PMID it lacks; and the raw questions."""
    corpus = load_corpus(corpus_path)
    raw = load_bioasq(bioasq_files)
    return corpus + bioasq_snippet_records(raw, {r.pmid for r in corpus}), raw

"""Evaluation datasets: BioASQ golden files, PubMedQA-L and the shared abstract corpus, read by path so other splits
in the same formats work too."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest.jsonl import parse_jsonl_file
from pubmed_rag.records import Record


@dataclass
class Question:
    qid: str
    text: str
    gold: list[str]  # relevant PMIDs
    answer: str = ""  # yes / no / maybe for QA


def _pmid(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def load_corpus(path: Path, drop_titles: bool = False) -> list[Record]:
    """The JSONL corpus (``pmid``, ``title``, ``abstract``) as records, read by the ingest JSONL reader."""
    records = [r for r in parse_jsonl_file(Path(path)) if isinstance(r, Record)]
    if drop_titles:
        for r in records:
            r.title = ""
    return records


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


def bioasq_answer_questions(files: Iterable[Path], types: tuple[str, ...] = ("yesno", "summary")) -> list[dict]:
    """BioASQ questions of ``types`` with their ideal answers: ``{id, body, type, ideal, gold, task}`` (task "7B" ...
    read from the file's folder name)."""
    out = []
    for path in sorted(files):
        task = re.search(r"(?<!\d)(\d+B)\d", Path(path).name)  # 7B1_golden.json -> 7B
        for q in json.loads(Path(path).read_text(encoding="utf-8"))["questions"]:
            ideal = q.get("ideal_answer") or []
            if q["type"] in types and ideal:
                out.append({"id": q["id"], "body": q["body"], "type": q["type"],
                            "ideal": [ideal] if isinstance(ideal, str) else list(ideal),
                            "gold": list(dict.fromkeys(_pmid(d) for d in q["documents"])),
                            "task": task.group(1) if task else ""})
    return out


def pubmedqa_questions(path: Path) -> list[Question]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Question(pmid, d["QUESTION"], [pmid], d["final_decision"]) for pmid, d in data.items()]


def bioasq_corpus(corpus_path: Path, bioasq_files: Iterable[Path],
                  distractors: int | None = None) -> tuple[list[Record], list[dict]]:
    """The 10,609-abstract corpus plus one gold-snippet document per gold PMID it lacks; and the raw questions.

    ``distractors``: keep only this many corpus abstracts, evenly spaced through the file (a smaller index that
    embeds in minutes; the gold-snippet documents are all kept)."""
    corpus = load_corpus(corpus_path)
    if distractors is not None and distractors < len(corpus):
        corpus = [corpus[i * len(corpus) // distractors] for i in range(distractors)]
    raw = load_bioasq(bioasq_files)
    return corpus + bioasq_snippet_records(raw, {r.pmid for r in corpus}), raw

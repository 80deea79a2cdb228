"""Training examples for the generator: the prompt the pipeline builds at answer time, and a checked target.

Each example is made the way an answer is: the question is asked of the evaluation index (the configured retrieval,
then key-finding extraction), and the strongest ``answer.prompt_findings`` findings go through ``build_prompt``; so
the model trains on exactly what it reads at answer time. The target is a reference answer written by people:

- BioASQ (all four question types): the experts' ideal answer;
- PubMedQA-L: the abstract's own conclusion (LONG_ANSWER), with the abstract minus its conclusion (CONTEXTS) as one
  evidence record among the retrieved ones, at a seeded position.

The reference is split into sentences; a leading "Yes"/"No" is removed (the local model never states a verdict);
each sentence is given the ``[n]`` of the shown finding it overlaps most (ROUGE-SU4), and dropped if it overlaps none
(below ``MIN_OVERLAP``). The cited sentences then go through the same checks as a generated bottom line
(``BottomLineChecker``), and only those that pass make the target: the model learns to write what is shown.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pubmed_rag.sentences import split_sentences
from pubmed_rag.types import Evidence, Finding
from rag.bottom_line import SYSTEM, BottomLineChecker, build_prompt
from rag.citations import strip_markers
from rag.evaluation.datasets import bioasq_answer_questions
from rag.evaluation.metrics import rouge

ALL_TYPES = ("yesno", "factoid", "list", "summary")
MIN_OVERLAP = 0.05  # ROUGE-SU4 F1 of a reference sentence with its best finding below which it cites nothing
MAX_SENTENCES = 2  # the checker shows at most two sentences
_YES_NO = re.compile(r"^\s*(?:yes|no)\b[\s,.;:!-]*", re.I)


@dataclass
class GenExample:
    """One training example: the chat prompt the pipeline builds, and the target reply."""

    qid: str
    source: str  # bioasq-7B, bioasq-8B, pubmedqa
    system: str
    user: str
    target: str
    question: str = ""


def cite_reference(reference: str, findings: list[Finding]) -> tuple[list[str], Counter]:
    """The sentences of ``reference`` with the ``[n]`` of the finding each overlaps most; and what was dropped."""
    out: list[str] = []
    dropped: Counter = Counter()
    for sentence in split_sentences(" ".join(reference.split())):
        sentence = _YES_NO.sub("", sentence).strip()
        if not strip_markers(sentence) or len(sentence.split()) < 3:
            dropped["too short after yes/no"] += 1
            continue
        sentence = sentence[:1].upper() + sentence[1:]
        overlaps = [rouge(sentence, [f.text])["su4"] for f in findings]
        best = max(range(len(findings)), key=overlaps.__getitem__)
        if overlaps[best] < MIN_OVERLAP:
            dropped["overlaps no finding"] += 1
            continue
        body = sentence.rstrip().rstrip(".!;:,").rstrip()
        out.append(f"{body} [{findings[best].number}].")
    return out, dropped


def checked_target(question: str, references: list[str], findings: list[Finding],
                   checker: BottomLineChecker) -> tuple[str, Counter]:
    """The first reference whose cited sentences pass the bottom-line checks, as the target ('' if none does)."""
    reasons: Counter = Counter()
    for reference in references:
        cited, dropped = cite_reference(reference, findings)
        reasons.update(dropped)
        if not cited:
            continue
        kept, failed = checker.check(question, " ".join(cited), findings, limit=MAX_SENTENCES)
        reasons.update(d.reason for d in failed)
        if kept:
            return " ".join(s.text for s in kept), reasons
    return "", reasons


def pubmedqa_evidence(pmid: str, item: dict, number: int) -> Evidence:
    """A PubMedQA-L item's abstract without its conclusion (CONTEXTS, with their section labels) as evidence."""
    from pubmed_rag.records import section_category

    sections = [(section_category(label) or "", label, text)
                for label, text in zip(item["LABELS"], item["CONTEXTS"], strict=False)]
    abstract = " ".join(item["CONTEXTS"])
    year = int(item["YEAR"]) if str(item.get("YEAR", "")).isdigit() else None
    return Evidence(number=number, pmid=pmid, title="", journal="", year=year, authors=[], publication_types=[],
                    mesh=list(item.get("MESHES", [])), doi="", retracted=False, retraction_notice=False, grade=1,
                    grade_label="Other / unclassified", score=0.0, passage=abstract[:600], chunk_id=-1,
                    abstract=abstract, url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/", sections=sections)


class ExampleBuilder:
    """Builds ``GenExample``s with an ``Asker``'s own retriever, finding extractor and checks."""

    def __init__(self, asker: Any) -> None:
        self.asker = asker
        self.checker = BottomLineChecker(asker.embedder, asker.scorer, asker.settings.answer, asker.settings.verify)
        self.reasons: Counter = Counter()
        self.skipped: Counter = Counter()

    def shown_findings(self, question: str, evidence: list[Evidence]) -> list[Finding]:
        """What the pipeline gives the model: the strongest ``answer.prompt_findings`` key findings."""
        findings = self.asker.findings.extract(question, evidence)
        return findings[: self.asker.settings.answer.prompt_findings]

    def example(self, qid: str, source: str, question: str, evidence: list[Evidence],
                references: list[str]) -> GenExample | None:
        shown = self.shown_findings(question, evidence)
        if not shown:
            self.skipped["no finding"] += 1
            return None
        target, reasons = checked_target(question, references, shown, self.checker)
        self.reasons.update(reasons)
        if not target:
            self.skipped["no reference sentence passed"] += 1
            return None
        return GenExample(qid, source, SYSTEM, build_prompt(question, shown), target, question)

    def bioasq(self, files: Iterable[Path], tasks: tuple[str, ...], limit: int = 0,
               progress: Callable[[int], None] | None = None) -> list[GenExample]:
        """Examples from the BioASQ questions of ``tasks`` ("7B", "8B") with ideal answers, in file order."""
        questions = [q for q in bioasq_answer_questions(files, ALL_TYPES) if q["task"] in tasks]
        out = []
        for q in questions[:limit] if limit else questions:
            evidence = self.asker.retriever.search(q["body"], self.asker.settings.retrieval.k)
            example = self.example(q["id"], f"bioasq-{q['task']}", q["body"], evidence, q["ideal"])
            if example:
                out.append(example)
            if progress:
                progress(1)
        return out

    def pubmedqa(self, pqal: Path, held_out: set[str], seed: int, limit: int = 0,
                 progress: Callable[[int], None] | None = None) -> list[GenExample]:
        """Examples from the PubMedQA-L items outside ``held_out``: own abstract (no conclusion) among the evidence."""
        rng = random.Random(seed)
        data = json.loads(Path(pqal).read_text(encoding="utf-8"))
        items = [(pmid, d) for pmid, d in data.items() if pmid not in held_out]
        k = self.asker.settings.retrieval.k
        out = []
        for pmid, item in items[:limit] if limit else items:
            others = [e for e in self.asker.retriever.search(item["QUESTION"], k + 1) if e.pmid != pmid][: k - 1]
            own = pubmedqa_evidence(pmid, item, 0)
            evidence = list(others)
            evidence.insert(rng.randrange(len(evidence) + 1), own)
            evidence = [e.model_copy(update={"number": i + 1}) for i, e in enumerate(evidence)]
            example = self.example(pmid, "pubmedqa", item["QUESTION"], evidence, [item["LONG_ANSWER"]])
            if example:
                out.append(example)
            if progress:
                progress(1)
        return out


def write_examples(examples: list[GenExample], path: Path) -> None:
    path.write_text("".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in examples), encoding="utf-8")


def read_examples(path: Path) -> list[GenExample]:
    """Examples written by ``write_examples``; a bad line is reported with its file and line number."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(GenExample(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}, line {number}: not a generator training example ({exc})") from exc
    return out

"""Yes/no(/maybe) QA: the prompt, the decision rules (argmax, content-free calibrated, parsing) and their evaluation."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from rag.evaluation.datasets import Question
from rag.evaluation.metrics import qa_metrics

_DECISION = re.compile(r"\b(yes|no|maybe)\b", re.I)


def parse_decision(text: str) -> str:
    """The stated rule: the first standalone 'yes', 'no' or 'maybe' in the output; none found -> 'maybe'."""
    match = _DECISION.search(text)
    return match.group(1).lower() if match else "maybe"


QA_SYSTEM = ("You are a biomedical expert. Answer the research question with one word, yes, no or maybe, "
             "then one sentence of justification.")


QA_SETTINGS = ("retrieval", "no-retrieval", "verified")


_FORMS = {"yes": ("yes", "Yes"), "no": ("no", "No"), "maybe": ("maybe", "Maybe")}


def qa_prompt(question: str, evidence_text: str) -> str:
    if evidence_text:
        return f"Evidence:\n{evidence_text}\n\nQuestion: {question}\nAnswer (yes, no or maybe):"
    return f"Question: {question}\nAnswer (yes, no or maybe):"


def evidence_text(evidence: list) -> str:
    """The numbered passages a QA prompt shows (each clipped to 400 characters)."""
    from rag.prompt import clip

    return "\n".join(f"[{e.number}] {clip(e.passage, 400)}" for e in evidence)


def label_probabilities(generator, prompt: str, labels: tuple[str, ...]) -> dict[str, float] | None:
    """Each label's probability (its forms 'yes', 'Yes', ... summed, renormalised over the labels) as the start of
    the reply; ``None`` for a generator that cannot score options."""
    from rag.generation import Chooser

    if not isinstance(generator, Chooser):
        return None
    scores = generator.choose(QA_SYSTEM, prompt, [f for label in labels for f in _FORMS[label]])
    probs = {label: sum(math.exp(scores[f]) for f in _FORMS[label]) for label in labels}
    total = sum(probs.values()) or 1.0
    return {label: p / total for label, p in probs.items()}


def content_free_prompt(with_evidence: bool) -> str:
    return qa_prompt("N/A", "[1] N/A" if with_evidence else "")


def decide(generator, question: str, evidence: list, labels: tuple[str, ...],
           content_free: dict[str, float] | None = None) -> str:
    """The stated decision rules, for a generator that can score options (the local one):

    - argmax (``content_free`` not given): the label most probable as the start of the reply;
    - calibrated: the label whose probability is highest relative to its probability for a content-free question
      (``content_free_prompt``: 'N/A', with 'N/A' evidence when evidence is shown; Zhao et al. 2021, "Calibrate
      before use"). It removes the model's fixed lean towards one word, and uses no labelled data.

    Any other generator: ``parse_decision`` of 8 generated tokens ('maybe' counts as 'no' where it is not a label).
    """
    prompt = qa_prompt(question, evidence_text(evidence))
    probs = label_probabilities(generator, prompt, labels)
    if probs is None:
        decision = parse_decision("".join(generator.stream(QA_SYSTEM, prompt, 8)))
        return decision if decision in labels else "no"
    return pick(probs, labels, content_free)


def pick(probs: dict[str, float], labels: tuple[str, ...], content_free: dict[str, float] | None = None) -> str:
    """The argmax label, or with ``content_free`` the calibrated one (see ``decide``)."""
    if content_free:
        return max(labels, key=lambda label: probs[label] / max(content_free[label], 1e-9))
    return max(labels, key=probs.__getitem__)


def evaluate_qa(asker, questions: list[Question], labels: tuple[str, ...], setting: str, exclude_own: bool,
                max_new_tokens: int = 64, progress: Callable[[int], None] | None = None) -> dict:
    """Yes/no(/maybe) accuracy and macro-F1 in one setting, for both decision rules (``argmax``, ``calibrated``).

    ``retrieval``: decide from the top-k evidence (with ``exclude_own``, the question's own PMIDs are removed from the
    index first: PubMedQA*). ``no-retrieval``: from the question alone. ``verified``: the generated answer design answers
    first (generation, citation verification, abstention when half its sentences fail);
    an abstention is the decision 'maybe' (or, without that
    label, no decision, which counts as wrong); otherwise the decision is taken from the answer's evidence.
    """
    from rag.retrieve import Filters

    if setting not in QA_SETTINGS:
        raise ValueError(f"unknown QA setting {setting!r}; use one of {', '.join(QA_SETTINGS)}")
    content_free = label_probabilities(asker.generator, content_free_prompt(setting != "no-retrieval"), labels)
    rows: list[dict] = []
    for q in questions:
        filters = Filters(exclude_pmids=q.gold if exclude_own else [])
        row = {"id": q.qid, "gold": q.answer, "abstained": False}
        evidence: list = []
        if setting == "retrieval":
            evidence = asker.retriever.search(q.text, asker.settings.retrieval.k, filters)
        elif setting == "verified":
            answer = asker.ask(q.text, filters=filters, max_new_tokens=max_new_tokens, mode="generated")
            row["abstained"], evidence = answer.abstained, answer.evidence
        if row["abstained"]:
            row["argmax"] = row["calibrated"] = "maybe" if "maybe" in labels else "abstained"
        elif content_free is None:  # a generator that cannot score options: the parsing rule, for both
            row["argmax"] = row["calibrated"] = decide(asker.generator, q.text, evidence, labels)
        else:
            probs = label_probabilities(asker.generator, qa_prompt(q.text, evidence_text(evidence)), labels)
            row["argmax"], row["calibrated"] = pick(probs, labels), pick(probs, labels, content_free)
        rows.append(row)
        if progress:
            progress(1)
    gold = [r["gold"] for r in rows]
    out: dict = {"n": len(rows), "content_free": {k: round(v, 4) for k, v in (content_free or {}).items()}}
    for rule in ("argmax", "calibrated"):
        predicted = [r[rule] for r in rows]
        out[rule] = qa_metrics(predicted, gold, labels)
        out[rule]["predicted"] = {x: predicted.count(x) for x in (*labels, "abstained") if x in predicted}
        if setting == "verified":
            answered = [(r[rule], r["gold"]) for r in rows if not r["abstained"]]
            out[rule]["accuracy_when_answered"] = round(sum(p == g for p, g in answered) / max(1, len(answered)), 4)
    if setting == "verified":
        out["abstained"] = sum(r["abstained"] for r in rows)
    out["per_question"] = rows
    return out

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
    from rag.prompt import _clip

    return "\n".join(f"[{e.number}] {_clip(e.passage, 400)}" for e in evidence)


def label_probabilities(generator, prompt: str, labels: tuple[str, ...]) -> dict[str, float] | None:
    """Each label's probability (its forms 'yes', 'Yes', ... summed, renormalised over the labels) as the start of
    the reply; ``None`` for a generator that cannot score options."""
    from rag.generator import Chooser

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
    index first: PubMedQA*). ``no-retrieval``: from the question alone. ``verified``: the full ask pipeline answers
    first (generation, citation verification, abstention); an abstention is the decision 'maybe' (or, without that
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
            answer = asker.ask(q.text, filters=filters, max_new_tokens=max_new_tokens)
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


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    import numpy as np

    pos, neg = np.asarray(positives), np.asarray(negatives)
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.concatenate([pos, neg])
    for v in np.unique(values):  # average ranks of ties
        mask = values == v
        if mask.sum() > 1:
            ranks[mask] = ranks[mask].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def calibrate_support(pqal_path: Path, scorer, seed: int = 0) -> dict:
    """Each PubMedQA conclusion sentence scored against its own abstract (positive), a random other one (easy
    negative, which sets the thresholds) and the other abstract most similar to its own (hard, on-topic negative)."""
    import random

    import numpy as np

    from rag.citations import split_sentences

    data = json.loads(Path(pqal_path).read_text(encoding="utf-8"))
    items = list(data.values())
    abstracts = [" ".join(item["CONTEXTS"]) for item in items]
    others = list(range(len(items)))
    random.Random(seed).shuffle(others)
    vectors = scorer.embedder.encode(abstracts)
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -np.inf)
    pos, neg, hard = [], [], []
    for i, item in enumerate(items):
        j = others[i] if others[i] != i else (i + 1) % len(items)
        claims = split_sentences(item["LONG_ANSWER"])
        scores = scorer.score_matrix(claims, [abstracts[i], abstracts[j], abstracts[int(np.argmax(similar[i]))]])
        pos.extend(s[0].score for s in scores)
        neg.extend(s[1].score for s in scores)
        hard.extend(s[2].score for s in scores)
    pos_a, neg_a, hard_a = np.asarray(pos), np.asarray(neg), np.asarray(hard)
    supported = float(np.percentile(neg_a, 95))  # at most 5% of mismatched citations pass as supported
    weak = float(np.percentile(neg_a, 80))
    rate = lambda values, threshold: round(float(np.mean(values >= threshold)), 3)  # noqa: E731
    return {"claims": len(pos), "auc": round(roc_auc(pos, neg), 4), "auc_hard": round(roc_auc(pos, hard), 4),
            "supported_threshold": round(supported, 3), "weak_threshold": round(weak, 3),
            "tpr_at_supported": rate(pos_a, supported), "tpr_at_weak": rate(pos_a, weak),
            "fpr_at_weak": rate(neg_a, weak), "hard_fpr_at_supported": rate(hard_a, supported),
            "hard_fpr_at_weak": rate(hard_a, weak)}


def calibrate_abstention(asker, questions: list[Question], k: int = 5) -> dict:
    """Best question-evidence similarity with each question's gold abstracts kept vs removed from retrieval."""
    import numpy as np

    from rag.retrieve import Filters

    kept, removed = [], []
    for q in questions:
        for target, filters in ((kept, Filters()), (removed, Filters(exclude_pmids=q.gold))):
            target.append(asker._relevance(q.text, asker.retriever.search(q.text, k, filters)))
    out = {"questions": len(questions), "auc_kept_vs_removed": round(roc_auc(kept, removed), 4)}
    for threshold in (0.3, 0.4, 0.5, 0.6):
        out[f"abstain_rate@{threshold}"] = {"gold_kept": round(float(np.mean(np.asarray(kept) < threshold)), 3),
                                            "gold_removed": round(float(np.mean(np.asarray(removed) < threshold)), 3)}
    return out

"""Evaluation harness: retrieval (recall@k, nDCG@10, MRR) and yes/no/maybe QA on BioASQ and PubMedQA files.

Data files are taken by path, so other splits in the same formats work too.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
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


_ROUGE_TOKENIZER = None
_ROUGE2 = None


def _rouge_tokens(text: str) -> list[str]:
    """ROUGE's own tokenisation (lower case, alphanumeric, Porter-stemmed), from the ``rouge-score`` package;
    the package has no ROUGE-SU4, which is counted here on its tokens."""
    global _ROUGE_TOKENIZER
    if _ROUGE_TOKENIZER is None:
        from rouge_score.tokenizers import DefaultTokenizer

        _ROUGE_TOKENIZER = DefaultTokenizer(use_stemmer=True)
    return _ROUGE_TOKENIZER.tokenize(text)


def _su4_grams(tokens: list[str]) -> Counter:
    """Unigrams plus skip-bigrams with at most 4 words between them (ROUGE-SU4)."""
    grams: Counter = Counter((t,) for t in tokens)
    for i, first in enumerate(tokens):
        for second in tokens[i + 1 : i + 6]:
            grams[(first, second)] += 1
    return grams


def _f1(candidate: Counter, reference: Counter) -> float:
    overlap = sum((candidate & reference).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(candidate.values()), overlap / sum(reference.values())
    return 2 * precision * recall / (precision + recall)


def rouge(candidate: str, references: list[str]) -> dict[str, float]:
    """ROUGE-2 and ROUGE-SU4 F1 of ``candidate``, best over ``references`` (as BioASQ scores ideal answers)."""
    global _ROUGE2
    if _ROUGE2 is None:
        from rouge_score.rouge_scorer import RougeScorer

        _ROUGE2 = RougeScorer(["rouge2"], use_stemmer=True)
    cand = _su4_grams(_rouge_tokens(candidate))
    best = {"rouge2": 0.0, "su4": 0.0}
    for ref in references:
        best["rouge2"] = max(best["rouge2"], _ROUGE2.score(ref, candidate)["rouge2"].fmeasure)
        best["su4"] = max(best["su4"], _f1(cand, _su4_grams(_rouge_tokens(ref))))
    return best


def markdown_table(results: dict[str, dict[str, float]]) -> str:
    metrics = list(next(iter(results.values())))
    lines = ["| retriever | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, values in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.3f}" for m in metrics) + " |")
    return "\n".join(lines)


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


def calibrate_support(pqal_path: Path, scorer, seed: int = 0, n: int = 0) -> dict:
    """Each PubMedQA conclusion sentence scored against its own abstract (positive), a random other one (easy
    negative, which sets the thresholds) and the other abstract most similar to its own (hard, on-topic negative).

    Scores are ``Support.strength`` (the verifier's P(supported), or the similarity); ``verdicts`` counts the
    labels given in each case. ``n``: only N items, evenly spaced."""
    import random
    from collections import Counter

    import numpy as np

    from rag.citations import split_sentences

    data = json.loads(Path(pqal_path).read_text(encoding="utf-8"))
    items = list(data.values())
    if n and n < len(items):
        items = [items[i * len(items) // n] for i in range(n)]
    abstracts = [" ".join(item["CONTEXTS"]) for item in items]
    others = list(range(len(items)))
    random.Random(seed).shuffle(others)
    vectors = scorer.embedder.encode(abstracts)
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -np.inf)
    pos, neg, hard = [], [], []
    verdicts: dict[str, Counter] = {"own": Counter(), "random": Counter(), "on_topic": Counter()}
    for i, item in enumerate(items):
        j = others[i] if others[i] != i else (i + 1) % len(items)
        claims = split_sentences(item["LONG_ANSWER"])
        scores = scorer.score_matrix(claims, [abstracts[i], abstracts[j], abstracts[int(np.argmax(similar[i]))]])
        pos.extend(s[0].strength for s in scores)
        neg.extend(s[1].strength for s in scores)
        hard.extend(s[2].strength for s in scores)
        for s in scores:
            for case, support in zip(verdicts, s, strict=True):
                verdicts[case][support.label] += 1
    pos_a, neg_a, hard_a = np.asarray(pos), np.asarray(neg), np.asarray(hard)
    supported = float(np.percentile(neg_a, 95))  # at most 5% of mismatched citations pass as supported
    weak = float(np.percentile(neg_a, 80))
    rate = lambda values, threshold: round(float(np.mean(values >= threshold)), 3)  # noqa: E731
    return {"claims": len(pos), "auc": round(roc_auc(pos, neg), 4), "auc_hard": round(roc_auc(pos, hard), 4),
            "supported_threshold": round(supported, 3), "weak_threshold": round(weak, 3),
            "tpr_at_supported": rate(pos_a, supported), "tpr_at_weak": rate(pos_a, weak),
            "fpr_at_weak": rate(neg_a, weak), "hard_fpr_at_supported": rate(hard_a, supported),
            "hard_fpr_at_weak": rate(hard_a, weak), "verdicts": {k: dict(v) for k, v in verdicts.items()}}


def calibrate_abstention(asker, questions: list[Question], k: int = 5) -> dict:
    """Best question-evidence similarity with each question's gold abstracts kept vs removed from retrieval."""
    import numpy as np

    from rag.retrieve import Filters

    kept, removed = [], []
    for q in questions:
        for target, filters in ((kept, Filters()), (removed, Filters(exclude_pmids=q.gold))):
            target.append(asker.relevance(q.text, asker.retriever.search(q.text, k, filters)))
    out = {"questions": len(questions), "auc_kept_vs_removed": round(roc_auc(kept, removed), 4)}
    for threshold in (0.3, 0.4, 0.5, 0.6):
        out[f"abstain_rate@{threshold}"] = {"gold_kept": round(float(np.mean(np.asarray(kept) < threshold)), 3),
                                            "gold_removed": round(float(np.mean(np.asarray(removed) < threshold)), 3)}
    return out


ANSWER_SETTINGS = ("default", "findings-only", "generated", "lead")


def evaluate_answers(asker, questions: list[dict], settings: Iterable[str] = ANSWER_SETTINGS,
                     progress: Callable[[int], None] | None = None) -> dict:
    """Answers to BioASQ questions (``bioasq_answer_questions``) scored against the experts' ideal answers.

    Settings, each over the same questions and the same retrieved evidence (top ``retrieval.k``):
    ``default`` (key findings and the checked bottom line), ``findings-only`` (no generation), ``generated`` (the
    previous design: the model writes the answer from the passages) and ``lead`` (the first sentence of each of the
    top 3 records). The scored text is ``Answer.summary(answer.summary_findings)``; for ``generated`` the verified
    sentences, for ``lead`` the 3 sentences.

    Per setting: ROUGE-2 and ROUGE-SU4 F1 (best over the references), abstention when a gold document is among the
    evidence, the share of shown sentences that echo the question, bottom-line survival and drop reasons, latency.
    """
    import time

    import numpy as np

    from rag.bottom_line import echo_detail
    from rag.findings import abstract_sentences

    n_summary = asker.settings.answer.summary_findings
    threshold = asker.settings.answer.echo_threshold
    rows: dict[str, list[dict]] = {s: [] for s in settings}
    for q in questions:
        for setting in settings:
            started = time.perf_counter()
            if setting == "lead":
                evidence = asker.retriever.search(q["body"], asker.settings.retrieval.k)
                firsts = [abstract_sentences([tuple(s) for s in e.sections] or [("", "", e.abstract)]) for e in evidence]
                shown = [s[0].text for s in firsts[:3] if s]
                text, answer = " ".join(shown), None
            else:
                kwargs = {"generated": {"mode": "generated"}, "findings-only": {"bottom_line": False}}.get(setting, {})
                answer = asker.ask(q["body"], **kwargs)
                evidence = answer.evidence
                text = answer.summary(0 if setting == "generated" else n_summary)
                shown = [s.text for s in answer.bottom_line] + [x for f in answer.findings for x in f.sentences]
            elapsed = time.perf_counter() - started
            gold_in = bool(set(q["gold"]) & {e.pmid for e in evidence})
            scores = rouge(text, q["ideal"]) if text else {"rouge2": 0.0, "su4": 0.0}
            echoes = [s for s in shown if echo_detail(q["body"], s, asker.embedder, threshold)]
            row = {"id": q["id"], "task": q["task"], "type": q["type"], "text": text, **scores, "seconds": elapsed,
                   "gold_in_evidence": gold_in, "abstained": bool(answer and answer.abstained),
                   "shown_sentences": len(shown), "echoes": echoes}
            if answer is not None:
                row.update(bottom_line=[s.text for s in answer.bottom_line], abstain_reason=answer.abstain_reason,
                           dropped=[(d.text, d.reason) for d in answer.dropped], pmids=[e.pmid for e in evidence],
                           findings=[f.model_dump(include={"number", "pmid", "sentences", "design", "year",
                                                           "sample_size", "section"}) for f in answer.findings])
            rows[setting].append(row)
        if progress:
            progress(1)
    out: dict = {}
    for setting, rs in rows.items():
        with_gold = [r for r in rs if r["gold_in_evidence"]]
        shown = sum(r["shown_sentences"] for r in rs)
        summary = {
            "n": len(rs),
            "rouge2": round(float(np.mean([r["rouge2"] for r in rs])), 4),
            "su4": round(float(np.mean([r["su4"] for r in rs])), 4),
            "abstained_with_gold": round(sum(r["abstained"] for r in with_gold) / max(1, len(with_gold)), 4),
            "gold_in_evidence": len(with_gold),
            "echo_share": round(sum(len(r["echoes"]) for r in rs) / max(1, shown), 4),
            "p50_s": round(float(np.median([r["seconds"] for r in rs])), 3),
        }
        if setting == "default":
            generated = [r for r in rs if not r["abstained"]]
            summary["bottom_line_survival"] = round(
                sum(bool(r["bottom_line"]) for r in generated) / max(1, len(generated)), 4)
            summary["drop_reasons"] = dict(Counter(reason for r in rs for _, reason in r["dropped"]).most_common())
        out[setting] = {**summary, "per_question": rs}
    return out


def answers_table(results: dict) -> str:
    """A markdown table of ``evaluate_answers``' summaries."""
    lines = ["| setting | n | ROUGE-2 | ROUGE-SU4 | abstained with gold evidence | echo share | bottom line survival "
             "| p50 |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        survival = f"{r['bottom_line_survival']:.1%}" if "bottom_line_survival" in r else "-"
        lines.append(f"| {name} | {r['n']} | {r['rouge2']:.4f} | {r['su4']:.4f} | {r['abstained_with_gold']:.1%} "
                     f"({r['gold_in_evidence']} with gold) | {r['echo_share']:.1%} | {survival} | {r['p50_s']:.2f} s |")
    reasons = next((r["drop_reasons"] for r in results.values() if "drop_reasons" in r), None)
    if reasons is not None:
        lines.append("")
        lines.append("Dropped bottom-line sentences by reason: "
                     + (", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"))
    return "\n".join(lines)

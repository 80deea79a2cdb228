"""Read a (redacted) case with medspaCy: sections, concepts, and ConText's negated, historical, family, hypothetical
and uncertain mentions; vitals and labs through the reference-range table.

The pipeline is ``spacy.blank("en")`` (no model download): a sentencizer, a phrase matcher over the vocabulary's
phrases, medspaCy's ConText and sectionizer.
"""

from __future__ import annotations

import logging
import re
import warnings
from functools import cached_property

from pubmed_rag.types import CaseMention
from rag.case.measurements import read_measurements
from rag.case.vocabulary import Concept, Vocabulary

# Phrases that are words of ordinary English more often than findings in case text.
_AMBIGUOUS = frozenset({"all", "mass", "lesion", "lesions", "ms", "hf", "sob", "abnormality", "normal", "eye",
                        "tumor", "tumour", "nevus", "falls", "fall", "mania", "spasm"})


class CaseReader:
    """Turns case text into ``CaseMention``s; build once, read many cases (the vocabulary's matcher takes ~1 s)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    @cached_property
    def nlp(self):
        import spacy
        from spacy.matcher import PhraseMatcher
        from spacy.tokens import Span
        from spacy.util import filter_spans

        for name in ("medspacy", "PyRuSH"):  # medspaCy's components log at import and on every document
            logging.getLogger(name).setLevel(logging.WARNING)
        import medspacy  # noqa: F401 - registers the medspacy_* factories

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        phrases = [p for p in self.vocabulary.phrases if p not in _AMBIGUOUS]
        for start in range(0, len(phrases), 5000):
            batch = phrases[start:start + 5000]
            for phrase, doc in zip(batch, nlp.tokenizer.pipe(batch), strict=True):
                matcher.add(self.vocabulary.phrases[phrase], [doc])
        if not Span.has_extension("concept_id"):
            Span.set_extension("concept_id", default="")

        @spacy.Language.component("case_concepts")
        def case_concepts(doc):
            spans = []
            for match_id, start, end in matcher(doc):
                cid = nlp.vocab.strings[match_id]
                span = Span(doc, start, end, label=self.vocabulary.concepts[cid].kind.upper())
                span._.concept_id = cid
                spans.append(span)
            doc.ents = filter_spans(spans)  # the longest match wins: "chest pain" over "pain"
            return doc

        nlp.add_pipe("case_concepts")
        nlp.add_pipe("medspacy_context")
        nlp.add_pipe("medspacy_sectionizer")
        return nlp

    def read(self, text: str, adult: bool = True) -> list[CaseMention]:
        """Every concept mention in ``text`` (negated ones included, flagged), in reading order."""
        with warnings.catch_warnings():  # medspaCy's sectionizer keeps an empty matcher; spaCy warns on every doc
            warnings.filterwarnings("ignore", message=r"\[W036\]")
            doc = self.nlp(text)
        mentions = [self._mention(ent) for ent in doc.ents]
        for match in _WEIGHT_LOSS.finditer(text):  # "He has lost a total of 25 pounds."
            concept = self._named("Weight loss")
            if concept is not None:
                mentions.append(CaseMention(concept=concept.name, concept_id=concept.id, kind="finding",
                                            source="HPO via synonym table", words=match.group(0), start=match.start(),
                                            **_context_at(doc, match.start())))
        for m in read_measurements(text, adult):
            if not m.finding:
                continue
            concept = self._named(m.finding)
            if concept is None:
                continue
            context = _context_at(doc, m.start)
            mentions.append(CaseMention(concept=concept.name, concept_id=concept.id, kind="measurement",
                                        source="reference ranges", words=m.words, start=m.start,
                                        detail=f"{m.rule} ({m.source})", **context))
        return sorted(mentions, key=lambda m: m.start)

    def _named(self, name: str) -> Concept | None:
        cid = self.vocabulary.phrases.get(name.lower())
        return self.vocabulary.concepts.get(cid) if cid else None

    def _mention(self, ent) -> CaseMention:
        concept = self.vocabulary.concepts[ent._.concept_id]
        flags = _flags(ent)
        if _NON_PREFIX.search(ent.doc.text[max(0, ent.start_char - 4):ent.start_char]):
            flags["negated"] = True  # "non-palpable purpura" is not palpable purpura
        return CaseMention(concept=concept.name, concept_id=concept.id, kind=concept.kind, source=concept.source,
                           words=ent.text, start=ent.start_char, section=_section(ent), **flags)


_NON_PREFIX = re.compile(r"\bnon-?\s?$", re.I)
_INFORMANT = re.compile(r"\bby (?:his|her|the|their) (?:parents?|family|mother|father|wife|husband|daughter|son)\b|"
                        r"\b(?:parents?|family(?: members?)?|mother|father|daughter|son|wife|husband|friends?)\s+"
                        r"(?:reports?|says?|tells?|states?|recalls?|notes?|noticed|brought|describes?)\b", re.I)
_ABOUT_TREATMENT = re.compile(r"^\s*(?:medications?|treatment|therapy|drugs?|control|regimen|diet|education)\b", re.I)
_CATEGORY_FLAG = {"NEGATED_EXISTENCE": "negated", "HISTORICAL": "historical", "FAMILY": "family",
                  "HYPOTHETICAL": "hypothetical", "POSSIBLE_EXISTENCE": "uncertain"}
_SECTION_FLAG = {"family_history": "family", "past_medical_history": "historical", "past_surgical_history": "historical"}


def _flags(ent) -> dict[str, bool]:
    """ConText's modifiers, less the cues that case narratives trip: a relative who reports ("his parents report"),
    "free" without "of" ("free intraperitoneal fluid"), a negation of the treatment rather than the condition ("not
    compliant with her diabetes medication"); the section a mention sits in adds its own (family history)."""
    flags = dict.fromkeys(_CATEGORY_FLAG.values(), False)
    doc, sentence = ent.doc, ent.sent.text
    after = doc.text[ent.end_char:ent.end_char + 30]
    for modifier in ent._.modifiers:
        start, end = modifier.modifier_span
        cue = doc[start:end].text.lower()
        flag = _CATEGORY_FLAG.get(modifier.category)
        if flag is None:
            continue
        if flag == "negated" and ((cue == "free" and (end >= len(doc) or doc[end].lower_ != "of"))
                                  or _ABOUT_TREATMENT.search(after)):
            continue
        if flag == "family" and _INFORMANT.search(sentence):
            continue
        flags[flag] = True
    section = _SECTION_FLAG.get(_section(ent))
    if section:
        flags[section] = True
    return flags


def _section(ent) -> str:
    category = getattr(ent._, "section_category", None)
    return category or ""


_WEIGHT_LOSS = re.compile(r"\blost (?:a total of |about |over |nearly )?\d+(?:\.\d+)? ?(?:pounds|lbs?|kg|kilograms?)\b",
                          re.I)
_NEGATION_BEFORE = re.compile(r"\b(no|not|denies|denied|without|negative for|absence of|free of)\b[^.;]{0,40}$", re.I)


def _context_at(doc, start: int) -> dict[str, bool]:
    """ConText flags for a measurement: a negation cue shortly before it in its sentence ("no fever, T 37.2")."""
    sentence = next((s for s in doc.sents if s.start_char <= start < s.end_char), None)
    before = sentence.text[: start - sentence.start_char] if sentence is not None else ""
    return dict(negated=bool(_NEGATION_BEFORE.search(before)), historical=False, family=False, hypothetical=False,
                uncertain=False)

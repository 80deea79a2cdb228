"""Synthetic contradictions of real findings: a conclusion's finding sentence with its direction word swapped or a
negation removed or added. ``eval verify --pubmedqa-checks`` reports how the scorers read them; the reranker's
training uses ``finding_sentence`` to pick a conclusion's finding."""

from __future__ import annotations

import random
import re

from pubmed_rag.sentences import split_sentences
from rag.agreement import ANTONYMS

_RECOMMENDATION = re.compile(r"\b(needed|warranted|should|must|recommend\w*|future|further (?:research|studies|stud"
                             r"y|investigation|trials?))\b", re.I)
_NEGATIONS = (  # (pattern, replacement): removing a negation
    (re.compile(r"\b(is|are|was|were|does|did|do|has|have|had|can|could|will|would|may|might|should) not\b", re.I),
     r"\1"),
    (re.compile(r"\bno (significant |statistically significant )?(difference|effect|association|change|"
                r"correlation|benefit|improvement|increase|reduction|relationship)", re.I), r"a \1\2"),
    (re.compile(r"\bnot (associated|related|correlated|different|effective|significant|superior|inferior|"
                r"predictive|affected|improved|reduced|increased)\b", re.I), r"\1"),
    (re.compile(r"\bfail(?:s|ed)? to\b", re.I), "managed to"),
    (re.compile(r"\bwithout\b", re.I), "with"),
)
_AUX = re.compile(r"\b(is|are|was|were|does|did|has|have|had|can|could|will|may|might)\b(?! not\b)")


def finding_sentence(conclusion: str) -> str | None:
    """The first sentence of a conclusion that states a finding (not "further studies are needed")."""
    found = [s for s in split_sentences(conclusion) if not _RECOMMENDATION.search(s)]
    return found[0] if found else None


def _case_like(word: str, model: str) -> str:
    return word.capitalize() if model[:1].isupper() else word


def contradict(sentence: str, rng: random.Random) -> tuple[str, str] | None:
    """``(contradicting sentence, kind)``: a direction/comparator word swapped, or a negation removed or added;
    ``None`` when no edit applies."""
    options: list[tuple[str, str]] = []
    words = re.finditer(r"[A-Za-z]+(?:-[a-z]+)?", sentence)
    for m in words:
        swap = ANTONYMS.get(m.group(0).lower())
        if swap:
            options.append((sentence[:m.start()] + _case_like(swap, m.group(0)) + sentence[m.end():], "direction"))
            break
    for pattern, replacement in _NEGATIONS:
        if pattern.search(sentence):
            options.append((pattern.sub(replacement, sentence, count=1), "negation-removed"))
            break
    else:
        aux = _AUX.search(sentence)
        if aux:
            options.append((sentence[:aux.end()] + " not" + sentence[aux.end():], "negation-added"))
    options = [(text, kind) for text, kind in options if text != sentence]
    return rng.choice(options) if options else None

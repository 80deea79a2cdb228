"""Agreement rules between a claim and the evidence sentence it cites: negation, numbers and direction.

Embedding similarity measures topic, not agreement: "reduced exacerbations" and "did not reduce exacerbations" are
near neighbours. These rules see what cosine similarity cannot; each returns the reason in words, or ``None``.
"""

from __future__ import annotations

import re

from rag.citations import strip_markers

_NEGATION = re.compile(
    r"\b(?:not|no|never|neither|nor|without|none|cannot|fail(?:s|ed)? to|unable to|absence of|lack of|"
    r"(?:is|are|was|were|do|does|did|has|have|had|could|would|should|ca|wo)n['’]t)\b",
    re.I,
)
# Numbers as written: 1,277 / 0.05 / 95% / -3.2. Digits glued to a name ("COVID-19", "IL-6", "CD133") are not
# numbers; a citation marker is removed before reading them.
_NUMBER = re.compile(r"(?<![\w.,\-−])(?:(?<=\s)[-−])?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w-])"
                     r"|(?<![\w.,\-−])(?:(?<=\s)[-−])?\d+(?:\.\d+)?(?![\w-])")
_MEASUREMENT = re.compile(r"(?<![\w.,\-−])\d+\.\d+(?![\w-])|(?<![\w.,\-−])\d+(?:\.\d+)?(?=\s?%)")
# Opposite directions of an effect. A claim using one side while its evidence uses only the other disagrees.
_DIRECTIONS = (
    ({"increase", "increased", "increases", "increasing", "higher", "greater", "raised", "elevated", "rise", "rises",
      "rose"},
     {"decrease", "decreased", "decreases", "decreasing", "lower", "reduced", "reduces", "reduce", "reduction",
      "declined", "declines", "fall", "fell", "falls"}),
    ({"superior"}, {"inferior"}),
    ({"improved", "improves", "improve", "improvement", "better", "beneficial"},
     {"worsened", "worsens", "worse", "harmful", "deteriorated"}),
    ({"longer"}, {"shorter"}),
    ({"positively", "positive"}, {"negatively", "negative", "inversely", "inverse"}),
    ({"effective", "efficacious"}, {"ineffective"}),
)
# Swaps that turn a finding into its opposite: the synthetic contradictions the verifier trains on use these.
ANTONYMS: dict[str, str] = {
    "increased": "decreased", "decreased": "increased", "increase": "decrease", "decrease": "increase",
    "increases": "decreases", "decreases": "increases", "higher": "lower", "lower": "higher",
    "greater": "smaller", "smaller": "greater", "more": "less", "less": "more", "reduced": "increased",
    "reduces": "increases", "reduce": "increase", "superior": "inferior", "inferior": "superior",
    "noninferior": "inferior", "non-inferior": "inferior", "improved": "worsened", "worsened": "improved",
    "better": "worse", "worse": "better", "longer": "shorter", "shorter": "longer", "positively": "negatively",
    "negatively": "positively", "positive": "negative", "negative": "positive", "effective": "ineffective",
    "ineffective": "effective", "safe": "unsafe", "beneficial": "harmful", "harmful": "beneficial",
    "elevated": "reduced", "protective": "harmful", "earlier": "later", "later": "earlier",
}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+(?:\.\d+)?")
# Words a negation can pass over before reaching what it negates ("did not significantly reduce").
_SKIP = frozenset("a an the any be been being is are was were do does did have has had significantly statistically "
                  "significant substantially clearly further also always appear appears appeared seem seems seemed "
                  "to of in on for with".split())
_QUANTIFIERS = frozenset({"no", "none", "without", "absence of", "lack of", "neither", "nor"})
_EFFECT_STEMS = frozenset("diffe effec assoc chang corre benef impro incre decre reduc relat evide impac influ advan "
                          "risk harm super infer predi prote link signi".split())
_SUFFIX = re.compile(r"(?:ations?|ing|ed|es|s|ly|ions?|ity)$")


def negated(text: str) -> bool:
    """Whether ``text`` states something negatively ("did not reduce", "no difference", "failed to")."""
    return bool(_NEGATION.search(strip_markers(text)))


def numbers(text: str) -> set[str]:
    """The numbers ``text`` states, normalised (``1,277`` -> ``1277``, ``0.50`` -> ``0.5``); markers excluded."""
    out = set()
    for raw in _NUMBER.findall(strip_markers(text)):
        value = raw.replace(",", "").replace("−", "-")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        out.add(value)
    return out


def polarity_reason(claim: str, evidence: str) -> str | None:
    """Reason when one of the two negates what the other affirms.

    It fires when a word the negation governs in one ("did not *reduce*", "no *difference*") appears without a
    negation in the other, or when their negation differs and the claim's other content words all appear in the
    evidence (the same statement, negated)."""
    claim_neg, evidence_neg = negated(claim), negated(evidence)
    if claim_neg == evidence_neg:
        return None
    negative, positive = (claim, evidence) if claim_neg else (evidence, claim)
    where_neg, where_pos = ("the claim", "the abstract") if claim_neg else ("the abstract", "the claim")
    governed = _governed(negative)
    for word in _WORD.findall(strip_markers(positive).lower()):
        if _stem(word) in governed:
            phrase = governed[_stem(word)]
            return f"polarity disagrees: {phrase!r} in {where_neg}, {word!r} in {where_pos}"
    claim_words = _content(_NEGATION.sub(" ", claim))
    if len(claim_words) >= 3 and claim_words <= _content(_NEGATION.sub(" ", evidence)):
        return f"polarity disagrees: {where_neg} is negated ({_first_negation(negative)!r}), {where_pos} is not"
    return None


def numbers_reason(claim: str, evidence: str) -> str | None:
    """Reason when the claim states a number that the evidence does not."""
    missing = sorted(numbers(claim) - numbers(evidence))
    return f"numbers not in the evidence: {', '.join(missing)}" if missing else None


def number_conflict_reason(claim: str, evidence: str, context: str = "") -> str | None:
    """Reason when the claim reports a measurement (a percentage or a decimal) that neither ``evidence`` nor
    ``context`` (e.g. the whole abstract) states while ``evidence`` reports measurements of its own: the claim changed
    a figure. Counts, years and reference numbers are left alone; too many legitimate claims round or add them."""
    own = _measurements(evidence)
    missing = sorted(_measurements(claim) - numbers(evidence) - numbers(context))
    if not missing or not own - numbers(claim):
        return None
    shown = ", ".join(sorted(own - numbers(claim))[:3])
    return f"numbers disagree: {', '.join(missing)} in the claim, {shown} in the abstract"


def direction_reason(claim: str, evidence: str) -> str | None:
    """Reason when the claim's direction words are all of the side opposite to the evidence's."""
    claim_words = set(_WORD.findall(strip_markers(claim).lower()))
    evidence_words = set(_WORD.findall(strip_markers(evidence).lower()))
    for a, b in (("noninferior", "inferior"), ("non-inferior", "inferior")):
        if a in claim_words and b in evidence_words and a not in evidence_words:
            return f"direction disagrees: {b!r} in the abstract, {a!r} in the claim"
        if b in claim_words and a in evidence_words and b not in evidence_words:
            return f"direction disagrees: {a!r} in the abstract, {b!r} in the claim"
    for up, down in _DIRECTIONS:
        c_up, c_down = claim_words & up, claim_words & down
        e_up, e_down = evidence_words & up, evidence_words & down
        if c_up and not c_down and e_down and not e_up:
            return f"direction disagrees: {sorted(e_down)[0]!r} in the abstract, {sorted(c_up)[0]!r} in the claim"
        if c_down and not c_up and e_up and not e_down:
            return f"direction disagrees: {sorted(e_up)[0]!r} in the abstract, {sorted(c_down)[0]!r} in the claim"
    return None


def disagreement(claim: str, evidence: str, context: str = "") -> tuple[str, str] | None:
    """The first rule that finds ``evidence`` contradicting ``claim``: ``(rule, reason)`` with rule one of
    ``direction``, ``polarity``, ``numbers``; ``context`` is the rest of the abstract (for numbers)."""
    for rule, reason in (("direction", direction_reason(claim, evidence)),
                         ("polarity", polarity_reason(claim, evidence)),
                         ("numbers", number_conflict_reason(claim, evidence, context))):
        if reason:
            return rule, reason
    return None


def _measurements(text: str) -> set[str]:
    """Percentages and decimals, normalised as ``numbers`` does."""
    found = _MEASUREMENT.findall(strip_markers(text))
    return {n for n in numbers(" ".join(found))}


def _first_negation(text: str) -> str:
    match = _NEGATION.search(strip_markers(text))
    return match.group(0) if match else ""


def _stem(word: str) -> str:
    """A crude stem: the first five letters once a suffix is removed ("reduced", "reduction" -> "reduc")."""
    return _SUFFIX.sub("", word).rstrip("e")[:5] if len(word) > 4 else word


def _content(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(strip_markers(text).lower()) if w not in _SKIP and len(w) > 2}


def _governed(text: str) -> dict[str, str]:
    """``{stem: phrase}`` for the first content word after each negation cue ("not significantly *reduce*"). After a
    quantifier ("no", "without", "lack of") only effect words count: "no *difference*", but not "no *patients*"."""
    out: dict[str, str] = {}
    text = strip_markers(text)
    for match in _NEGATION.finditer(text):
        quantifier = match.group(0).lower() in _QUANTIFIERS
        for word in _WORD.findall(text[match.end():].lower())[:4]:
            if word in _SKIP or _NEGATION.fullmatch(word):
                continue
            if not quantifier or _stem(word) in _EFFECT_STEMS:
                out.setdefault(_stem(word), f"{match.group(0)} {word}")
            break
    return out


def negation_cue(text: str) -> str:
    """The first negation in ``text`` ("did not", "no"), or ``""``."""
    return _first_negation(text)

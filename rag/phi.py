"""Redact protected health information from a question or a case before anything else reads it.

Covers the HIPAA Safe Harbor identifiers that appear in free text: names (after honorifics, "patient", "named",
"Name:", a relative's role, or opening a sentence that gives an age: "John Smith is a 58-year-old"), towns and
cities (where someone lives; before a state and ZIP code), dates more specific than a year, phone and fax numbers,
emails, URLs, IP addresses, social security, medical record, health plan, account and other ID numbers, street
addresses, ZIP codes, and ages over 89. Rule-based: it errs towards redacting, and what was redacted is reported.
"""

from __future__ import annotations

import re

from pubmed_rag.types import Redaction

_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
           r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_NAME = r"[A-Z][a-z'’-]+(?:\s+[A-Z]\.)?(?:\s+[A-Z][a-z'’-]+)?"

US_STATES = ("Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho "
             "Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota "
             "Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah "
             "Vermont Virginia Washington Wisconsin Wyoming").split()

# (kind, pattern); order matters: specific before generic. A pattern with a group named ``v`` replaces only it.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")),
    ("url", re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I)),
    ("ip address", re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")),
    ("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("id number", re.compile(
        r"\b(?:MRN|MR#|med rec|medical record(?: number)?|record|chart|account|acct|member|policy|plan|license|licence|ID|"
        r"patient id|case|device|serial)\s*(?:no\.?|number|#)?\s*[:#]?\s*[A-Z0-9-]*\d[A-Z0-9-]{2,}\b", re.I)),
    ("date", re.compile(
        rf"\b(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{4}}-\d{{2}}-\d{{2}}|"
        rf"{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?"
        rf"{_MONTHS}\.?(?:,?\s+\d{{4}})?)\b", re.I)),
    ("phone/fax", re.compile(r"(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{3}\)|\b\d{3})[\s.-]?\d{3}[\s.-]?\d{4}\b")),
    ("street address", re.compile(
        r"\b\d{1,6}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|"
        r"Court|Ct|Way|Place|Pl|Terrace|Highway|Hwy)\b\.?")),
    ("zip code", re.compile(r"\b[A-Z]{2}\s+\d{5}(?:-\d{4})?\b")),
    ("age over 89", re.compile(
        r"\b(?:9\d|1[0-2]\d)(?=\s*-?\s*(?:years?|yrs?|y/?o)\b)|\b(?:age[sd]?|aged)\s+(?:9\d|1[0-2]\d)\b", re.I)),
    ("name", re.compile(rf"\b(?:patient name|name|pt name)\s*[:=]\s*(?P<v>{_NAME})", re.I)),
    ("name", re.compile(rf"(?:^|(?<=[.!?]\s))(?P<v>{_NAME})(?=,?\s+(?:is\s+)?(?:an?\s+)?\d{{1,3}}[\s-]*(?:year|month|week)s?"
                        rf"[\s-]*old\b)")),
    ("name", re.compile(rf"\b(?:[Hh]is|[Hh]er|[Tt]heir|[Tt]he patient's)\s+(?:wife|husband|partner|son|daughter|"
                        rf"mother|father|brother|sister|friend|caregiver|guardian),?\s+(?P<v>{_NAME})\b")),
    ("location", re.compile(r"\b(?:lives|living|resides|residing|resident|native|born)\s+(?:in|of|at)\s+"
                            r"(?P<v>(?!(?:" + "|".join(US_STATES) + r")\b)[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)")),
    ("location", re.compile(r"(?P<v>\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?),\s+(?=[A-Z]{2}\s+\d{5}|\[ZIP CODE\])")),
    ("name", re.compile(rf"(?:(?<=\bMr\. )|(?<=\bMrs\. )|(?<=\bMs\. )|(?<=\bDr\. )|(?<=\bMr )|(?<=\bMrs )|"
                        rf"(?<=\bMs )|(?<=\bDr )|(?<=\bpatient )|(?<=\bnamed )|(?<=\bPatient ))({_NAME})")),
]


def redact(text: str) -> tuple[str, list[Redaction]]:
    """Return ``text`` with identifiers replaced by ``[KIND]`` markers, and what was replaced."""
    found: list[Redaction] = []
    for kind, pattern in _RULES:
        def repl(match: re.Match[str], kind: str = kind) -> str:
            whole = match.group(0)
            named = "v" in match.re.groupindex
            value = match.group("v") if named else whole
            if kind == "name" and value.split()[0].lower() in _NOT_NAMES:
                return whole
            found.append(Redaction(kind=kind, text=value))
            if not named:
                return f"[{kind.upper()}]"
            start, end = match.start("v") - match.start(), match.end("v") - match.start()
            return whole[:start] + f"[{kind.upper()}]" + whole[end:]

        text = pattern.sub(repl, text)
    return text, found


# Capitalised words that follow "patient" without being names.
_NOT_NAMES = {"with", "who", "has", "had", "is", "was", "presenting", "aged", "age", "and", "in", "on", "for",
              "from", "at", "the", "a", "an", "after", "before", "records", "outcomes"}

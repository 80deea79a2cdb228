"""Split an answer into sentences and read its ``[n]`` citation markers."""

from __future__ import annotations

import re

_MARKER = re.compile(r"\[(\d+(?:\s*[-,–]\s*\d+)*)\]")
_LEADING = re.compile(r"^((?:\[\d+(?:\s*[-,–]\s*\d+)*\]\s*)+)(.*)$", re.S)
# A sentence ends at . ! ? followed by space and a capital, digit, bracket or quote, except after abbreviations that
# abstracts use mid-sentence ("34.4% vs. 31.1%", "Smith et al. 2019", "e.g. 3 mg").
_SPLIT = re.compile(
    r"(?<!\bvs\.)(?<!\bv\.)(?<!\bal\.)(?<!\bapprox\.)(?<!\bca\.)(?<!\bFig\.)(?<!\bfig\.)(?<!\bNo\.)"
    r"(?<!\bno\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bg\.)(?<!\be\.)(?<!\bresp\.)(?<!\bref\.)"
    r"(?<=[.!?])\s+(?=[\[A-Z0-9(\"'])"
)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; a run of bare markers ("[2][3].") joins the sentence before it."""
    out: list[str] = []
    for part in _SPLIT.split(text.strip()):
        part = part.strip()
        lead = _LEADING.match(part)
        if out and lead:  # markers written after the full stop belong to the sentence before
            out[-1] = f"{out[-1]} {lead.group(1).strip()}"
            part = lead.group(2).strip(" .;,") and lead.group(2).strip()
        if part:
            out.append(part)
    return out


def markers(sentence: str) -> list[int]:
    """Cited numbers in order of appearance: ``[1]``, ``[1, 2]``, ``[1-3]``."""
    numbers: list[int] = []
    for group in _MARKER.findall(sentence):
        for piece in re.split(r"\s*,\s*", group):
            if re.search(r"[-–]", piece):
                lo, hi = (int(x) for x in re.split(r"\s*[-–]\s*", piece))
                numbers.extend(range(lo, hi + 1) if 0 < hi - lo < 20 else [lo, hi])
            else:
                numbers.append(int(piece))
    return list(dict.fromkeys(numbers))


def strip_markers(sentence: str) -> str:
    return re.sub(r"\s+([.,;])", r"\1", _MARKER.sub("", sentence)).strip()

"""Split an answer into sentences and read its ``[n]`` citation markers."""

from __future__ import annotations

import re

_MARKER = re.compile(r"\[(\d+(?:\s*[-,–]\s*\d+)*)\]")


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

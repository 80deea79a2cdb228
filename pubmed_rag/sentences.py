"""Sentences of abstract text: where they end, and which of them can be evidence.

Shared by ingest (which stores each abstract's evidence sentences and their vectors, ``ingest.sentence_store``) and
rag (which verifies claims against them), so both cut a text the same way.
"""

from __future__ import annotations

import re

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


_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your|the)\b.{0,30}"
    r"\b(instructions?|prompts?|rules|context|directions)\b"
    r"|\b(system prompt|you are now|as an ai\b|language model,? (you )?must)"
    r"|\b(answer|respond|reply|say)\s+(only\s+)?(that|with)\b.{0,60}\b(regardless|no matter|always)\b",
    re.I | re.S,
)


def is_instruction(sentence: str) -> bool:
    """Whether ``sentence`` addresses an AI model ("ignore previous instructions ...") instead of stating a fact."""
    return bool(_INSTRUCTION.search(sentence))


def evidence_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that can be evidence (those addressing a model are not); the whole text when none
    is left."""
    return [s for s in split_sentences(text) if not is_instruction(s)] or [text]

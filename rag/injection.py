"""Evidence text that addresses the model ("ignore previous instructions ...") is not evidence.

Such sentences are replaced before the evidence reaches the prompt, and are never used to support a claim.
"""

from __future__ import annotations

import re

from rag.citations import split_sentences

REMOVED = "[text addressed to an AI model removed]"
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your|the)\b.{0,30}"
    r"\b(instructions?|prompts?|rules|context|directions)\b"
    r"|\b(system prompt|you are now|as an ai\b|language model,? (you )?must)"
    r"|\b(answer|respond|reply|say)\s+(only\s+)?(that|with)\b.{0,60}\b(regardless|no matter|always)\b",
    re.I | re.S,
)


def is_instruction(sentence: str) -> bool:
    return bool(_INSTRUCTION.search(sentence))


def neutralize(text: str) -> str:
    """``text`` with every instruction-like sentence replaced by a marker."""
    if not _INSTRUCTION.search(text):
        return text
    return " ".join(REMOVED if is_instruction(s) else s for s in split_sentences(text))

"""Evidence text that addresses the model ("ignore previous instructions ...") is not evidence.

Such sentences are replaced before the evidence reaches the prompt, and are never used to support a claim.
"""

from __future__ import annotations

from pubmed_rag.sentences import is_instruction, split_sentences

REMOVED = "[text addressed to an AI model removed]"


def neutralize(text: str) -> str:
    """``text`` with every instruction-like sentence replaced by a marker."""
    if not is_instruction(text):
        return text
    return " ".join(REMOVED if is_instruction(s) else s for s in split_sentences(text))

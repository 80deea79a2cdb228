"""SciFact-format claim files (``claims_*.jsonl`` + ``corpus.jsonl``), e.g. Citation-Integrity.

A claim line: ``{"id", "claim", "evidence": {doc_id: [{"sentences": [i], "label": "SUPPORT"|"REFUTE"}]},
"cited_doc_ids"}`` (empty evidence = not enough information); a corpus line: ``{"doc_id", "title", "abstract":
[sentences]}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# SciFact labels -> the verifier's verdicts.
LABEL_NAMES = {"SUPPORT": "supported", "REFUTE": "contradicted", "NEI": "not enough information"}
_MARKER = re.compile(r"<\|[a-z_]+\|>")
_EMPTY = re.compile(r"\(\s*(?:[,;]\s*)*\)|\[\s*(?:[,;]\s*)*\]|\(\s*(?:Table|Fig\.?|Figure)\s*[\])]")


@dataclass
class ClaimItem:
    """One (claim, cited document) pair with its gold verdict."""

    id: str
    claim: str
    label: str  # supported | contradicted | not enough information
    sentences: list[str]
    evidence: list[int]  # indices of the gold evidence sentences (empty for NEI)


def clean_claim(text: str) -> str:
    """The claim without citation markers (``[<|cit|>]``, ``(<|multi_cit|>)``) or the brackets they leave."""
    text = _MARKER.sub("", text)
    for _ in range(2):
        text = _EMPTY.sub("", text)
    return re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()


def load_scifact(claims: Path, corpus: Path) -> list[ClaimItem]:
    """One item per (claim, cited document); the label is the first evidence label for that document, else NEI."""
    docs = {}
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            docs[str(d["doc_id"])] = [s for s in d["abstract"] if s.strip()]
    items = []
    with open(claims, encoding="utf-8") as f:
        for line in f:
            c = json.loads(line)
            for doc_id in c.get("cited_doc_ids", []):
                doc = str(doc_id)
                if doc not in docs:
                    continue
                evidence = c.get("evidence", {}).get(doc, [])
                label = LABEL_NAMES[evidence[0]["label"]] if evidence else LABEL_NAMES["NEI"]
                indices = sorted({i for e in evidence for i in e["sentences"]})
                items.append(ClaimItem(f"{c['id']}:{doc}", clean_claim(c["claim"]), label, docs[doc], indices))
    return items

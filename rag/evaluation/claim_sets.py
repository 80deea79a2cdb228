"""Claim-verification sets, each format read by its own loader, into one shape: ``ClaimItem`` (a claim, the text it
is checked against, the gold verdict).

- SciFact format (SciFact, HealthVer in MultiVerS form, Citation-Integrity): ``claims_*.jsonl`` lines
  ``{"id", "claim", "evidence": {doc_id: [{"sentences": [i], "label": "SUPPORT"|"CONTRADICT"|"REFUTE"}]},
  "cited_doc_ids" | "doc_ids"}`` (no evidence for a listed document = not enough information) and ``corpus.jsonl``
  lines ``{"doc_id", "title", "abstract": [sentences]}``;
- Check-COVID format: claim lines ``{"id", "claim", "cord_id", "label": "SUPPORT"|"REFUTE"|"NOTENOUGHINFO",
  "evidence_set": [{"sent_index", "type"}]}`` and ``corpus.json`` lines ``{"cord_id", "title", "abstract"}``. Its
  NEI is judged on one sentence of an abstract that settles a sibling claim, so every Check-COVID claim is checked
  against its annotated evidence sentences, not the whole abstract (the dataset's own label-prediction setting).

``load_dataset(name, split)`` finds the shared copies (``../shared/data``); Citation-Integrity items carry their
fine-grained kind (CONTRADICT, NOT_SUBSTANTIATE, ...) in ``ClaimItem.kind``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Dataset labels -> the verifier's verdicts.
LABEL_NAMES = {"SUPPORT": "supported", "REFUTE": "contradicted", "CONTRADICT": "contradicted",
               "NEI": "not enough information", "NOTENOUGHINFO": "not enough information"}
DATASETS = ("scifact", "healthver", "check-covid", "citation-integrity")
_MARKER = re.compile(r"<\|[a-z_]+\|>")
_EMPTY = re.compile(r"\(\s*(?:[,;]\s*)*\)|\[\s*(?:[,;]\s*)*\]|\(\s*(?:Table|Fig\.?|Figure)\s*[\])]")


class ClaimSetError(ValueError):
    """A claims or corpus file that cannot be read; the message names the file and line."""


@dataclass
class ClaimItem:
    """One (claim, cited document) pair with its gold verdict."""

    id: str
    claim: str
    label: str  # supported | contradicted | not enough information
    sentences: list[str]  # the text the claim is checked against, as sentences
    evidence: list[int]  # indices of the gold evidence sentences in ``sentences`` (empty for NEI)
    kind: str = ""  # a finer gold label where the dataset has one (Citation-Integrity: CONTRADICT, OVERSIMPLIFY, ...)
    dataset: str = ""

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def clean_claim(text: str) -> str:
    """The claim without citation markers (``[<|cit|>]``, ``(<|multi_cit|>)``) or the brackets they leave."""
    text = _MARKER.sub("", text)
    for _ in range(2):
        text = _EMPTY.sub("", text)
    return re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()


def _lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty JSON line of ``path``; a bad line raises ``ClaimSetError``."""
    path = Path(path)
    if not path.is_file():
        raise ClaimSetError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ClaimSetError(f"{path}, line {number}: not JSON ({exc.msg}); expected one object per line")\
                    from exc
            if not isinstance(value, dict):
                raise ClaimSetError(f"{path}, line {number}: expected a JSON object")
            yield number, value


def _label(path: Path, number: int, raw: str) -> str:
    if raw not in LABEL_NAMES:
        raise ClaimSetError(f"{path}, line {number}: unknown label {raw!r}; expected one of {sorted(LABEL_NAMES)}")
    return LABEL_NAMES[raw]


def _field(path: Path, number: int, record: dict, name: str):  # noqa: ANN202 - any JSON value
    if name not in record:
        raise ClaimSetError(f"{path}, line {number}: missing field {name!r}")
    return record[name]


def load_scifact(claims: Path, corpus: Path, dataset: str = "scifact") -> list[ClaimItem]:
    """One item per (claim, cited document) of a SciFact-format file; the label is the first evidence label for that
    document, else NEI. Documents missing from the corpus are skipped."""
    docs = {}
    for number, d in _lines(corpus):
        docs[str(_field(corpus, number, d, "doc_id"))] = [s for s in _field(corpus, number, d, "abstract") if s.strip()]
    items = []
    for number, c in _lines(claims):
        cited = c.get("cited_doc_ids", c.get("doc_ids"))
        if cited is None:
            raise ClaimSetError(f"{claims}, line {number}: no 'cited_doc_ids' or 'doc_ids'; is this a SciFact-format "
                                "claims file?")
        claim = clean_claim(str(_field(claims, number, c, "claim")))
        for doc_id in cited:
            doc = str(doc_id)
            if doc not in docs:
                continue
            evidence = c.get("evidence", {}).get(doc, [])
            label = _label(claims, number, evidence[0]["label"]) if evidence else LABEL_NAMES["NEI"]
            indices = sorted({i for e in evidence for i in e["sentences"] if i < len(docs[doc])})
            items.append(ClaimItem(f"{c['id']}:{doc}", claim, label, docs[doc], indices, dataset=dataset))
    return items


def load_check_covid(claims: Path, corpus: Path) -> list[ClaimItem]:
    """One item per Check-COVID claim, checked against its annotated evidence sentences (see the module docstring)."""
    docs = {}
    for number, d in _lines(corpus):
        docs[str(_field(corpus, number, d, "cord_id"))] = list(_field(corpus, number, d, "abstract"))
    items = []
    for number, c in _lines(claims):
        doc = docs.get(str(_field(claims, number, c, "cord_id")))
        if doc is None:
            continue
        indices = sorted({int(e["sent_index"]) for e in _field(claims, number, c, "evidence_set")
                          if int(e["sent_index"]) < len(doc)})
        if not indices:
            continue
        label = _label(claims, number, _field(claims, number, c, "label"))
        sentences = [doc[i] for i in indices]
        evidence = [] if label == LABEL_NAMES["NEI"] else list(range(len(sentences)))
        items.append(ClaimItem(str(c["id"]), clean_claim(str(c["claim"])), label, sentences, evidence,
                               dataset="check-covid"))
    return items


def is_check_covid(claims: Path) -> bool:
    """Whether a claims file is in Check-COVID's format (its first record has ``cord_id``)."""
    for _, record in _lines(claims):
        return "cord_id" in record
    return False


def load_claims(claims: Path, corpus: Path) -> list[ClaimItem]:
    """Any claims file in one of the two formats, told apart by its first record."""
    return load_check_covid(claims, corpus) if is_check_covid(claims) else load_scifact(claims, corpus)


def dataset_files(name: str, split: str, data_dir: Path) -> tuple[Path, Path]:
    """(claims, corpus) of a shared dataset split."""
    if name not in DATASETS:
        raise ClaimSetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in ("train", "dev"):
        raise ClaimSetError(f"unknown split {split!r}; expected train or dev (test splits are held out)")
    root = Path(data_dir)
    if name == "citation-integrity":
        return root / "citation_integrity" / f"claims_{split}.jsonl", root / "citation_integrity" / "corpus.jsonl"
    if name == "check-covid":
        folder = root / "claim_verification" / "check_covid"
        return folder / split / f"covidCheck_{split}_composed+extracted.json", folder / "corpus.json"
    folder = root / "claim_verification" / name
    return folder / f"claims_{split}.jsonl", folder / "corpus.jsonl"


def load_dataset(name: str, split: str, data_dir: Path) -> list[ClaimItem]:
    """The items of a shared dataset split; Citation-Integrity's carry their fine-grained kinds."""
    claims, corpus = dataset_files(name, split, data_dir)
    if not claims.is_file():
        raise ClaimSetError(f"{claims}: not found; the {name} data lives in ../shared/data (see its SOURCES.md)")
    if name == "check-covid":
        return load_check_covid(claims, corpus)
    items = load_scifact(claims, corpus, dataset=name)
    if name == "citation-integrity":
        kinds = Path(data_dir) / "claim_verification" / "citation_integrity_finegrained" / \
            f"citint_{split}_finegrained_labels.jsonl"
        if kinds.is_file():
            fine = {str(r["id"]): r.get("fine_labels") or [] for _, r in _lines(kinds)}
            for item in items:
                labels = fine.get(item.id.split(":")[0], [])
                item.kind = "CONTRADICT" if "CONTRADICT" in labels else (labels[0] if labels else "")
    return items

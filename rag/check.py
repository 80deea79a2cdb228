"""Citation checker: does each cited abstract support the claim that cites it?"""

from __future__ import annotations

import re

from pydantic import BaseModel

from ingest.index import LoadedIndex
from rag.citations import split_sentences
from rag.verify import SupportScorer

_PMID = re.compile(r"\[?\s*PMID\s*:?\s*(\d{1,9})\s*\]?", re.I)


class PmidCheck(BaseModel):
    pmid: str
    indexed: bool
    title: str = ""
    score: float | None = None
    verdict: str = "not indexed"
    best_sentence: str = ""
    url: str = ""


class ClaimCheck(BaseModel):
    claim: str
    results: list[PmidCheck]


def parse_claims(text: str) -> list[tuple[str, list[str]]]:
    """Sentences that cite PMIDs (``[PMID:123]``, ``PMID 123``), each with its PMIDs, in order."""
    out = []
    for sentence in split_sentences(text.replace("\n", " ")):
        pmids = list(dict.fromkeys(_PMID.findall(sentence)))
        if pmids:
            out.append((_PMID.sub("", sentence).replace(" .", ".").strip(" ;,"), pmids))
    return out


def check_claim(claim: str, pmids: list[str], index: LoadedIndex, scorer: SupportScorer) -> ClaimCheck:
    records = index.store.get_many(pmids)
    results = []
    for pmid in pmids:
        record = records.get(pmid)
        if record is None:
            results.append(PmidCheck(pmid=pmid, indexed=False))
            continue
        text = record.abstract or record.title
        support = scorer.score_matrix([claim], [text])[0][0]
        results.append(PmidCheck(pmid=pmid, indexed=True, title=record.title, score=support.score,
                                 verdict=scorer.verdict(support.score), best_sentence=support.sentence, url=record.url))
    return ClaimCheck(claim=claim, results=results)


def check_text(text: str, index: LoadedIndex, scorer: SupportScorer) -> list[ClaimCheck]:
    return [check_claim(claim, pmids, index, scorer) for claim, pmids in parse_claims(text)]

"""Citation checker: does each cited abstract support the claim that cites it?"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel

from ingest.index import LoadedIndex
from pubmed_rag.records import Record
from rag.citations import split_sentences
from rag.verify import SupportScorer

_PMID = re.compile(r"\[?\s*PMID\s*:?\s*(\d{1,9})\s*\]?", re.I)


class PmidCheck(BaseModel):
    pmid: str
    indexed: bool
    fetched: bool = False
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


def check_claim(claim: str, pmids: list[str], index: LoadedIndex, scorer: SupportScorer,
                fetch: Callable[[list[str]], dict[str, Record]] | None = None) -> ClaimCheck:
    """Score each PMID's abstract against ``claim``; PMIDs not indexed are fetched with ``fetch`` if given."""
    records = index.store.get_many(pmids)
    missing = [p for p in pmids if p not in records]
    fetched = fetch(missing) if fetch and missing else {}
    results = []
    for pmid in pmids:
        record = records.get(pmid) or fetched.get(pmid)
        if record is None:
            results.append(PmidCheck(pmid=pmid, indexed=False,
                                     verdict="not indexed" if fetch is None else "not found in PubMed"))
            continue
        text = record.abstract or record.title
        support = scorer.score_matrix([claim], [text])[0][0]
        results.append(PmidCheck(pmid=pmid, indexed=pmid in records, fetched=pmid in fetched, title=record.title,
                                 score=support.score, verdict=scorer.verdict(support.score),
                                 best_sentence=support.sentence, url=record.url))
    return ClaimCheck(claim=claim, results=results)


def check_text(text: str, index: LoadedIndex, scorer: SupportScorer,
               fetch: Callable[[list[str]], dict[str, Record]] | None = None) -> list[ClaimCheck]:
    return [check_claim(claim, pmids, index, scorer, fetch) for claim, pmids in parse_claims(text)]

"""Citation checker: does each cited abstract support the claim that cites it?"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel, Field

from ingest.embedder import load_embedder
from ingest.index import LoadedIndex, open_index
from pubmed_rag.records import Record
from pubmed_rag.sentences import split_sentences
from pubmed_rag.settings import Settings
from rag.verify import SupportScorer

_PMID = re.compile(r"\[?\s*PMID\s*:?\s*(\d{1,9})\s*\]?", re.I)


class PmidCheck(BaseModel):
    """One cited PMID's verdict: supported, contradicted or not enough information (or not indexed / not found)."""

    pmid: str
    indexed: bool
    fetched: bool = False
    title: str = ""
    score: float | None = Field(None, description="Similarity of the claim to its best-matching sentence.")
    verdict: str = "not indexed"
    probability: float | None = Field(None, description="Probability of the verdict.")
    reason: str = Field("", description="Why, in words (the agreement rule that fired, or what the verifier read).")
    rule: str = Field("", description="The agreement rule that fired (direction, polarity, numbers), if any.")
    best_sentence: str = Field("", description="The sentence of the abstract the verdict rests on.")
    evidence: list[str] = Field([], description="The deciding sentence(s), strongest first.")
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


def open_checker(settings: Settings, index: str | None = None) -> tuple[LoadedIndex, SupportScorer]:
    """The served version of ``index`` and the scorer every check runs with (the ``verify`` settings, the index's
    embedder). The scorer's ``warnings`` name any fallback in effect."""
    loaded = open_index(settings, index)
    embedder = load_embedder(loaded.embedding_model, loaded.max_tokens, settings.embedding.backend,
                             settings.paths.cache_dir, settings.allow_network)
    return loaded, SupportScorer(embedder, settings.verify, cache_dir=settings.paths.cache_dir,
                                 sentences=loaded.sentences)


def check_claim(claim: str, pmids: list[str], index: LoadedIndex, scorer: SupportScorer,
                fetch: Callable[[list[str]], dict[str, Record]] | None = None) -> ClaimCheck:
    """Score each PMID's abstract against ``claim``; PMIDs not indexed are fetched with ``fetch`` if given."""
    return check_claims([(claim, pmids)], index, scorer, fetch)[0]


def check_claims(claims: list[tuple[str, list[str]]], index: LoadedIndex, scorer: SupportScorer,
                 fetch: Callable[[list[str]], dict[str, Record]] | None = None) -> list[ClaimCheck]:
    """``check_claim`` for many claims, their (claim, abstract) pairs scored in one batch (faster than one by one)."""
    pmids = list(dict.fromkeys(p for _, cited in claims for p in cited))
    records = index.store.get_many(pmids)
    missing = [p for p in pmids if p not in records]
    fetched = fetch(missing) if fetch and missing else {}
    found = {**fetched, **records}
    pairs = [(claim, found[p].abstract or found[p].title) for claim, cited in claims for p in cited if p in found]
    supports = iter(scorer.score_pairs(pairs))
    out = []
    for claim, cited in claims:
        results = []
        for pmid in cited:
            record = found.get(pmid)
            if record is None:
                results.append(PmidCheck(pmid=pmid, indexed=False,
                                         verdict="not indexed" if fetch is None else "not found in PubMed"))
                continue
            support = next(supports)
            results.append(PmidCheck(pmid=pmid, indexed=pmid in records, fetched=pmid in fetched, title=record.title,
                                     score=support.score, verdict=support.label, probability=support.probability,
                                     reason=support.reason, rule=support.rule, best_sentence=support.sentence,
                                     evidence=support.sentences, url=record.url))
        out.append(ClaimCheck(claim=claim, results=results))
    return out


def check_text(text: str, index: LoadedIndex, scorer: SupportScorer,
               fetch: Callable[[list[str]], dict[str, Record]] | None = None) -> list[ClaimCheck]:
    """``check_claim`` for every sentence of ``text`` that cites PMIDs, in one batch."""
    return check_claims(parse_claims(text), index, scorer, fetch)

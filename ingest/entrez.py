"""Live PubMed queries through NCBI E-utilities (``Bio.Entrez``), resumable.

esearch runs once with the history server; efetch then pulls the result in batches. Every batch is written to a
staging folder as soon as it arrives complete, so a run that is killed and started again fetches only the
batches it lacks. Biopython enforces NCBI's rate limit (3 requests/s, 10 with an API key); this module adds
timeouts, retries with exponential backoff on HTTP 429/5xx, timeouts and truncated replies, and a final check that
every PMID esearch listed was fetched exactly once.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from Bio import Entrez

from ingest.build import IngestSummary, Progress, Source, ingest, no_progress
from ingest.embedder import Embedder
from ingest.index import IndexLayout
from ingest.pubmed_xml import Item, parse_xml_bytes, parse_xml_file
from pubmed_rag.records import IngestError, Record
from pubmed_rag.retry import with_retries
from pubmed_rag.settings import NCBISettings, Settings

NCBI_EUTILS = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
MAX_ESEARCH_IDS = 10000  # PubMed's esearch returns at most this many ids


class EntrezError(RuntimeError):
    """E-utilities failed after all retries; the message says what to do."""


class _Redirect(urllib.request.BaseHandler):
    """Point Biopython's fixed NCBI URLs at the configured base URL and apply our timeout."""

    handler_order = 100

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout

    def _rewrite(self, request: urllib.request.Request) -> urllib.request.Request:
        if self.base_url != NCBI_EUTILS and request.full_url.startswith(NCBI_EUTILS):
            request.full_url = self.base_url + request.full_url[len(NCBI_EUTILS):]
            request.host = urlsplit(request.full_url).netloc
        request.timeout = self.timeout
        return request

    http_request = https_request = _rewrite


@contextmanager
def _entrez_session(settings: NCBISettings) -> Iterator[None]:
    # Bio.Entrez opens URLs through urllib's global opener; ours is installed for this session only.
    saved = (Entrez.email, Entrez.api_key, Entrez.tool, Entrez.max_tries, urllib.request._opener)
    Entrez.email = settings.email or None
    Entrez.api_key = settings.api_key or None
    Entrez.tool = settings.tool
    Entrez.max_tries = 1  # retries happen here, with backoff suited to each error
    redirect = _Redirect(settings.base_url, settings.timeout)
    urllib.request.install_opener(urllib.request.build_opener(redirect))
    try:
        yield
    finally:
        Entrez.email, Entrez.api_key, Entrez.tool, Entrez.max_tries, opener_before = saved
        urllib.request.install_opener(opener_before)


@dataclass
class FetchResult:
    """What ``fetch_query`` left in its staging folder."""

    folder: Path
    query: str
    count: int
    pmids: list[str]
    batches: list[Path]
    requests: int = 0
    retries: int = 0
    problems: list[str] = field(default_factory=list)


_FINAL_HTTP = (400, 401, 403, 404)
_TRANSIENT = (HTTPError, URLError, TimeoutError, http.client.HTTPException, ConnectionError, IngestError, RuntimeError)


def _retryable(exc: BaseException) -> bool:
    """429/5xx, timeouts, dropped connections and truncated XML are worth another try; a bad request is not."""
    if isinstance(exc, HTTPError):
        return exc.code not in _FINAL_HTTP
    return isinstance(exc, _TRANSIENT)


class EntrezFetcher:
    """esearch + batched efetch with retries and resume."""

    def __init__(self, settings: NCBISettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.sleep = sleep
        self.requests = 0
        self.retries = 0

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        def attempt() -> Any:
            self.requests += 1
            return fn()

        def count(_: BaseException) -> None:
            self.retries += 1

        try:
            return with_retries(attempt, retries=self.settings.max_retries, backoff=self.settings.backoff,
                                retryable=_retryable, sleep=self.sleep, on_retry=count)
        except HTTPError as exc:
            if exc.code in _FINAL_HTTP:
                raise EntrezError(f"{what}: NCBI answered HTTP {exc.code} ({exc.reason}); check the query, "
                                  "email and API key.") from exc
            last: Exception = exc
        except _TRANSIENT as exc:
            last = exc
        raise EntrezError(
            f"{what}: failed after {self.settings.max_retries + 1} attempts ({last}). Run the same command again "
            "to resume: batches already fetched are kept."
        ) from last

    def esearch(self, query: str, mindate: str | None, maxdate: str | None, retmax: int) -> dict:
        params: dict[str, Any] = {"db": "pubmed", "term": query, "usehistory": "y", "retmax": retmax}
        if mindate or maxdate:
            params.update(datetype="pdat", mindate=mindate or "1800", maxdate=maxdate or "3000")

        def run() -> dict:
            with Entrez.esearch(**params) as handle:
                return Entrez.read(handle)

        return self._call(f"esearch {query!r}", run)

    def efetch_batch(self, what: str, **params: Any) -> bytes:
        def run() -> bytes:
            with Entrez.efetch(db="pubmed", retmode="xml", **params) as handle:
                data = handle.read()
            data = data if isinstance(data, bytes) else data.encode("utf-8")
            # A truncated body fails here and is retried like a network error.
            for _ in parse_xml_bytes(data, what):
                pass
            return data

        return self._call(what, run)


def staging_folder(root: Path, query: str, mindate: str | None, maxdate: str | None, max_records: int | None) -> Path:
    """The resumable fetch folder of one query (same query and limits -> same folder)."""
    key = json.dumps([query, mindate, maxdate, max_records])
    return Path(root) / f"query-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def fetch_query(
    query: str,
    folder: Path,
    settings: NCBISettings,
    mindate: str | None = None,
    maxdate: str | None = None,
    max_records: int | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchResult:
    """Fetch every record of ``query`` into ``folder``; resumes from whatever ``folder`` already holds."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fetcher = EntrezFetcher(settings, sleep=sleep)
    search_file = folder / "search.json"
    with _entrez_session(settings):
        if search_file.exists():
            search = json.loads(search_file.read_text())
        else:
            reply = fetcher.esearch(query, mindate, maxdate, min(max_records or MAX_ESEARCH_IDS, MAX_ESEARCH_IDS))
            count = int(reply["Count"])
            total = min(count, max_records) if max_records else count
            search = {"query": query, "mindate": mindate, "maxdate": maxdate, "count": count, "total": total,
                      "webenv": reply["WebEnv"], "query_key": reply["QueryKey"],
                      "pmids": [str(i) for i in reply["IdList"]][:total]}
            tmp = folder / "search.json.tmp"
            tmp.write_text(json.dumps(search))
            tmp.replace(search_file)
        total = search["total"]
        size = settings.batch_size
        starts = list(range(0, total, size))
        have = {start for start in starts if (folder / f"batch-{start:08d}.xml").exists()}
        if progress:
            progress("fetch", len(have) and sum(min(size, total - s) for s in have), total)
        for start in starts:
            if start in have:
                continue
            path = folder / f"batch-{start:08d}.xml"
            data = fetcher.efetch_batch(
                f"efetch {query!r} records {start + 1}-{min(start + size, total)}",
                WebEnv=search["webenv"], query_key=search["query_key"], retstart=start,
                retmax=min(size, total - start),
            )
            _write_atomic(path, data)
            if progress:
                progress("fetch", min(size, total - start), total)
        fetched = _pmids_in(folder)
        missing = [p for p in search["pmids"] if p not in fetched]
        if missing:
            for i in range(0, len(missing), size):
                part = missing[i : i + size]
                data = fetcher.efetch_batch(f"efetch {len(part)} missing PMIDs", id=",".join(part))
                _write_atomic(folder / f"batch-missing-{i:08d}.xml", data)
    fetched = _pmids_in(folder)
    result = FetchResult(folder, query, search["count"], search["pmids"], sorted(folder.glob("batch-*.xml")),
                         fetcher.requests, fetcher.retries)
    still = [p for p in search["pmids"] if p not in fetched]
    if still:
        result.problems.append(f"{len(still)} PMIDs listed by esearch were not returned by efetch: {still[:10]}")
    return result


def fetch_pmids(pmids: list[str], settings: NCBISettings) -> dict[str, Record]:
    """Fetch specific PMIDs (efetch by id), for the citation checker; only called when the user allowed network."""
    fetcher = EntrezFetcher(settings)
    out: dict[str, Record] = {}
    with _entrez_session(settings):
        for i in range(0, len(pmids), settings.batch_size):
            part = pmids[i : i + settings.batch_size]
            data = fetcher.efetch_batch(f"efetch PMIDs {part[:3]}...", id=",".join(part))
            out.update({r.pmid: r for r in parse_xml_bytes(data, "efetch") if isinstance(r, Record)})
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def _pmids_in(folder: Path) -> set[str]:
    return {item.pmid for path in folder.glob("batch-*.xml") for item in parse_xml_file(path) if isinstance(item, Record)}


@dataclass
class QuerySource:
    """The fetched batches of a query as one ingest source; each PMID is yielded once."""

    result: FetchResult
    kind: str = "query"

    @property
    def name(self) -> str:
        return self.result.query

    def items(self) -> Iterator[Item]:
        seen: set[str] = set()
        for path in self.result.batches:
            for item in parse_xml_file(path):
                if isinstance(item, Record):
                    if item.pmid in seen:
                        continue
                    seen.add(item.pmid)
                yield item


def ingest_query(
    query: str,
    index: str,
    settings: Settings,
    mindate: str | None = None,
    maxdate: str | None = None,
    max_records: int | None = None,
    sources: Sequence[Source] = (),
    progress: Progress = no_progress,
    on_fetched: Callable[[FetchResult], None] | None = None,
    embedder: Embedder | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[FetchResult, IngestSummary]:
    """Fetch ``query`` into the index's staging fetch folder, ingest it with ``sources``, then remove the folder.

    The CLI and the Library page both build from a live query through this function. A failed fetch or build
    keeps the folder, so running the same query again resumes instead of starting over; ``on_fetched`` is called
    between fetching and ingesting (to report the fetch before the long embedding step).
    """
    root = IndexLayout(settings.paths.index_dir, index).root / "fetch"
    folder = staging_folder(root, query, mindate, maxdate, max_records)
    result = fetch_query(query, folder, settings.ncbi, mindate, maxdate, max_records, progress=progress, sleep=sleep)
    if on_fetched:
        on_fetched(result)
    summary = ingest([*sources, QuerySource(result)], index, settings, progress=progress, embedder=embedder)
    shutil.rmtree(folder, ignore_errors=True)  # published (or already up to date): the staging copy is done with
    with contextlib.suppress(OSError):
        root.rmdir()  # only if no other query's fetch is waiting to be resumed
    return result, summary

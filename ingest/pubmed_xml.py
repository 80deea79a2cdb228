"""Stream PubMed XML (efetch ``PubmedArticleSet``, baseline/update files, old ``MedlineCitationSet``).

Memory stays bounded: each top-level element is turned into a record and then dropped from the tree.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError, iterparse

from pubmed_rag.records import Deletion, IngestError, Record, Skipped

Item = Record | Deletion | Skipped
_YEAR = re.compile(r"(1[89]\d\d|20\d\d)")


def open_maybe_gzip(path: Path) -> IO[bytes]:
    """Open ``path`` for binary reading, transparently decompressing gzip."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    # gzip.open owns the file it opens; GzipFile(fileobj=...) would leave it open after close().
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def parse_xml_file(path: Path) -> Iterator[Item]:
    """Yield records, deletions and skipped items from a PubMed XML file (plain or .gz)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty; expected PubMed XML (PubmedArticleSet or MedlineCitationSet).")
    with open_maybe_gzip(path) as handle:
        yield from parse_xml_stream(handle, str(path))


def parse_xml_bytes(data: bytes, source: str) -> Iterator[Item]:
    """Parse an in-memory PubMed XML document (an efetch reply)."""
    yield from parse_xml_stream(io.BytesIO(data), source)


def parse_xml_stream(handle: IO[bytes], source: str) -> Iterator[Item]:
    """Yield the items of a PubMed XML stream; a damaged stream raises ``IngestError`` naming ``source``."""
    depth = 0
    read = 0  # top-level elements read, for the error message
    root: Element | None = None
    try:
        for event, elem in iterparse(handle, events=("start", "end")):
            if event == "start":
                if root is None:
                    root = elem
                    if elem.tag not in ("PubmedArticleSet", "MedlineCitationSet"):
                        raise IngestError(
                            f"{source}: root element <{elem.tag}> is not PubmedArticleSet or MedlineCitationSet; "
                            "pass PubMed efetch output or a baseline/update file."
                        )
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue
            read += 1
            if elem.tag == "PubmedArticle":
                yield _article(elem.find("MedlineCitation"), elem, source)
            elif elem.tag == "MedlineCitation":
                yield _article(elem, None, source)
            elif elem.tag == "DeleteCitation":
                pmids = tuple(p.text.strip() for p in elem.iter("PMID") if p.text and p.text.strip())
                yield Deletion(pmids=pmids, source=source)
            elif elem.tag == "PubmedBookArticle":
                pmid = elem.findtext("BookDocument/PMID", "?")
                yield Skipped(source, f"PMID {pmid}: PubmedBookArticle (book chapter) is not indexed")
            assert root is not None
            root.clear()  # drop processed children so memory stays flat
    except ParseError as exc:
        line = exc.position[0] if exc.position else "?"
        raise IngestError(
            f"{source}: malformed XML at line {line} ({exc}) after {read} complete records; the file is damaged "
            "or incomplete. Re-download it."
        ) from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IngestError(
            f"{source}: the gzip stream is truncated or corrupt ({exc}) after {read} complete records. "
            "Re-download the file."
        ) from exc
    if root is None:
        raise IngestError(f"{source}: no XML content; expected PubmedArticleSet or MedlineCitationSet.")


def _text(elem: Element | None) -> str:
    """Element text with inline markup (<i>, <sup>, ...) flattened to plain text."""
    if elem is None:
        return ""
    # Collapse layout whitespace only: a non-breaking space or other non-ASCII character must survive unchanged.
    return re.sub(r"[ \t\r\n]+", " ", "".join(elem.itertext())).strip(" ")


def _article(citation: Element | None, article_root: Element | None, source: str) -> Record | Skipped:
    if citation is None:
        return Skipped(source, "PubmedArticle without MedlineCitation")
    pmid_el = citation.find("PMID")
    pmid = _text(pmid_el)
    if not pmid:
        title = _text(citation.find("Article/ArticleTitle"))[:80]
        return Skipped(source, f"record without PMID (title: {title!r}) was skipped")
    article = citation.find("Article")
    if article is None:
        return Skipped(source, f"PMID {pmid}: no <Article> element")
    parts = [ab for ab in article.findall("Abstract/AbstractText") if _text(ab)]
    sections = [(ab.get("Label", "") or "", _text(ab)) for ab in parts]
    # NLM's category per section (RESULTS for "FINDINGS", ...); kept only when the file gives one.
    categories = [(ab.get("NlmCategory", "") or "").upper() for ab in parts]
    pub_types = [_text(p) for p in article.findall("PublicationTypeList/PublicationType")]
    retraction_in = any(
        c.get("RefType") == "RetractionIn" for c in citation.findall("CommentsCorrectionsList/CommentsCorrections")
    )
    return Record(
        pmid=pmid,
        title=_text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle")),
        sections=sections,
        categories=categories if any(categories) else [],
        journal=_text(article.find("Journal/Title")) or _text(citation.find("MedlineJournalInfo/MedlineTA")),
        year=_year(article),
        authors=_authors(article),
        mesh=[_text(d) for d in citation.findall("MeshHeadingList/MeshHeading/DescriptorName")],
        chemicals=[_text(c) for c in citation.findall("ChemicalList/Chemical/NameOfSubstance") if _text(c)],
        publication_types=pub_types,
        doi=_doi(article, article_root),
        language=_text(article.find("Language")),
        version=int(pmid_el.get("Version", "1") or 1) if pmid_el is not None else 1,
        retracted="Retracted Publication" in pub_types or retraction_in,
        source=source,
    )


def _year(article: Element) -> int | None:
    date = article.find("Journal/JournalIssue/PubDate")
    candidates = [
        date.findtext("Year") if date is not None else None,
        date.findtext("MedlineDate") if date is not None else None,
        article.findtext("ArticleDate/Year"),
    ]
    for text in candidates:
        if text and (match := _YEAR.search(text)):
            return int(match.group(1))
    return None


def _authors(article: Element) -> list[str]:
    names = []
    for author in article.findall("AuthorList/Author"):
        last, initials = _text(author.find("LastName")), _text(author.find("Initials"))
        name = f"{last} {initials}".strip() or _text(author.find("CollectiveName"))
        if name:
            names.append(name)
    return names


def _doi(article: Element, article_root: Element | None) -> str:
    for loc in article.findall("ELocationID"):
        if loc.get("EIdType") == "doi" and _text(loc):
            return _text(loc)
    if article_root is not None:
        for aid in article_root.findall("PubmedData/ArticleIdList/ArticleId"):
            if aid.get("IdType") == "doi" and _text(aid):
                return _text(aid)
    return ""

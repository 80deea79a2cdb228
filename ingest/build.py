"""Build or incrementally update an index from sources, atomically.

A staging folder gets hard links to the served version's (immutable) vector shards; the index's shared record store
gets the changed rows, in one transaction, tagged with the new version number, which readers of the served version
do not see (``ingest.store``). Only new or changed records are embedded; added vectors become one new shard, removed
ones a deletion list. The result is checked against its manifest, and only then is it published, so an update costs
what it changes, not the size of the index.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ingest.ann import IndexSpec
from ingest.ann.sharded import ShardedIndex
from ingest.chunking import Chunker
from ingest.embedder import Embedder, load_embedder
from ingest.index import IndexLayout
from ingest.manifest import STORE_FILE, open_vectors, read_manifest, shared_store, verify_folder, write_manifest
from ingest.sentence_store import SENTENCES_FILE, SentenceStore
from ingest.sources import FileSource, RecordsSource, Source, detect_format
from ingest.store import RecordStore, now, upgrade
from pubmed_rag.records import Deletion, IngestError, Record
from pubmed_rag.settings import IndexSettings, Settings
from pubmed_rag.threads import configure as configure_threads

# The sources live in ingest.sources (ingest.distributed reads them too); callers have always imported them from here.
__all__ = ["FileSource", "RecordsSource", "Source", "ingest"]


class Progress(Protocol):
    """Progress sink: ``stage`` names the work, ``advance`` how much more was done, ``total`` if known."""

    def __call__(self, stage: str, advance: int, total: int | None = None) -> None: ...


def no_progress(stage: str, advance: int, total: int | None = None) -> None:
    return None


@dataclass
class IngestSummary:
    """What one ingest run did."""

    index: str
    added: int = 0
    replaced: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: int = 0
    title_only: int = 0
    chunks_embedded: int = 0
    sentence_texts: int = 0  # texts whose sentences and vectors were stored (ingest.sentence_vectors)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    version: str = ""

    def line(self) -> str:
        return (
            f"index {self.index!r} {self.version}: {self.added} added, {self.replaced} replaced, "
            f"{self.deleted} deleted, {self.unchanged} unchanged, {self.skipped} skipped "
            f"({self.title_only} title-only, not embedded); {self.chunks_embedded} chunks embedded "
            f"in {self.seconds:.1f} s"
        )


class _Run:
    """Applies items to a staging copy of the index."""

    FLUSH = 256

    def __init__(self, store: RecordStore, vectors: ShardedIndex, embedder: Embedder, chunker: Chunker,
                 batch_size: int, progress: Progress, summary: IngestSummary,
                 sentences: SentenceStore | None = None) -> None:
        self.store, self.vectors, self.embedder, self.chunker = store, vectors, embedder, chunker
        self.batch_size, self.progress, self.summary = batch_size, progress, summary
        self.sentences = sentences
        self.pending: list[tuple[int, str]] = []
        self.pending_texts: list[str] = []  # texts whose sentences are stored at the next flush

    def apply(self, source: Source) -> None:
        counts = dict.fromkeys(("added", "replaced", "deleted", "unchanged", "skipped"), 0)
        prov = self.store.start_provenance(source.kind, source.name)
        try:
            for item in source.items():
                if isinstance(item, Record):
                    counts[self._record(item, prov)] += 1
                elif isinstance(item, Deletion):
                    for pmid in item.pmids:
                        present, removed = self.store.delete(pmid, item.source or source.name)
                        self.vectors.remove(removed)
                        self.pending = [(i, t) for i, t in self.pending if i not in set(removed)]
                        counts["deleted"] += int(present)
                else:
                    counts["skipped"] += 1
                    self.summary.problems.append(f"{item.source}: {item.reason}")
                self.progress("parse", 1)
                if len(self.pending) >= self.FLUSH:
                    self.flush()
        finally:
            self.flush()
            self.store.finish_provenance(prov, counts)
            self.store.commit()
            for key, value in counts.items():
                setattr(self.summary, key, getattr(self.summary, key) + value)

    def _record(self, record: Record, prov: int) -> str:
        content_hash = record.content_hash()
        existing = self.store.hash_and_version(record.pmid)
        self.store.link_source(record.pmid, prov)
        if existing is not None:
            old_hash, old_version = existing
            if old_hash == content_hash or record.version < old_version:
                return "unchanged"
        removed = self.store.upsert(record, content_hash)
        self.vectors.remove(removed)
        if removed:
            gone = set(removed)
            self.pending = [(i, t) for i, t in self.pending if i not in gone]
        if record.title_only:
            self.summary.title_only += 1
        for text, start, end in self.chunker.split(record):
            self.pending.append((self.store.add_chunk(record.pmid, text, start, end), text))
        if self.sentences is not None:
            self.pending_texts.append(record.abstract or record.title)
        return "added" if existing is None else "replaced"

    def flush(self) -> None:
        if self.sentences is not None and self.pending_texts:
            self.summary.sentence_texts += self.sentences.add(self.pending_texts, self.embedder, self.batch_size)
            self.pending_texts = []
        if not self.pending:
            return
        ids = [i for i, _ in self.pending]
        vectors = self.embedder.encode([t for _, t in self.pending], batch_size=self.batch_size)
        self.vectors.add(ids, vectors)
        self.summary.chunks_embedded += len(ids)
        self.progress("embed", len(ids))
        self.pending = []


def ingest(
    sources: list[Source],
    index: str,
    settings: Settings | None = None,
    progress: Progress = no_progress,
    embedder: Embedder | None = None,
) -> IngestSummary:
    """Add ``sources`` to index ``index`` (creating it if needed) and publish the new version atomically.

    A source that fails (missing, empty, truncated or malformed file) fails the whole build with an
    ``IngestError`` naming it: nothing is published and the served version stays as it was. With
    ``settings.ingest.allow_partial`` the failure is reported in ``summary.problems`` instead, what the source
    yielded before failing is kept, and the other sources are still read.
    """
    settings = settings or Settings.load()
    configure_threads(settings.threads)
    allow_partial = settings.ingest.allow_partial
    layout = IndexLayout(settings.paths.index_dir, index)
    started = time.perf_counter()
    summary = IngestSummary(index=index)
    if not allow_partial:  # a missing or unreadable file fails now, before any model loads
        for source in sources:
            if isinstance(source, FileSource):
                try:
                    detect_format(source.path)
                except IngestError as exc:
                    raise IngestError(_not_published(str(exc), index, layout.current())) from exc
    with layout.lock():
        previous = layout.current()
        old_manifest = read_manifest(previous) if previous else None
        model = old_manifest["embedding"]["model"] if old_manifest else settings.embedding.model
        if old_manifest and model != settings.embedding.model:
            raise IngestError(
                f"index {index!r} was built with embedding model {model!r}, but {settings.embedding.model!r} is "
                "configured; use the same model (--embedding.model) or build a new index."
            )
        max_tokens = old_manifest["embedding"]["max_tokens"] if old_manifest else settings.embedding.max_tokens
        embedder = embedder or load_embedder(model, max_tokens, settings.embedding.backend, settings.paths.cache_dir,
                                          settings.allow_network)
        number = layout.next_number()
        base = open_shared_store(layout, previous, old_manifest)
        staging = layout.new_version()
        work: Path | None = None  # the Ray build's shards (ingest.ray)
        store: RecordStore | None = None
        sentences: SentenceStore | None = None
        try:
            if previous:
                vectors = open_vectors(previous, old_manifest)
                _check_type(index, settings.index, vectors.spec.type)
            else:
                vectors = ShardedIndex.create(embedder.dimension, index_spec(settings.index),
                                              settings.index.flat_below, settings.index.exact_below)
            if settings.ingest.ray:  # parse, chunk and embed on the cluster; applied below in file order
                from ingest.distributed import PrecomputedChunker, applying, prepare

                work = Path(settings.ingest.ray_work_dir or staging) / f".ray-{staging.name.removeprefix('.tmp-')}"
                sources, embedder, chunks = prepare(sources, embedder, settings, work, progress)
                progress = applying(progress)
            chunker = Chunker(embedder, settings.embedding.chunk_overlap)
            if settings.ingest.ray:
                chunker = PrecomputedChunker(chunker, chunks)
            store = RecordStore(layout.root / STORE_FILE, version=number)
            if settings.ingest.sentence_vectors and not settings.ingest.ray:
                sentences = SentenceStore(layout.root / SENTENCES_FILE, model)
            run = _Run(store, vectors, embedder, chunker, settings.embedding.batch_size, progress, summary, sentences)
            for source in sources:
                try:
                    run.apply(source)
                except (IngestError, OSError) as exc:
                    problem = str(exc) if isinstance(exc, IngestError) else f"{source.name}: cannot read ({exc})."
                    if not allow_partial:
                        raise IngestError(_not_published(problem, index, previous)) from exc
                    summary.problems.append(f"{problem} The records read before the error were kept "
                                            "(ingest.allow_partial).")
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
            if sentences is not None:
                sentences.close()
            changed = summary.added + summary.replaced + summary.deleted > 0
            if previous and not changed:
                store.discard_after(base)  # the provenance of a run that changed nothing
                store.close()
                shutil.rmtree(staging)
                summary.version = previous.name + " (unchanged)"
                summary.seconds = time.perf_counter() - started
                return summary
            old_store = (old_manifest or {}).get("store", {})
            store_section = {
                "shared": True, "file": STORE_FILE, "version": number,
                "digest": (store.change_digest(old_store["digest"], number) if old_store.get("shared")
                           else store.digest()),
                "changed": store.changed(number),
            }
            if old_store.get("shared"):  # carried forward by the change, not counted over the whole index
                delta = store.count_changes(number)
                counts = {key: old_manifest["counts"].get(key, 0) + delta[key] for key in delta}
            else:
                counts = store.counts()
            provenance = store.provenance()
            store.close()
            section = vectors.save(staging)
            write_manifest(staging, {
                "name": index,
                "index": {k: v for k, v in section.items() if k not in ("files", "linked")},
                "store": store_section,
                "embedding": {"model": model, "dimension": embedder.dimension, "max_tokens": max_tokens,
                              "chunk_overlap": settings.embedding.chunk_overlap},
                "counts": counts,
                "sources": [{k: p[k] for k in ("kind", "name", "at", "added", "replaced", "deleted", "unchanged",
                                               "skipped")} for p in provenance],
                "created": old_manifest["created"] if old_manifest else now(),
                "updated": now(),
            }, section["files"], _reused(old_manifest, section["linked"]))
            report = verify_folder(staging, linked_from=previous)
            if not report.ok:
                raise IngestError(f"index {index!r}: the new version failed verification: {report.problems}")
            summary.version = layout.publish(staging, number).name
        except BaseException:
            if sentences is not None:
                with contextlib.suppress(Exception):
                    sentences.close()
            shutil.rmtree(staging, ignore_errors=True)
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
            if store is not None:  # what this run committed is not published: take it back now, not next time
                store.close()
                with contextlib.suppress(Exception):
                    _discard(layout, base)
            raise
    summary.seconds = time.perf_counter() - started
    return summary


def open_shared_store(layout: IndexLayout, previous: Path | None, manifest: dict | None) -> int:
    """Make ``indexes/<name>/store.sqlite`` ready for the next version; return the served version it extends.

    An index whose served version has its own store (an earlier release) gets a converted copy of it, once: the
    one update that costs the index's size. Rows left by an update that was killed before it published are
    removed."""
    path = layout.root / STORE_FILE
    if previous is None or not shared_store(manifest):
        if previous is not None:  # upgrade: a copy, so the served version's own file stays as it is
            tmp = path.with_name(STORE_FILE + ".upgrade")
            for stale in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                stale.unlink(missing_ok=True)
            shutil.copy2(previous / STORE_FILE, tmp)
            upgrade(tmp)
            for stale in (path.with_name(STORE_FILE + "-wal"), path.with_name(STORE_FILE + "-shm")):
                stale.unlink(missing_ok=True)
            os.replace(tmp, path)
        base = 0
    else:
        base = int(manifest["store"]["version"])
    if path.exists():
        _discard(layout, base)
    return base


def _discard(layout: IndexLayout, base: int) -> None:
    store = RecordStore(layout.root / STORE_FILE, version=base)
    try:
        store.discard_after(base)
    finally:
        store.close()


def index_spec(settings: IndexSettings) -> IndexSpec:
    """The index type and parameters a new index is built with (``auto`` resolved when its size is known)."""
    return IndexSpec.from_dict(settings.model_dump())


def _check_type(index: str, settings: IndexSettings, served: str) -> None:
    if settings.type not in ("auto", served):
        raise IngestError(f"index {index!r} is a {served} index but index.type is {settings.type!r}; an update keeps "
                          f"the index's type: change it with 'pubmed-rag index compact {index} --index.type "
                          f"{settings.type}', or leave index.type as auto.")


def _reused(old_manifest: dict | None, linked: list[str]) -> dict[str, dict]:
    """Checksums of the files hard-linked unchanged from the previous version (not hashed again)."""
    files = (old_manifest or {}).get("files", {})
    return {name: files[name] for name in linked if name in files}


def _not_published(problem: str, index: str, previous: Path | None) -> str:
    served = f"index {index!r} still serves {previous.name}" if previous else f"index {index!r} was not created"
    return (f"{problem} Nothing was published: {served}. To publish what could be read instead, allow a partial "
            "build (--allow-partial, setting ingest.allow_partial).")

"""Applying sources to a record store: records upserted, deletions applied, chunks embedded in batches.

Shared by the single-process build (``ingest.build``), which applies every source to the index's store, and the Ray
build (``ingest.distributed``), whose parse tasks apply one input file each to a store shard of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ingest.ann.sharded import ShardedIndex
from ingest.chunking import Chunker
from ingest.embedder import Embedder
from ingest.sentence_store import SentenceStore
from ingest.sharded_store import ShardedStore
from ingest.sources import Source
from ingest.store import RecordStore
from pubmed_rag.records import Deletion, Record


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
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage of the build (bench/bench_ray.py)
    problems: list[str] = field(default_factory=list)
    version: str = ""

    def line(self) -> str:
        return (
            f"index {self.index!r} {self.version}: {self.added} added, {self.replaced} replaced, "
            f"{self.deleted} deleted, {self.unchanged} unchanged, {self.skipped} skipped "
            f"({self.title_only} title-only, not embedded); {self.chunks_embedded} chunks embedded "
            f"in {self.seconds:.1f} s"
        )


class Run:
    """Applies sources' items to a store and the vectors (the index's staging copy, or a store shard)."""

    FLUSH = 256

    def __init__(self, store: RecordStore | ShardedStore, vectors: ShardedIndex, embedder: Embedder, chunker: Chunker,
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

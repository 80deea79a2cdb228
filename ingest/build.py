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
from pathlib import Path

from ingest.ann import IndexSpec
from ingest.ann.sharded import ShardedIndex
from ingest.apply import IngestSummary, Progress, Run, no_progress
from ingest.chunking import Chunker
from ingest.embedder import Embedder, load_embedder
from ingest.index import IndexLayout
from ingest.manifest import (
    STORE_FILE,
    open_vectors,
    read_manifest,
    shard_number,
    shared_store,
    store_files,
    verify_folder,
    write_manifest,
)
from ingest.sentence_store import SENTENCES_FILE, SentenceStore
from ingest.sharded_store import ShardedStore
from ingest.sources import FileSource, RecordsSource, Source, detect_format
from ingest.store import RecordStore, now, upgrade
from pubmed_rag.records import IngestError
from pubmed_rag.settings import IndexSettings, Settings
from pubmed_rag.threads import configure as configure_threads

# The sources live in ingest.sources (ingest.distributed reads them too); callers have always imported them from here.
__all__ = ["FileSource", "IngestSummary", "Progress", "RecordsSource", "Source", "ingest", "no_progress"]


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
        shard_names = store_files(old_manifest) if old_manifest and shared_store(old_manifest) else [STORE_FILE]
        staging = layout.new_version()
        work: Path | None = None  # the Ray build's work folder (ingest.distributed)
        new_shards: list[str] = []  # store shards the Ray build wrote, one per input file
        store: ShardedStore | None = None
        sentences: SentenceStore | None = None
        try:
            if previous:
                vectors = open_vectors(previous, old_manifest)
                _check_type(index, settings.index, vectors.spec.type)
            else:
                vectors = ShardedIndex.create(embedder.dimension, index_spec(settings.index),
                                              settings.index.flat_below, settings.index.exact_below)
            if settings.ingest.ray:  # every input file becomes a store shard on the cluster, resolved here
                from ingest.distributed import build_shards

                work = Path(settings.ingest.ray_work_dir or staging) / f".ray-{staging.name.removeprefix('.tmp-')}"
                built = build_shards(sources, embedder, settings, work, layout.root, number, shard_names, vectors,
                                     summary, progress)
                new_shards, sources = built.shards, built.rest
                for problem in built.failures:
                    if not allow_partial:
                        raise IngestError(_not_published(problem, index, previous))
                    summary.problems.append(f"{problem} The records read before the error were kept "
                                            "(ingest.allow_partial).")
                shard_names = shard_names + new_shards
            store = ShardedStore([RecordStore(layout.root / name, version=number, shard=shard_number(name))
                                  for name in shard_names])
            if settings.ingest.sentence_vectors and not settings.ingest.ray:
                sentences = SentenceStore(layout.root / SENTENCES_FILE, model)
            run = Run(store, vectors, embedder, Chunker(embedder, settings.embedding.chunk_overlap),
                      settings.embedding.batch_size, progress, summary, sentences)
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
                layout.remove_store_files(new_shards)
                shutil.rmtree(staging)
                summary.version = previous.name + " (unchanged)"
                summary.seconds = time.perf_counter() - started
                return summary
            tail = time.perf_counter()
            old_store = (old_manifest or {}).get("store", {})
            store_section = {
                "shared": True, "file": shard_names[0], "shards": shard_names, "version": number,
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
            summary.stages["digest"] = time.perf_counter() - tail
            tail = time.perf_counter()
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
            summary.stages["save"] = time.perf_counter() - tail
            tail = time.perf_counter()
            report = verify_folder(staging, linked_from=previous)
            if not report.ok:
                raise IngestError(f"index {index!r}: the new version failed verification: {report.problems}")
            summary.stages["verify"] = time.perf_counter() - tail
            tail = time.perf_counter()
            summary.version = layout.publish(staging, number).name
            summary.stages["publish"] = time.perf_counter() - tail
        except BaseException:
            if sentences is not None:
                with contextlib.suppress(Exception):
                    sentences.close()
            shutil.rmtree(staging, ignore_errors=True)
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
            if store is not None:
                store.close()
            with contextlib.suppress(Exception):  # what this run committed is not published: take it back now
                _discard(layout, base, shard_names)
            layout.remove_store_files(new_shards)
            raise
    summary.seconds = time.perf_counter() - started
    return summary


def open_shared_store(layout: IndexLayout, previous: Path | None, manifest: dict | None) -> int:
    """Make the index's store shards ready for the next version; return the served version they extend.

    An index whose served version has its own store (an earlier release) gets a converted copy of it, once: the
    one update that costs the index's size. Rows left by an update that was killed before it published are
    removed, and so are store shards that no version lists (a Ray build killed before it published)."""
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
    names = store_files(manifest) if manifest and shared_store(manifest) else [STORE_FILE]
    in_use = layout.store_files_in_use()
    layout.remove_store_files([p.name for p in layout.root.glob("store-*.sqlite") if p.name not in in_use])
    _discard(layout, base, names)
    return base


def _discard(layout: IndexLayout, base: int, names: list[str]) -> None:
    for name in names:
        if (layout.root / name).exists():
            store = RecordStore(layout.root / name, version=base)
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

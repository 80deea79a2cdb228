"""Merge an index's shards into one and drop the vectors its deletion list excludes, as a new version.

The records are unchanged by compaction: the new version reads the index's shared store as the previous one did (an
earlier release's per-version store is hard-linked). The vectors are rebuilt (IVF types retrained on a sample of the
live vectors), optionally as another index type (``--index.type``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from ingest.ann import resolve_spec
from ingest.ann.sharded import ShardedIndex, _link
from ingest.build import index_spec, open_shared_store
from ingest.index import IndexLayout, current_folder
from ingest.manifest import STORE_FILE, open_vectors, read_manifest, shared_store, verify_folder, write_manifest
from ingest.store import now
from pubmed_rag.settings import Settings


@dataclass
class CompactSummary:
    """What one compaction did."""

    index: str
    version: str
    shards_before: int
    shards_after: int
    vectors: int
    dropped: int
    type: str
    seconds: float

    def line(self) -> str:
        return (f"index {self.index!r} {self.version}: {self.shards_before} shard(s) -> {self.shards_after}, "
                f"{self.vectors} vectors ({self.type}), {self.dropped} deleted vectors dropped, in {self.seconds:.1f} s")


def compact(index: str, settings: Settings | None = None) -> CompactSummary:
    """Rewrite index ``index``'s vectors as one shard and publish that as a new version.

    The type is ``settings.index.type``; when that is ``auto`` and the index was built with an explicit type, the
    index keeps its type, else ``auto`` chooses again by the number of live vectors."""
    settings = settings or Settings.load()
    started = time.perf_counter()
    layout = IndexLayout(settings.paths.index_dir, index)
    current_folder(settings.paths.index_dir, index)  # a clear error for an unknown index
    with layout.lock():
        previous = layout.current()
        manifest = read_manifest(previous)
        vectors = open_vectors(previous, manifest)
        base = index_spec(settings.index)
        if base.type == "auto" and vectors.requested != "auto":
            base = type(base).from_dict({**base.to_dict(), "type": vectors.requested})
        spec = resolve_spec(base, len(vectors), settings.index.flat_below)
        merged: ShardedIndex = vectors.merged(spec)
        merged.requested = base.type
        number = layout.next_number()
        staging = layout.new_version()
        try:
            kept = {k: v for k, v in manifest.items() if k not in ("files", "schema_version")}
            if shared_store(manifest):
                open_shared_store(layout, previous, manifest)  # drop what a killed update left
                kept["store"] = {**manifest["store"], "version": number, "changed": dict.fromkeys(
                    manifest["store"].get("changed", {}), 0)}
                store_files, known = [], {}
            else:
                _link(previous / STORE_FILE, staging / STORE_FILE)
                store_files, known = [STORE_FILE], {STORE_FILE: manifest["files"][STORE_FILE]}
            section = merged.save(staging)
            write_manifest(staging, {
                **kept,
                "index": {k: v for k, v in section.items() if k not in ("files", "linked")},
                "updated": now(),
            }, [*store_files, *section["files"]], known)
            report = verify_folder(staging)  # every vector was rewritten: check them all
            if not report.ok:
                raise RuntimeError(f"index {index!r}: the compacted version failed verification: {report.problems}")
            version = layout.publish(staging, number).name
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return CompactSummary(index, version, len(vectors.shards), len(section["shards"]), len(merged),
                          len(vectors.deleted), spec.type, time.perf_counter() - started)

"""Split an index's record store into shards (``pubmed-rag index reshard NAME --shards N``), as a new version.

The live rows of the served version are copied into N new store shards by ranges of PMIDs (chunk ids kept, so the
vectors are the same files, hard-linked); the copy must hash to the served version's digest before it is published.
BM25 then runs on the shards in parallel with the index's collection-wide statistics (``ingest.sharded_store``), and
updates keep writing to the first shard. The previous store files are removed once no kept version reads them.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass

from ingest.build import open_shared_store
from ingest.index import IndexLayout, current_folder
from ingest.manifest import (
    open_store,
    open_vectors,
    read_manifest,
    shard_file,
    shard_number,
    shared_store,
    store_files,
    store_paths,
    verify_folder,
    write_manifest,
)
from ingest.store import RECORD_COLUMNS, RecordStore, now
from pubmed_rag.records import IngestError
from pubmed_rag.settings import Settings

# Columns copied as they are (valid_from becomes the new version: the rows are new to these files).
_COPY = {
    "records": RECORD_COLUMNS,
    "chunks": "chunk_id, pmid, text, start, end",
    "deleted": "pmid, source, deleted_at",
    "record_sources": "pmid, provenance_id",
}


@dataclass
class ReshardSummary:
    index: str
    version: str
    shards_before: int
    shards_after: int
    records: int
    seconds: float

    def line(self) -> str:
        return (f"index {self.index!r} {self.version}: record store in {self.shards_before} shard(s) -> "
                f"{self.shards_after}, {self.records} records, in {self.seconds:.1f} s")


def reshard(index: str, shards: int, settings: Settings | None = None) -> ReshardSummary:
    """Publish a version of ``index`` whose records are in ``shards`` store shards of consecutive PMIDs."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    settings = settings or Settings.load()
    started = time.perf_counter()
    layout = IndexLayout(settings.paths.index_dir, index)
    current_folder(settings.paths.index_dir, index)  # a clear error for an unknown index
    with layout.lock():
        previous = layout.current()
        manifest = read_manifest(previous)
        if not shared_store(manifest):
            raise IngestError(f"index {index!r} was written by an earlier release; update it once (any 'pubmed-rag "
                              "ingest') so that its store is converted, then reshard it.")
        base = open_shared_store(layout, previous, manifest)
        number = layout.next_number()
        source = open_store(previous, manifest)
        pmids = source.all_pmids()
        source.close()
        first = max(shard_number(n) for n in store_files(manifest)) + 1
        names = [shard_file(first + i) for i in range(shards)]
        # shard i holds the PMIDs from its first to the next shard's first (deletions between them included)
        size = max(1, -(-len(pmids) // shards))
        starts = [""] + [pmids[i * size] for i in range(1, shards) if i * size < len(pmids)]
        ends = [*starts[1:], "\U0010ffff"]
        bounds: list[tuple[str, str] | None] = list(zip(starts, ends, strict=True))
        bounds += [None] * (shards - len(bounds))
        paths = store_paths(previous, manifest)
        provenance = _provenance(paths, base)
        staging = layout.new_version()
        try:
            for n, (name, bound) in enumerate(zip(names, bounds, strict=True)):
                _copy(paths, layout.root / name, first + n, bound, base, number, provenance if n == 0 else [],
                      [(src, old, new) for new, (src, old, _) in enumerate(provenance, start=1)])
            vectors = open_vectors(previous, manifest)
            section = vectors.save(staging)
            kept = {k: v for k, v in manifest.items() if k not in ("files", "schema_version")}
            kept["store"] = {**manifest["store"], "file": names[0], "shards": names, "version": number,
                             "changed": dict.fromkeys(manifest["store"].get("changed", {}), 0)}
            files = manifest.get("files", {})
            write_manifest(staging, {
                **kept,
                "index": {k: v for k, v in section.items() if k not in ("files", "linked")},
                "updated": now(),
            }, section["files"], {f: files[f] for f in section["linked"] if f in files})
            report = verify_folder(staging)  # every row was copied: the copy must hash to the served digest
            if not report.ok:
                raise IngestError(f"index {index!r}: the resharded version failed verification: {report.problems}")
            version = layout.publish(staging, number).name
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            layout.remove_store_files(names)
            raise
    return ReshardSummary(index, version, len(store_files(manifest)), shards, len(pmids),
                          time.perf_counter() - started)


def _live(base: int) -> str:
    return f"valid_from <= {int(base)} AND (valid_to IS NULL OR valid_to > {int(base)})"


def _provenance(paths: list, base: int) -> list[tuple[int, int, tuple]]:
    """Every source shard's live provenance rows in the order they were applied: ``(shard, id, row)``."""
    rows = []
    for n, path in enumerate(paths):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for row in conn.execute("SELECT valid_from, id, kind, name, at, added, replaced, deleted, unchanged, "
                                    f"skipped FROM provenance WHERE {_live(base)}"):
                rows.append(((row[0], n, row[1]), (n, row[1], row[2:])))
        finally:
            conn.close()
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


def _copy(sources: list, target, shard: int, bound: tuple[str, str] | None, base: int, number: int,
          provenance: list[tuple[int, int, tuple]], renumber: list[tuple[int, int, int]]) -> None:
    """Copy the rows version ``base`` of the ``sources`` holds for PMIDs in ``bound`` into a new shard file, with
    the ``provenance`` rows given (renumbered from 1 in order; source links follow ``renumber``)."""
    RecordStore(target, version=number, shard=shard).close()  # the schema, and the shard's chunk id range
    conn = sqlite3.connect(f"file:{target}", uri=True)
    try:
        with conn:
            conn.execute("CREATE TEMP TABLE renumber (src INTEGER, old INTEGER, new INTEGER)")
            conn.executemany("INSERT INTO temp.renumber VALUES (?, ?, ?)", renumber)
            conn.executemany("INSERT INTO provenance (id, kind, name, at, added, replaced, deleted, unchanged, skipped, "
                             "valid_from) VALUES (?,?,?,?,?,?,?,?,?,?)",
                             [(i, *row, number) for i, (_, _, row) in enumerate(provenance, start=1)])
        for n, path in enumerate(sources if bound is not None else []):  # one at a time: SQLite attaches at most 10
            conn.execute("ATTACH DATABASE ? AS src", (f"file:{path}?mode=ro",))
            with conn:
                for table, columns in _COPY.items():
                    if table == "record_sources":
                        conn.execute("INSERT INTO main.record_sources (pmid, provenance_id, valid_from) "
                                     "SELECT s.pmid, r.new, ? FROM src.record_sources s JOIN temp.renumber r "
                                     f"ON r.src = {n} AND r.old = s.provenance_id "
                                     f"WHERE {_live(base).replace('valid_', 's.valid_')} AND s.pmid >= ? AND s.pmid < ?",
                                     (number, *bound))
                    else:
                        conn.execute(f"INSERT INTO main.{table} ({columns}, valid_from) SELECT {columns}, ? "
                                     f"FROM src.{table} WHERE {_live(base)} AND pmid >= ? AND pmid < ?",
                                     (number, *bound))
            conn.execute("DETACH DATABASE src")
        with conn:
            conn.execute("INSERT INTO chunks_fts (rowid, text) SELECT chunk_id, text FROM main.chunks")
            conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(chunk_id), 0) FROM chunks)) "
                         "WHERE name = 'chunks'")
            conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")
    finally:
        conn.close()

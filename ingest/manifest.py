"""``manifest.json``: what an index version holds, and the check that it still does."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.ann.sharded import LEGACY_FILE, ShardedIndex
from ingest.sharded_store import ShardedStore
from ingest.store import RecordStore
from pubmed_rag.checksums import sha256_file

# 1: one vectors.faiss (IndexIDMap2 over IndexFlatIP); still opened, rewritten as shards by the next update.
# 2: an ``index`` section (type, parameters, shards) and shard files (ingest/ann/sharded.py).
SCHEMA_VERSION = 2
SCHEMA_VERSIONS = (1, 2)
STORE_FILE = "store.sqlite"
SHARD_FILE = "store-{:05d}.sqlite"
VECTORS_FILE = LEGACY_FILE
MANIFEST_FILE = "manifest.json"


def write_manifest(folder: Path, base: dict, files: list[str], known: dict[str, dict] | None = None) -> dict:
    """Write ``manifest.json`` listing ``files`` (paths relative to ``folder``) with their checksums; return it.

    ``known`` holds entries already computed for files hard-linked unchanged from the previous version, so an
    update hashes only what it wrote."""
    manifest = dict(base)
    manifest["schema_version"] = SCHEMA_VERSION
    known = known or {}
    manifest["files"] = {
        name: known.get(name) or {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
        for name in files
    }
    tmp = folder / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(folder / MANIFEST_FILE)
    return manifest


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: manifest missing; the index version is incomplete.") from exc


@dataclass
class VerifyReport:
    """Result of ``index verify``: empty ``problems`` means the index is intact."""

    folder: Path
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def open_vectors(folder: Path, manifest: dict, exact_below: int = 20_000) -> ShardedIndex:
    """The version's vectors, memory-mapped (a schema-1 folder opens as one exact flat shard)."""
    return ShardedIndex.open(folder, manifest.get("index"), exact_below=exact_below)


def shared_store(manifest: dict) -> bool:
    """Whether the version reads the index's shared, versioned store (else its own file, an earlier release's)."""
    return bool(manifest.get("store", {}).get("shared"))


def store_files(manifest: dict) -> list[str]:
    """The store shards a version reads, by file name in the index folder, the write shard first (an index from
    before store shards has one: ``store.sqlite``)."""
    return list(manifest.get("store", {}).get("shards") or [STORE_FILE])


def shard_number(name: str) -> int:
    """The number of a store shard file: 0 for ``store.sqlite``, k for ``store-0000k.sqlite``."""
    return 0 if name == STORE_FILE else int(name.removeprefix("store-").removesuffix(".sqlite"))


def shard_file(number: int) -> str:
    """The file name of store shard ``number`` (0: ``store.sqlite``)."""
    return STORE_FILE if number == 0 else SHARD_FILE.format(number)


def store_path(folder: Path, manifest: dict) -> Path:
    """The record store (its write shard) a version folder reads: in ``indexes/<name>/``, or the folder's own file."""
    return store_paths(folder, manifest)[0]


def store_paths(folder: Path, manifest: dict) -> list[Path]:
    """Every store shard a version folder reads: ``indexes/<name>/store*.sqlite``, or the folder's own file."""
    if not shared_store(manifest):
        return [folder / STORE_FILE]
    return [folder.parent.parent / name for name in store_files(manifest)]


def open_store(folder: Path, manifest: dict) -> ShardedStore:
    """The version's records, read-only, exactly as that version holds them."""
    version = manifest["store"]["version"] if shared_store(manifest) else None
    return ShardedStore([RecordStore(path, readonly=True, version=version) for path in store_paths(folder, manifest)])


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)


def verify_folder(folder: Path, linked_from: Path | None = None) -> VerifyReport:
    """Recompute checksums and counts of an index version and compare them with its manifest.

    Alone, it reads the whole version: every file hashed, every live row of the store hashed and counted, every
    chunk id matched to a vector. With ``linked_from`` (the previous version, during an update) it reads only what
    the update wrote: a file that is the same inode as that version's, recorded with the same checksum, is not hashed
    again, and the store and vectors are checked by their change against that version (``_check_change``)."""
    report = VerifyReport(folder)
    try:
        manifest = read_manifest(folder)
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        report.problems.append(str(exc))
        return report
    if manifest.get("schema_version") not in SCHEMA_VERSIONS:
        report.problems.append(f"schema version {manifest.get('schema_version')} is not one of {SCHEMA_VERSIONS}; "
                               "rebuild the index with this release's 'pubmed-rag ingest'.")
        return report
    previous = read_manifest(linked_from).get("files", {}) if linked_from else {}
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        if not path.exists():
            report.problems.append(f"{name}: missing")
            continue
        if (linked_from and previous.get(name, {}).get("sha256") == expected["sha256"]
                and _same_file(path, linked_from / name)):
            continue
        actual = sha256_file(path)
        if actual != expected["sha256"]:
            report.problems.append(f"{name}: sha256 {actual[:12]}... != manifest {expected['sha256'][:12]}...")
    if report.problems:
        return report
    missing = [p for p in store_paths(folder, manifest) if not p.exists()] if shared_store(manifest) else []
    if missing:
        report.problems.append(f"{missing[0]}: the index's record store is missing")
        return report
    prev_manifest = read_manifest(linked_from) if linked_from else None
    vectors = open_vectors(folder, manifest)
    store = open_store(folder, manifest)
    try:
        if shared_store(manifest):
            _check_store_digest(store, manifest, prev_manifest, report)
        if shared_store(manifest) and prev_manifest is not None and shared_store(prev_manifest):
            _check_change(store, vectors, manifest, linked_from, prev_manifest, report)
        else:
            _check_whole(store, vectors, manifest, report)
    finally:
        store.close()
    if vectors.dimension != manifest["embedding"]["dimension"]:
        report.problems.append(
            f"vectors: dimension {vectors.dimension} != manifest {manifest['embedding']['dimension']}"
        )
    return report


COUNTED = ("records", "chunks", "deleted", "title_only", "retracted")


def _check_whole(store: ShardedStore, vectors: ShardedIndex, manifest: dict, report: VerifyReport) -> None:
    """Every count, and every chunk id against the vectors' ids: reads the whole version."""
    counts = store.counts()
    chunk_ids = np.fromiter(store.all_chunk_ids(), dtype=np.int64)  # sorted by SQL
    report.checked = {**counts, "vectors": len(vectors)}
    for key in COUNTED:
        if manifest["counts"].get(key) != counts[key]:
            report.problems.append(f"{key}: store has {counts[key]}, manifest says {manifest['counts'].get(key)}")
    if len(vectors) != counts["chunks"]:
        report.problems.append(f"vectors: FAISS has {len(vectors)}, store has {counts['chunks']} chunks")
    if len(vectors) != len(chunk_ids) or not np.array_equal(np.sort(vectors.ids()), chunk_ids):
        report.problems.append("vectors: FAISS ids differ from the store's chunk ids")


def _check_change(store: ShardedStore, vectors: ShardedIndex, manifest: dict, previous: Path, prev_manifest: dict,
                  report: VerifyReport) -> None:
    """What an update changed, against the version it extends (itself verified when it was published): the counts
    moved by the rows this version added and closed, and the chunks it added and closed are exactly the vectors it
    added and deleted. Reads only the change."""
    version = manifest["store"]["version"]
    delta = store.count_changes(version)
    counts = {key: prev_manifest["counts"].get(key, 0) + delta[key] for key in delta}
    report.checked = {**counts, "vectors": len(vectors)}
    for key in COUNTED:
        if manifest["counts"].get(key) != counts[key]:
            report.problems.append(f"{key}: the store's change gives {counts[key]}, manifest says "
                                   f"{manifest['counts'].get(key)}")
    if len(vectors) != manifest["counts"]["chunks"]:
        report.problems.append(f"vectors: FAISS has {len(vectors)}, manifest says {manifest['counts']['chunks']} chunks")
    added, closed = store.changed_chunk_ids(version)
    vectors_added, vectors_deleted = vectors.changes_since(open_vectors(previous, prev_manifest))
    if not np.array_equal(added, vectors_added) or not np.array_equal(closed, vectors_deleted):
        report.problems.append("vectors: the chunks this version added or removed differ from its vectors' change")


def _check_store_digest(store: ShardedStore, manifest: dict, previous: dict | None, report: VerifyReport) -> None:
    """The store's rows against the manifest's digest: during an update, only the rows this version changed (carried
    forward from the previous version's digest); otherwise every row the version can see."""
    section = manifest["store"]
    if previous is not None and shared_store(previous):
        actual = store.change_digest(previous["store"]["digest"], section["version"])
        what = "rows changed by this version"
    else:
        actual, what = store.digest(), "rows"
    if actual != section["digest"]:
        report.problems.append(f"{STORE_FILE}: the {what} hash to {actual[:12]}..., manifest says "
                               f"{section['digest'][:12]}... (the store was changed outside pubmed-rag or is damaged)")

"""``manifest.json``: what an index version holds, and the check that it still does."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ingest.ann.sharded import LEGACY_FILE, ShardedIndex
from ingest.store import RecordStore

# 1: one vectors.faiss (IndexIDMap2 over IndexFlatIP); still opened, rewritten as shards by the next update.
# 2: an ``index`` section (type, parameters, shards) and shard files (ingest/ann/sharded.py).
SCHEMA_VERSION = 2
SCHEMA_VERSIONS = (1, 2)
STORE_FILE = "store.sqlite"
VECTORS_FILE = LEGACY_FILE
MANIFEST_FILE = "manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, base: dict, files: list[str], known: dict[str, dict] | None = None) -> dict:
    """Write ``manifest.json`` listing ``files`` (paths relative to ``folder``) with their checksums; return it.

    ``known`` holds entries already computed for files hard-linked unchanged from the previous version, so an
    update hashes only what it wrote."""
    manifest = dict(base)
    manifest["schema_version"] = SCHEMA_VERSION
    known = known or {}
    manifest["files"] = {
        name: known[name] if name in known else {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size}
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


def store_path(folder: Path, manifest: dict) -> Path:
    """The record store a version folder reads: ``indexes/<name>/store.sqlite``, or the folder's own file."""
    return folder.parent.parent / STORE_FILE if shared_store(manifest) else folder / STORE_FILE


def open_store(folder: Path, manifest: dict) -> RecordStore:
    """The version's records, read-only, exactly as that version holds them."""
    version = manifest["store"]["version"] if shared_store(manifest) else None
    return RecordStore(store_path(folder, manifest), readonly=True, version=version)


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)


def verify_folder(folder: Path, linked_from: Path | None = None) -> VerifyReport:
    """Recompute checksums and counts of an index version and compare them with its manifest.

    With ``linked_from`` (the previous version, during an update) a file that is the same inode as that version's
    file and recorded with the same checksum there is not hashed again: it is the same bytes."""
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
        actual = sha256(path)
        if actual != expected["sha256"]:
            report.problems.append(f"{name}: sha256 {actual[:12]}... != manifest {expected['sha256'][:12]}...")
    if report.problems:
        return report
    if shared_store(manifest) and not store_path(folder, manifest).exists():
        report.problems.append(f"{store_path(folder, manifest)}: the index's record store is missing")
        return report
    store = open_store(folder, manifest)
    try:
        counts = store.counts()
        chunk_ids = set(store.all_chunk_ids())
        if shared_store(manifest):
            _check_store_digest(store, manifest, read_manifest(linked_from) if linked_from else None, report)
    finally:
        store.close()
    vectors = open_vectors(folder, manifest)
    report.checked = {**counts, "vectors": len(vectors)}
    for key in ("records", "chunks", "deleted", "title_only", "retracted"):
        if manifest["counts"].get(key) != counts[key]:
            report.problems.append(f"{key}: store has {counts[key]}, manifest says {manifest['counts'].get(key)}")
    if len(vectors) != counts["chunks"]:
        report.problems.append(f"vectors: FAISS has {len(vectors)}, store has {counts['chunks']} chunks")
    if len(vectors) != len(chunk_ids) or set(vectors.ids().tolist()) != chunk_ids:
        report.problems.append("vectors: FAISS ids differ from the store's chunk ids")
    if vectors.dimension != manifest["embedding"]["dimension"]:
        report.problems.append(
            f"vectors: dimension {vectors.dimension} != manifest {manifest['embedding']['dimension']}"
        )
    return report


def _check_store_digest(store: RecordStore, manifest: dict, previous: dict | None, report: VerifyReport) -> None:
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

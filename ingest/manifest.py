"""``manifest.json``: what an index version holds, and the check that it still does."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ingest.faiss_index import VectorIndex
from ingest.store import RecordStore

SCHEMA_VERSION = 1
STORE_FILE = "store.sqlite"
VECTORS_FILE = "vectors.faiss"
MANIFEST_FILE = "manifest.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, base: dict) -> dict:
    """Write ``manifest.json`` for the (closed) store and vectors in ``folder``; return it."""
    manifest = dict(base)
    manifest["schema_version"] = SCHEMA_VERSION
    manifest["files"] = {
        name: {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size}
        for name in (STORE_FILE, VECTORS_FILE)
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


def verify_folder(folder: Path) -> VerifyReport:
    """Recompute checksums and counts of an index version and compare them with its manifest."""
    report = VerifyReport(folder)
    try:
        manifest = read_manifest(folder)
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        report.problems.append(str(exc))
        return report
    if manifest.get("schema_version") != SCHEMA_VERSION:
        report.problems.append(f"schema version {manifest.get('schema_version')} != {SCHEMA_VERSION}")
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        if not path.exists():
            report.problems.append(f"{name}: missing")
            continue
        actual = sha256(path)
        if actual != expected["sha256"]:
            report.problems.append(f"{name}: sha256 {actual[:12]}... != manifest {expected['sha256'][:12]}...")
    if report.problems:
        return report
    store = RecordStore(folder / STORE_FILE, readonly=True)
    try:
        counts = store.counts()
        chunk_ids = set(store.all_chunk_ids())
    finally:
        store.close()
    vectors = VectorIndex.load(folder / VECTORS_FILE)
    report.checked = {**counts, "vectors": len(vectors)}
    for key in ("records", "chunks", "deleted", "title_only", "retracted"):
        if manifest["counts"].get(key) != counts[key]:
            report.problems.append(f"{key}: store has {counts[key]}, manifest says {manifest['counts'].get(key)}")
    if len(vectors) != counts["chunks"]:
        report.problems.append(f"vectors: FAISS has {len(vectors)}, store has {counts['chunks']} chunks")
    if set(vectors.ids().tolist()) != chunk_ids:
        report.problems.append("vectors: FAISS ids differ from the store's chunk ids")
    if vectors.dimension != manifest["embedding"]["dimension"]:
        report.problems.append(
            f"vectors: dimension {vectors.dimension} != manifest {manifest['embedding']['dimension']}"
        )
    return report

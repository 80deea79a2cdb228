"""File checksums: every file a loader reads is checked against the sha256 recorded when it was written (shipped
models, index versions, caches built on first use), so a damaged file is reported or rebuilt, never used."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _stat_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def installed_sha256(path: Path) -> str:
    """The sha256 of an installed file that is read often and changes only when reinstalled (base weights): once per
    process per file version (size and modification time)."""
    stat = Path(path).stat()
    return _stat_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def file_checksums(folder: Path, names: list[str] | None = None) -> dict[str, str]:
    """``{name: sha256}`` of ``names`` in ``folder`` (default: every file in it)."""
    folder = Path(folder)
    names = names if names is not None else sorted(p.name for p in folder.iterdir() if p.is_file())
    return {name: sha256_file(folder / name) for name in names}


def checksum_problem(folder: Path, expected: dict[str, str]) -> str:
    """What is wrong with the files of ``folder`` against ``expected`` ({name: sha256}): "" when every one is present
    and matches; else which file is missing or differs."""
    if not expected:
        return f"no checksums recorded for {folder}"
    for name, digest in expected.items():
        path = Path(folder) / name
        if not path.is_file():
            return f"{path} is missing"
        if sha256_file(path) != digest:
            return f"{path} differs from its recorded checksum"
    return ""

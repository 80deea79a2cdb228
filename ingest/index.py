"""Index folders: ``indexes/<name>/versions/vNNNN/`` plus a ``CURRENT`` pointer swapped atomically.

A build or update writes a new version folder and only then replaces ``CURRENT`` (``os.replace`` is atomic), so a
process killed at any point leaves the previous version intact and served.

A reader holds a lease on the version it opened (a shared ``flock`` on its ``manifest.json``) until it closes it:
pruning after a publish skips leased versions, and the shared store keeps the rows they can see, so a version stays
whole for as long as anyone reads it, however many versions are published meanwhile.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO

from ingest.manifest import (
    MANIFEST_FILE,
    STORE_FILE,
    VerifyReport,
    open_store,
    open_vectors,
    read_manifest,
    shared_store,
    store_files,
    verify_folder,
)
from ingest.sentence_store import SentenceStore
from ingest.sharded_store import ChunkPmids
from ingest.store import RecordStore
from pubmed_rag.settings import IndexSettings, Settings
from pubmed_rag.threads import configure as configure_threads

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KEEP_VERSIONS = 2


class UnknownIndexError(LookupError):
    """The named index does not exist."""


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid index name {name!r}: use letters, digits, '-', '_' or '.' (max 64).")
    return name


@dataclass
class IndexLayout:
    """Where one index's versions live."""

    index_dir: Path
    name: str

    def __post_init__(self) -> None:
        check_name(self.name)
        self.index_dir = Path(self.index_dir)

    @property
    def root(self) -> Path:
        return self.index_dir / self.name

    @property
    def versions(self) -> Path:
        return self.root / "versions"

    def current(self) -> Path | None:
        """The served version folder, or None if the index was never built."""
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        folder = self.versions / pointer.read_text().strip()
        return folder if folder.is_dir() else None

    def exists(self) -> bool:
        return self.current() is not None

    def new_version(self) -> Path:
        """A fresh staging folder; stale ones from killed runs are removed first."""
        self.versions.mkdir(parents=True, exist_ok=True)
        for stale in self.versions.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        folder = self.versions / f".tmp-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return folder

    def _numbers(self) -> list[int]:
        return sorted(int(p.name[1:]) for p in self.versions.glob("v[0-9]*") if p.name[1:].isdigit())

    def next_number(self) -> int:
        """The number the next published version gets (call under ``lock``)."""
        return max(self._numbers(), default=0) + 1

    def publish(self, staging: Path, number: int | None = None) -> Path:
        """Rename ``staging`` to the next version (``number``, which must be that) and point ``CURRENT`` at it."""
        expected = self.next_number()
        if number is not None and number != expected:
            raise RuntimeError(f"index {self.name!r}: staging was written as v{number:04d} but the next version is "
                               f"v{expected:04d}; another writer published meanwhile.")
        final = self.versions / f"v{expected:04d}"
        staging.rename(final)
        tmp = self.root / f"CURRENT.{uuid.uuid4().hex[:8]}"
        with open(tmp, "w") as handle:
            handle.write(final.name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / "CURRENT")
        self._prune(keep=final)
        return final

    def _prune(self, keep: Path) -> None:
        """Keep the newest ``KEEP_VERSIONS`` versions; purge the store rows none of them can see."""
        olds = sorted((p for p in self.versions.glob("v[0-9]*") if p != keep), key=lambda p: p.name)
        for old in olds[: max(0, len(olds) - (KEEP_VERSIONS - 1))]:
            with _exclusive(old) as free:
                if free:  # no reader holds it: removed while the lock keeps new readers waiting
                    shutil.rmtree(old, ignore_errors=True)
        in_use = self.store_files_in_use()
        for path in [self.root / STORE_FILE, *self.root.glob("store-*.sqlite")]:
            if not path.exists():
                continue
            if path.name not in in_use:  # no kept version reads it any more (the index was re-sharded)
                self.remove_store_files([path.name])
                continue
            store = RecordStore(path, version=int(keep.name[1:]))
            try:
                store.purge(min(self._numbers(), default=int(keep.name[1:])))
            finally:
                store.close()

    def remove_store_files(self, names: list[str]) -> None:
        """Delete store shard files (and their WAL) from the index folder."""
        for name in names:
            for suffix in ("", "-wal", "-shm"):
                (self.root / (name + suffix)).unlink(missing_ok=True)

    def store_files_in_use(self) -> set[str]:
        """The store shards some version on disk reads (by file name in the index folder)."""
        names: set[str] = set()
        for folder in self.versions.glob("v[0-9]*"):
            try:
                manifest = read_manifest(folder)
            except (FileNotFoundError, ValueError):
                continue
            if shared_store(manifest):
                names.update(store_files(manifest))
        return names

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer per index at a time."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise RuntimeError(f"index {self.name!r} is being written by another process; try again later.") from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def list_indexes(index_dir: Path) -> list[str]:
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir() and (p / "CURRENT").exists())


def current_folder(index_dir: Path, name: str) -> Path:
    folder = IndexLayout(index_dir, name).current()
    if folder is None:
        known = ", ".join(list_indexes(index_dir)) or "none"
        raise UnknownIndexError(
            f"unknown index {name!r} in {index_dir} (known: {known}). Build it with "
            f"'pubmed-rag ingest --index {name} FILE...' or 'make demo' for the sample index."
        )
    return folder


def index_info(index_dir: Path, name: str) -> dict:
    folder = current_folder(index_dir, name)
    manifest = read_manifest(folder)
    return {**manifest, "path": str(folder)}


def verify_index(index_dir: Path, name: str) -> VerifyReport:
    return verify_folder(current_folder(index_dir, name))


def search_overrides(settings: IndexSettings) -> dict[str, int]:
    """The query-time search parameters (``nprobe``, ``ef_search``, ``refine``) set to other than their defaults:
    they replace, for every query, the values the index was built with (its manifest's)."""
    defaults = IndexSettings()
    return {key: getattr(settings, key) for key in ("nprobe", "ef_search", "refine")
            if getattr(settings, key) != getattr(defaults, key)}


def open_index(settings: Settings, name: str | None = None) -> LoadedIndex:
    """The served version of index ``name`` (default ``paths.default_index``), searched with the ``index`` settings
    that apply at query time: ``nprobe``, ``ef_search``, ``refine`` (see ``search_overrides``) and ``exact_below``.
    The process's CPU threads are set from ``threads`` here, the first time (``pubmed_rag.threads.configure``)."""
    configure_threads(settings.threads)
    return LoadedIndex(settings.paths.index_dir, name or settings.paths.default_index,
                       search=search_overrides(settings.index), exact_below=settings.index.exact_below)


# Versions this process has open. flock keeps two opens of one file in one process apart on local filesystems, but
# where it is emulated with POSIX locks (NFS) a process's own exclusive lock would succeed over its own leases.
_HELD: dict[Path, int] = {}
_HELD_LOCK = threading.Lock()


def _lease(folder: Path) -> IO[bytes] | None:
    """A reader's shared lock on a version (its manifest file), or None when the version is gone."""
    try:
        handle = open(folder / MANIFEST_FILE, "rb")  # noqa: SIM115 - held for the reader's lifetime
    except FileNotFoundError:
        return None
    fcntl.flock(handle, fcntl.LOCK_SH)  # waits while a prune holds it exclusively
    if not (folder / MANIFEST_FILE).exists():  # pruned before the lock was granted
        handle.close()
        return None
    with _HELD_LOCK:
        _HELD[folder.resolve()] = _HELD.get(folder.resolve(), 0) + 1
    return handle


def _release(folder: Path, handle: IO[bytes]) -> None:
    handle.close()
    with _HELD_LOCK:
        left = _HELD.get(folder.resolve(), 1) - 1
        if left > 0:
            _HELD[folder.resolve()] = left
        else:
            _HELD.pop(folder.resolve(), None)


@contextmanager
def _exclusive(folder: Path) -> Iterator[bool]:
    """Whether no reader holds ``folder`` (then held exclusively for the block, so no reader opens it meanwhile)."""
    with _HELD_LOCK:
        if folder.resolve() in _HELD:  # open in this process
            yield False
            return
    try:
        handle = open(folder / MANIFEST_FILE, "rb")
    except FileNotFoundError:
        yield True  # an incomplete version: nobody can have opened it
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


class LoadedIndex:
    """A served index version opened for reading: manifest, record store and vectors (memory-mapped).

    ``search`` overrides the manifest's search parameters (``nprobe``, ``ef_search``, ``refine``) for every query."""

    def __init__(self, index_dir: Path, name: str, search: dict[str, int] | None = None,
                 exact_below: int = 20_000) -> None:
        self.name = name
        for _ in range(10):  # another version may be published and this one pruned between reading and leasing
            self.folder = current_folder(index_dir, name)
            self._lease = _lease(self.folder)
            if self._lease is not None:
                break
        else:
            raise RuntimeError(f"index {name!r}: the served version kept changing while it was being opened; try again")
        try:
            self.manifest = read_manifest(self.folder)
            self.store = open_store(self.folder, self.manifest)
            self.vectors = open_vectors(self.folder, self.manifest, exact_below=exact_below)
        except BaseException:
            self._drop_lease()
            raise
        self.vectors.search_overrides = {k: v for k, v in (search or {}).items() if v}

    def close(self) -> None:
        """Close the store and give up the lease: the version may be pruned at the next publish."""
        self.store.close()
        self._drop_lease()

    def _drop_lease(self) -> None:
        if self._lease is not None:
            _release(self.folder, self._lease)
            self._lease = None

    def __del__(self) -> None:  # a reader dropped without close(): the version may be pruned again
        lease = getattr(self, "_lease", None)
        if lease is not None:
            _release(self.folder, lease)

    @cached_property
    def chunk_pmids(self) -> ChunkPmids:
        """Chunk id -> PMID for this version, read once so ranking needs no SQL per hit."""
        return ChunkPmids.read(self.store)

    @cached_property
    def sentences(self) -> SentenceStore | None:
        """The sentences and vectors stored at ingest (``ingest.sentence_store``), or ``None`` without them."""
        return SentenceStore.open(self.folder.parent.parent, self.embedding_model)  # indexes/<name>/

    @property
    def embedding_model(self) -> str:
        return self.manifest["embedding"]["model"]

    @property
    def max_tokens(self) -> int:
        return int(self.manifest["embedding"]["max_tokens"])

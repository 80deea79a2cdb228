"""One index version's vectors: immutable, memory-mapped shard files plus a deletion list.

Layout inside a version folder::

    shards/s0001.faiss      one FAISS index over positions 0..n-1 (written once, never modified)
    shards/s0001.ids.npy    chunk id of each position (int64)
    deleted.npy             chunk ids removed since their shard was written (sorted int64)
    trained.faiss           IVF types: the trained, empty index every shard is cloned from

An update hard-links the previous version's shard files into the new version folder, writes one new shard for the
vectors it added and a new deletion list, so its cost is proportional to the change. Shards are never modified
(the previous version shares their inodes), so removal is always the exclusion list, applied through the search's
ID selector for every type; ``ingest.compact`` merges the shards and drops the excluded vectors for good.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from ingest.ann import IndexSpec, family, resolve_spec
from ingest.ann.base import read
from ingest.ann.ivf import train_sample
from pubmed_rag.threads import in_search_pool, search_pool

SHARDS_DIR = "shards"
DELETED_FILE = "deleted.npy"
TRAINED_FILE = "trained.faiss"
LEGACY_FILE = "vectors.faiss"
WIDEN = (1, 4, 16, 64)
SMALL_INDEX = 500_000  # vectors: below this a single query is searched on one OpenMP thread


class LegacyIndexError(RuntimeError):
    """A version folder in a layout this release cannot open."""


@dataclass
class Shard:
    """One immutable shard: a FAISS index over positions and the chunk id of each position."""

    name: str
    index: faiss.Index
    ids: np.ndarray
    files: list[Path] = field(default_factory=list)  # where it lives on disk (empty: not written yet)
    owner: faiss.Index | None = None  # keeps a wrapping index (legacy IDMap2) alive

    def __post_init__(self) -> None:
        # Shards are written sorted by chunk id (ids memory-mapped, no private copy); a legacy shard may not be.
        ascending = len(self.ids) < 2 or bool(np.all(self.ids[1:] > self.ids[:-1]))
        self._order = None if ascending else np.argsort(self.ids, kind="stable")
        self._sorted = self.ids if ascending else self.ids[self._order]
        self._live: np.ndarray | None = None  # packed bitmap of positions not deleted; None = all live

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Positions of those ``chunk_ids`` that are in this shard."""
        if not len(self._sorted) or not len(chunk_ids):
            return np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted, chunk_ids), len(self._sorted) - 1)
        at = at[self._sorted[at] == chunk_ids]
        return at.astype(np.int64) if self._order is None else self._order[at]

    def set_deleted(self, deleted: np.ndarray) -> int:
        """Apply the version's deletion list; return how many of this shard's vectors it excludes."""
        gone = self.positions(deleted)
        if not len(gone):
            self._live = None
            return 0
        mask = np.ones(len(self), dtype=bool)
        mask[gone] = False
        self._live = np.packbits(mask, bitorder="little")
        return int(len(gone))

    def bitmap(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """Packed bitmap of the positions a search may return (``None``: all)."""
        if allowed is None:
            return self._live
        mask = np.zeros(len(self), dtype=bool)
        mask[self.positions(allowed)] = True
        bits = np.packbits(mask, bitorder="little")
        return bits & self._live if self._live is not None else bits

    def live_positions(self) -> np.ndarray:
        if self._live is None:
            return np.arange(len(self), dtype=np.int64)
        return np.flatnonzero(np.unpackbits(self._live, bitorder="little", count=len(self))).astype(np.int64)


class ShardedIndex:
    """The vectors of one index version (ids = chunk ids): search, add, remove, save, merge."""

    def __init__(self, spec: IndexSpec, dimension: int, shards: list[Shard] | None = None,
                 deleted: np.ndarray | None = None, folder: Path | None = None, requested: str | None = None,
                 flat_below: int = 200_000, exact_below: int = 20_000) -> None:
        self.spec, self.dimension, self.folder = spec, int(dimension), folder
        self.requested = requested or spec.type
        self.flat_below, self.exact_below = flat_below, exact_below
        self.shards: list[Shard] = shards or []
        self._deleted = np.unique(np.asarray(deleted if deleted is not None else [], dtype=np.int64))
        self._pending_ids: list[np.ndarray] = []
        self._pending_vectors: list[np.ndarray] = []
        self._excluded = sum(s.set_deleted(self._deleted) for s in self.shards)
        self.search_overrides: dict[str, int] = {}

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, dimension: int, spec: IndexSpec, flat_below: int = 200_000,
               exact_below: int = 20_000) -> ShardedIndex:
        """An empty index; ``spec.type`` may be ``auto`` (resolved when the first shard is written)."""
        return cls(spec, dimension, requested=spec.type, flat_below=flat_below, exact_below=exact_below)

    @classmethod
    def open(cls, folder: Path, section: dict | None, exact_below: int = 20_000) -> ShardedIndex:
        """Open a version's vectors memory-mapped; ``section`` is its manifest's ``index`` entry (``None`` for a
        version written before index types existed: one ``vectors.faiss``, exact flat search)."""
        folder = Path(folder)
        if section is None:
            return cls._open_legacy(folder, exact_below)
        spec = IndexSpec.from_dict(section["spec"])
        shards = []
        for entry in section["shards"]:
            faiss_file = folder / SHARDS_DIR / f"{entry['name']}.faiss"
            ids_file = folder / SHARDS_DIR / f"{entry['name']}.ids.npy"
            index = read(faiss_file, int(entry["count"]) * int(section["dimension"]) * 4)
            shards.append(Shard(entry["name"], index, np.load(ids_file, mmap_mode="r"), [faiss_file, ids_file]))
        deleted = np.load(folder / DELETED_FILE) if (folder / DELETED_FILE).exists() else None
        return cls(spec, section["dimension"], shards, deleted, folder, section.get("requested"),
                   section.get("flat_below", 200_000), exact_below)

    @classmethod
    def _open_legacy(cls, folder: Path, exact_below: int) -> ShardedIndex:
        path = folder / LEGACY_FILE
        if not path.exists():
            raise LegacyIndexError(f"{folder}: no index section in the manifest and no {LEGACY_FILE}; the version "
                                   "is incomplete. Rebuild it with 'pubmed-rag ingest'.")
        wrapper = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        if not isinstance(wrapper, faiss.IndexIDMap2 | faiss.IndexIDMap):
            raise LegacyIndexError(f"{path}: unexpected index {type(wrapper).__name__}; rebuild the index with "
                                   "'pubmed-rag ingest'.")
        inner = faiss.downcast_index(wrapper.index)
        shard = Shard("legacy", inner, faiss.vector_to_array(wrapper.id_map).astype(np.int64), [], owner=wrapper)
        return cls(IndexSpec("flat"), wrapper.d, [shard], None, folder, "flat")

    def changes_since(self, previous: ShardedIndex) -> tuple[np.ndarray, np.ndarray]:
        """``(ids in shards that ``previous`` does not have, ids deleted since it)``, sorted: what an update wrote."""
        known = {s.name for s in previous.shards}
        new = [np.asarray(s.ids) for s in self.shards if s.name not in known]
        added = np.sort(np.concatenate(new)) if new else np.zeros(0, dtype=np.int64)
        return added, np.setdiff1d(self._deleted, previous._deleted)

    # -- contents --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(s) for s in self.shards) - self._excluded + sum(len(p) for p in self._pending_ids)

    @property
    def deleted(self) -> np.ndarray:
        return self._deleted

    def ids(self) -> np.ndarray:
        """Every live chunk id."""
        parts = [s.ids[s.live_positions()] for s in self.shards] + self._pending_ids
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def vectors(self, ids: list[int]) -> np.ndarray:
        """The stored vectors of these chunk ids, one row each (in the order given)."""
        wanted = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(wanted), self.dimension), dtype=np.float32)
        found = np.zeros(len(wanted), dtype=bool)
        sources = [(s.ids, lambda pos, s=s: self._family.reconstruct(s.index, pos)) for s in self.shards]
        sources += [(pid, lambda pos, v=pvec: v[pos]) for pid, pvec in zip(self._pending_ids, self._pending_vectors,
                                                                          strict=True)]
        for ids_of, rows in sources:
            where = {int(c): p for p, c in enumerate(ids_of)} if len(ids_of) < 4096 else None
            for j, c in enumerate(wanted.tolist()):
                if found[j]:
                    continue
                pos = where.get(c) if where is not None else _find(ids_of, c)
                if pos is not None:
                    out[j], found[j] = rows(np.array([pos], dtype=np.int64))[0], True
        if not found.all():
            raise KeyError(f"chunk ids not in the index: {wanted[~found][:5].tolist()}")
        return out

    @property
    def _family(self):
        return family(self.spec.type if self.spec.type != "auto" else "flat")

    # -- changes (kept in memory until save) ---------------------------------------------------------------
    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        if len(ids):
            self._pending_ids.append(np.asarray(ids, dtype=np.int64))
            self._pending_vectors.append(np.ascontiguousarray(vectors, dtype=np.float32))

    def remove(self, ids: list[int]) -> int:
        """Remove chunk ids: dropped outright if added since the last save, else excluded by the deletion list."""
        if not len(ids):
            return 0
        gone = np.asarray(ids, dtype=np.int64)
        removed = 0
        for n, pid in enumerate(self._pending_ids):
            keep = ~np.isin(pid, gone)
            removed += int((~keep).sum())
            self._pending_ids[n], self._pending_vectors[n] = pid[keep], self._pending_vectors[n][keep]
        in_shards = np.concatenate([s.ids[s.positions(gone)] for s in self.shards]) if self.shards else gone[:0]
        fresh = np.setdiff1d(in_shards, self._deleted)
        if len(fresh):
            self._deleted = np.union1d(self._deleted, fresh)
            self._excluded = sum(s.set_deleted(self._deleted) for s in self.shards)
        return removed + int(len(fresh))

    # -- search ----------------------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               **overrides: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, chunk ids)`` for one query vector, best first (``-1`` ids are padding); ``allowed`` restricts
        the search to those chunk ids. ``overrides`` (``nprobe``, ``ef_search``, ``refine``) replace the manifest's
        search parameters for this query.

        Returns ``min(k, matching vectors)`` results like exact search does: an approximate search that finds fewer
        (a selective filter, many deletions) is repeated visiting 4x, 16x, 64x more of the index, and a filter
        that allows at most ``exact_below`` chunks is searched exactly over just those chunks.

        The search runs on a pool thread whose OpenMP thread count was set when it started (``pubmed_rag.threads``):
        one below ``SMALL_INDEX`` vectors (a single query over a small index is memory-bound, and more threads cost
        more than they give), else the process's ``threads``."""
        if in_search_pool():
            return self._search(query, k, allowed, overrides)
        pool = search_pool(single=len(self) < SMALL_INDEX)
        return pool.submit(self._search, query, k, allowed, overrides).result()

    def _search(self, query: np.ndarray, k: int, allowed: np.ndarray | None,
                overrides: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        spec = self.spec.with_search(**{**self.search_overrides, **overrides})
        fam = self._family
        k = max(1, min(k, len(self)))
        target = k if allowed is None else min(k, int(len(allowed)))
        if allowed is not None and not fam.exhaustive and len(allowed) <= self.exact_below:
            return self._exact(q, k, allowed)
        for widen in WIDEN:
            scores, ids = self._search_once(q, k, allowed, spec, fam, widen)
            if (ids >= 0).sum() >= target or fam.exhaustive:
                return scores, ids
        return self._exact(q, k, allowed)

    def _search_once(self, q: np.ndarray, k: int, allowed: np.ndarray | None, spec: IndexSpec, fam,
                     widen: int) -> tuple[np.ndarray, np.ndarray]:
        all_scores, all_ids = [], []
        for shard in self.shards:
            bits = shard.bitmap(allowed)
            if bits is not None and not bits.any():
                continue
            selector = faiss.IDSelectorBitmap(len(shard), faiss.swig_ptr(bits)) if bits is not None else None
            params = fam.search_params(spec, selector, widen)
            scores, pos = shard.index.search(q, min(k, len(shard)), params=params)
            valid = pos[0] >= 0
            all_scores.append(scores[0][valid])
            all_ids.append(shard.ids[pos[0][valid]])
        for pid, pvec in zip(self._pending_ids, self._pending_vectors, strict=True):
            keep = np.isin(pid, allowed) if allowed is not None else slice(None)
            all_scores.append(pvec[keep] @ q[0])
            all_ids.append(pid[keep])
        return _top(all_scores, all_ids, k)

    def _exact(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores over the allowed (or all live) vectors, reconstructed from the shards."""
        fam = self._family
        all_scores, all_ids = [], []
        for shard in self.shards:
            bits = shard.bitmap(allowed)
            if bits is None:
                pos = np.arange(len(shard), dtype=np.int64)
            else:
                pos = np.flatnonzero(np.unpackbits(bits, bitorder="little", count=len(shard))).astype(np.int64)
            for start in range(0, len(pos), 65_536):
                part = pos[start : start + 65_536]
                all_scores.append(fam.reconstruct(shard.index, part) @ q[0])
                all_ids.append(shard.ids[part])
        for pid, pvec in zip(self._pending_ids, self._pending_vectors, strict=True):
            keep = np.isin(pid, allowed) if allowed is not None else slice(None)
            all_scores.append(pvec[keep] @ q[0])
            all_ids.append(pid[keep])
        return _top(all_scores, all_ids, k)

    # -- writing ---------------------------------------------------------------------------------------------
    def save(self, folder: Path) -> dict:
        """Write this version into ``folder``: link the existing shard files, write the pending vectors as one new
        shard and the deletion list; return the manifest's ``index`` section (``files`` lists every file)."""
        folder = Path(folder)
        (folder / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
        linked: list[str] = []
        shards_meta: list[dict] = []
        for shard in self.shards:
            if shard.files:
                for src in shard.files:
                    _link(src, folder / SHARDS_DIR / src.name)
                    linked.append(f"{SHARDS_DIR}/{src.name}")
                shards_meta.append({"name": shard.name, "count": len(shard)})
            else:  # a legacy single-file index: written once in the shard layout
                vectors = self._family.reconstruct(shard.index, np.arange(len(shard), dtype=np.int64))
                shards_meta.append(self._write_shard(folder, shard.ids, vectors, _next_number(shards_meta)))
        if self.folder is not None and (self.folder / TRAINED_FILE).exists():
            _link(self.folder / TRAINED_FILE, folder / TRAINED_FILE)
            linked.append(TRAINED_FILE)
        if self._pending_ids:
            ids = np.concatenate(self._pending_ids)
            vectors = np.concatenate(self._pending_vectors)
            if len(ids):
                if self.spec.type == "auto" or (self.spec.nlist == 0 and self.spec.type.startswith("ivf")):
                    self.spec = resolve_spec(self.spec, len(self), self.flat_below)
                shards_meta.append(self._write_shard(folder, ids, vectors, _next_number(shards_meta)))
        np.save(folder / DELETED_FILE, self._deleted)
        files = [f"{SHARDS_DIR}/{m['name']}{ext}" for m in shards_meta for ext in (".faiss", ".ids.npy")]
        if (folder / TRAINED_FILE).exists():
            files.append(TRAINED_FILE)
        return {
            "type": self.spec.type, "requested": self.requested, "factory": self._family.factory_string(self.spec),
            "spec": self.spec.to_dict(), "dimension": self.dimension, "flat_below": self.flat_below,
            "shards": shards_meta, "deleted": int(len(self._deleted)), "vectors": len(self),
            "files": [*files, DELETED_FILE], "linked": linked,
        }

    def _write_shard(self, folder: Path, ids: np.ndarray, vectors: np.ndarray, number: int) -> dict:
        order = np.argsort(ids, kind="stable")
        ids, vectors = ids[order], np.ascontiguousarray(vectors[order])
        name = f"s{number + 1:04d}"
        fam = self._family
        trained = folder / TRAINED_FILE
        if self.spec.type in ("ivfflat", "ivfpq"):
            if not trained.exists():
                faiss.write_index(fam.empty(self.spec, self.dimension, train_sample(vectors, self.spec)), str(trained))
            index = faiss.read_index(str(trained))
        else:
            index = fam.empty(self.spec, self.dimension, vectors[:0])
        index.add(vectors)
        faiss.write_index(index, str(folder / SHARDS_DIR / f"{name}.faiss"))
        np.save(folder / SHARDS_DIR / f"{name}.ids.npy", ids)
        return {"name": name, "count": int(len(ids))}

    def merged(self, spec: IndexSpec) -> ShardedIndex:
        """A new, unsaved index holding this one's live vectors as a single pending shard of type ``spec``."""
        out = ShardedIndex(spec, self.dimension, requested=self.requested, flat_below=self.flat_below,
                           exact_below=self.exact_below)
        for shard in self.shards:
            pos = shard.live_positions()
            for start in range(0, len(pos), 65_536):
                part = pos[start : start + 65_536]
                out.add(shard.ids[part].tolist(), self._family.reconstruct(shard.index, part))
        for pid, pvec in zip(self._pending_ids, self._pending_vectors, strict=True):
            out.add(pid.tolist(), pvec)
        return out


def _top(scores: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
    i = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    best = np.argsort(-s, kind="stable")[:k]
    out_s = np.full(k, -np.inf, dtype=np.float32)
    out_i = np.full(k, -1, dtype=np.int64)
    out_s[: len(best)], out_i[: len(best)] = s[best], i[best]
    return out_s, out_i


def _find(sorted_ids: np.ndarray, chunk_id: int) -> int | None:
    """Position of ``chunk_id`` in a shard's ids (written sorted; a legacy shard's are in insertion order)."""
    at = int(np.searchsorted(sorted_ids, chunk_id))
    if at < len(sorted_ids) and sorted_ids[at] == chunk_id:
        return at
    hits = np.flatnonzero(sorted_ids == chunk_id)
    return int(hits[0]) if len(hits) else None


def _next_number(shards_meta: list[dict]) -> int:
    return max((int(m["name"][1:]) for m in shards_meta if m["name"][1:].isdigit()), default=0)


def _link(src: Path, dst: Path) -> None:
    """Hard-link an immutable file into a new version (a copy only where the file system cannot link)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

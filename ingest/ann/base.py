"""The plug-in point for vector index families, and the parameters one index is built and searched with.

A family turns vectors into one FAISS index over *positions* ``0..n-1`` (a shard's ``ids.npy`` maps positions to
chunk ids), opens it memory-mapped, and says how to search and reconstruct it. A new index type is one new module
implementing :class:`VectorIndex` plus one line in ``ingest/ann/__init__.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import faiss
import numpy as np

# Read-only, memory-mapped in place (flat codes and inverted lists are used straight from the page cache, so open
# is O(metadata) and the pages are shared by every process serving the index).
READ_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY


@dataclass(frozen=True)
class IndexSpec:
    """One index's type and parameters, as recorded in its manifest (``index`` section)."""

    type: str = "flat"
    nlist: int = 0
    pq_m: int = 96
    pq_bits: int = 4
    hnsw_m: int = 16
    ef_construction: int = 40
    nprobe: int = 256
    ef_search: int = 1536
    refine: int = 128
    train_size: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IndexSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_search(self, **overrides: int) -> IndexSpec:
        """This spec with query-time overrides (``nprobe``, ``ef_search``, ``refine``); zeros/None are ignored."""
        clean = {k: int(v) for k, v in overrides.items() if v}
        return IndexSpec(**{**self.to_dict(), **clean}) if clean else self


@runtime_checkable
class VectorIndex(Protocol):
    """One index family (flat, IVF, HNSW): building, opening and searching the FAISS index of one shard."""

    def factory_string(self, spec: IndexSpec) -> str:
        """The ``faiss.index_factory`` description of this family's index."""
        ...

    def empty(self, spec: IndexSpec, dimension: int, sample: np.ndarray) -> faiss.Index:
        """An empty index ready for ``add`` (trained on ``sample`` where the family needs training)."""
        ...

    def search_params(self, spec: IndexSpec, selector: faiss.IDSelector | None, widen: int) -> faiss.SearchParameters:
        """Parameters for one search; ``widen`` (1, 4, 16...) multiplies how much of the index is visited."""
        ...

    def reconstruct(self, index: faiss.Index, positions: np.ndarray) -> np.ndarray:
        """The stored (exact) vectors at ``positions``, one row each."""
        ...

    @property
    def exhaustive(self) -> bool:
        """True when a search visits every vector (so a selector never costs results)."""
        ...


def read(path: Path, vector_bytes: int = 0) -> faiss.Index:
    """Open a shard file memory-mapped and read-only. ``vector_bytes`` (the float32 vectors the file holds) are
    mapped and paged in as queries reach them; the part of the file before them (graph links, PQ codes, lists) is
    read sequentially first. FAISS copies some of that part out of the mapping (fast-scan codes), one page fault at a
    time: a cold open of a 1M-vector fast-scan shard took 0.96-0.99 s that way, 0.12-0.16 s after reading it ahead."""
    _read_ahead(Path(path), Path(path).stat().st_size - vector_bytes)
    return faiss.read_index(str(path), READ_FLAGS)


def _read_ahead(path: Path, length: int, block: int = 8 << 20) -> None:
    """Bring the first ``length`` bytes of ``path`` into the page cache with sequential reads."""
    if length <= 0:
        return
    buffer = bytearray(min(block, length))
    with path.open("rb", buffering=0) as handle:
        while length > 0 and (done := handle.readinto(buffer)):
            length -= done


def new_index(factory: str, dimension: int) -> faiss.Index:
    """``faiss.index_factory`` with inner-product metric (vectors are normalised: cosine similarity)."""
    return faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)

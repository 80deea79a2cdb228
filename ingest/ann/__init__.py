"""Vector index types: one module per family behind the :class:`VectorIndex` protocol, chosen by the manifest's
index type; :class:`ShardedIndex` holds one index version (immutable shards plus a deletion list)."""

from __future__ import annotations

import math

from ingest.ann.base import IndexSpec, VectorIndex
from ingest.ann.flat import FlatIndex
from ingest.ann.hnsw import HNSWIndex
from ingest.ann.ivf import IVFFlatIndex, IVFPQIndex

FAMILIES: dict[str, type] = {"flat": FlatIndex, "ivfflat": IVFFlatIndex, "ivfpq": IVFPQIndex, "hnsw": HNSWIndex}


def family(index_type: str) -> VectorIndex:
    """The implementation of one index type (the manifest's ``index.type``)."""
    try:
        return FAMILIES[index_type]()
    except KeyError as exc:
        raise ValueError(f"unknown index type {index_type!r}; known: {', '.join(FAMILIES)}") from exc


def resolve_spec(base: IndexSpec, count: int, flat_below: int) -> IndexSpec:
    """``base`` with ``auto`` resolved for ``count`` vectors and ``nlist = 0`` replaced by a size-based choice.

    ``auto``: exact flat search below ``flat_below`` vectors, IVF-PQ with exact re-ranking above (docs/scale.md
    gives the measurements behind that). ``nlist``: about sqrt(n), a power of two between 16 and 65,536 (512 at
    200k vectors, as measured), and never more lists than n / 39 (FAISS's minimum of 39 training points a list)."""
    index_type = base.type
    if index_type == "auto":
        index_type = "flat" if count < flat_below else "ivfpq"
    nlist = base.nlist
    if index_type in ("ivfflat", "ivfpq") and nlist <= 0:
        nlist = 2 ** round(math.log2(max(16.0, math.sqrt(max(count, 1)))))
        nlist = int(max(1, min(nlist, 65_536, count // 39 or 1)))
    return IndexSpec(**{**base.to_dict(), "type": index_type, "nlist": nlist})


__all__ = ["FAMILIES", "IndexSpec", "VectorIndex", "family", "resolve_spec"]

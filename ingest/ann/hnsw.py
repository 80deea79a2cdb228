"""Graph search: ``HNSW{M},Flat``. FAISS cannot remove vectors from an HNSW graph; deletions are an exclusion list
applied through the search's ID selector (``ingest/ann/sharded.py``) until the index is compacted."""

from __future__ import annotations

import faiss
import numpy as np

from ingest.ann.base import IndexSpec, new_index


class HNSWIndex:
    """HNSW graph over full vectors; ``ef_search`` candidates kept per query."""

    exhaustive = False

    def factory_string(self, spec: IndexSpec) -> str:
        return f"HNSW{spec.hnsw_m},Flat"

    def empty(self, spec: IndexSpec, dimension: int, sample: np.ndarray) -> faiss.Index:
        index = new_index(self.factory_string(spec), dimension)
        index.hnsw.efConstruction = spec.ef_construction
        return index

    def search_params(self, spec: IndexSpec, selector: faiss.IDSelector | None, widen: int) -> faiss.SearchParameters:
        params = faiss.SearchParametersHNSW(efSearch=spec.ef_search * widen)
        if selector is not None:
            params.sel = selector
        return params

    def reconstruct(self, index: faiss.Index, positions: np.ndarray) -> np.ndarray:
        return index.reconstruct_batch(np.asarray(positions, dtype=np.int64))

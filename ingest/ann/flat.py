"""Exact search: ``Flat`` (every vector scored; what the index used before ANN types existed)."""

from __future__ import annotations

import faiss
import numpy as np

from ingest.ann.base import IndexSpec, new_index


class FlatIndex:
    """Exact inner-product search; reconstruct reads the stored vector itself."""

    exhaustive = True

    def factory_string(self, spec: IndexSpec) -> str:
        return "Flat"

    def empty(self, spec: IndexSpec, dimension: int, sample: np.ndarray) -> faiss.Index:
        return new_index(self.factory_string(spec), dimension)

    def search_params(self, spec: IndexSpec, selector: faiss.IDSelector | None, widen: int) -> faiss.SearchParameters:
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def reconstruct(self, index: faiss.Index, positions: np.ndarray) -> np.ndarray:
        return index.reconstruct_batch(np.asarray(positions, dtype=np.int64))

"""Inverted-file indexes: ``IVF{nlist},Flat`` and ``IVF{nlist},PQ{m}x{bits},RFlat`` (product-quantised codes scanned
first, then the best ``k * refine`` candidates re-scored exactly against the full vectors kept beside them). With
4-bit codes the PQ is FAISS's fast-scan form (``PQ{m}x4fs``: codes scanned with SIMD lookup tables in registers).

The coarse quantiser and PQ codebooks are trained on a random sample of the vectors being indexed; the trained empty
index is kept with the index (``trained.faiss``) so an update's new shard shares the same lists without retraining.
"""

from __future__ import annotations

import faiss
import numpy as np

from ingest.ann.base import IndexSpec, new_index


def train_sample(vectors: np.ndarray, spec: IndexSpec, seed: int = 0) -> np.ndarray:
    """A seeded random sample: ``spec.train_size`` vectors, or 64 per list (at least 10,000) when it is 0."""
    size = spec.train_size or max(64 * spec.nlist, 10_000)
    if len(vectors) <= size:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size, replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


class _IVF:
    exhaustive = False

    def factory_string(self, spec: IndexSpec) -> str:
        raise NotImplementedError

    def empty(self, spec: IndexSpec, dimension: int, sample: np.ndarray) -> faiss.Index:
        index = new_index(self.factory_string(spec), dimension)
        ivf = faiss.extract_index_ivf(index)
        if isinstance(ivf, faiss.IndexIVFPQ):
            # The factory turns on polysemous training (codes ordered for Hamming filtering, which is not used
            # here); it took 10 minutes of the 10 s training at 30k vectors.
            ivf.do_polysemous_training = False
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return index

    def _ivf_params(self, spec: IndexSpec, selector: faiss.IDSelector | None, widen: int) -> faiss.SearchParametersIVF:
        params = faiss.SearchParametersIVF(nprobe=min(spec.nprobe * widen, spec.nlist))
        if selector is not None:
            params.sel = selector
        return params


class IVFFlatIndex(_IVF):
    """IVF over full vectors: exact scores inside the ``nprobe`` visited lists."""

    def factory_string(self, spec: IndexSpec) -> str:
        return f"IVF{spec.nlist},Flat"

    def search_params(self, spec: IndexSpec, selector: faiss.IDSelector | None, widen: int) -> faiss.SearchParameters:
        return self._ivf_params(spec, selector, widen)

    def reconstruct(self, index: faiss.Index, positions: np.ndarray) -> np.ndarray:
        ivf = faiss.extract_index_ivf(index)
        if ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map(True)  # reads only the lists' ids (8 bytes a vector), once per open
        return index.reconstruct_batch(np.asarray(positions, dtype=np.int64))


class IVFPQIndex(_IVF):
    """IVF over PQ codes (``pq_m * pq_bits / 8`` bytes a vector), exact re-ranking of ``k * refine`` candidates."""

    def factory_string(self, spec: IndexSpec) -> str:
        fast_scan = "fs" if spec.pq_bits == 4 else ""
        return f"IVF{spec.nlist},PQ{spec.pq_m}x{spec.pq_bits}{fast_scan},RFlat"

    def search_params(self, spec: IndexSpec, selector: faiss.IDSelector | None, widen: int) -> faiss.SearchParameters:
        base = self._ivf_params(spec, selector, widen)
        params = faiss.IndexRefineSearchParameters(k_factor=float(max(1, spec.refine)), base_index_params=base)
        params._keep = base  # the base parameters (and their selector) must outlive the search
        return params

    def reconstruct(self, index: faiss.Index, positions: np.ndarray) -> np.ndarray:
        return index.reconstruct_batch(np.asarray(positions, dtype=np.int64))  # from the refine (flat) store

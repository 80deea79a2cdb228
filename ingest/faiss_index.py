"""Kept so imports of the previous release keep working: the vector index is now ``ingest.ann``.

``VectorIndex`` here is the version-level :class:`ingest.ann.sharded.ShardedIndex`; the per-family protocol is
:class:`ingest.ann.base.VectorIndex`.
"""

from __future__ import annotations

from ingest.ann.sharded import ShardedIndex as VectorIndex

__all__ = ["VectorIndex"]

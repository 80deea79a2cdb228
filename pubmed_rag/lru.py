"""A bounded, thread-safe LRU cache: at most ``max_items`` entries and ``max_bytes`` of their estimated size.

Long-lived objects shared by every session of the app (the verifier's sentence and pair caches) keep what they
computed here, so memory stays bounded however many questions are asked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """Least-recently-used entries are dropped first once either bound is passed. ``sizeof(key, value)`` estimates an
    entry's bytes; an entry larger than ``max_bytes`` by itself is not kept."""

    def __init__(self, max_items: int, max_bytes: int, sizeof: Callable[[K, V], int]) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError(f"cache bounds must be positive (max_items {max_items}, max_bytes {max_bytes})")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._sizeof = sizeof
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            self._data.move_to_end(key)
            return entry[0]

    def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """``{key: value}`` for the keys present."""
        out: dict[K, V] = {}
        with self._lock:
            for key in keys:
                entry = self._data.get(key)
                if entry is not None:
                    self._data.move_to_end(key)
                    out[key] = entry[0]
        return out

    def put(self, key: K, value: V) -> None:
        size = self._sizeof(key, value)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._data[key] = (value, size)
            self._bytes += size
            while len(self._data) > self.max_items or self._bytes > self.max_bytes:
                _, (_, dropped) = self._data.popitem(last=False)
                self._bytes -= dropped

    def update(self, items: Iterable[tuple[K, V]]) -> None:
        for key, value in items:
            self.put(key, value)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        """The estimated bytes held."""
        return self._bytes

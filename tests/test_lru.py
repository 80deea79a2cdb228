"""The bounded LRU cache the long-lived shared objects keep their results in."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pubmed_rag.lru import LRUCache


def nbytes(key: str, value: np.ndarray) -> int:
    return value.nbytes


def test_least_recently_used_entries_go_first_when_either_bound_is_passed():
    cache = LRUCache(3, 10_000, nbytes)
    for name in "abc":
        cache.put(name, np.zeros(100, dtype=np.float32))  # 400 bytes each
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", np.zeros(100, dtype=np.float32))
    assert "b" not in cache and set(cache.get_many("acd")) == {"a", "c", "d"} and len(cache) == 3
    cache.put("big", np.zeros(2000, dtype=np.float32))  # 8,000 bytes; at most 3 entries: a, the oldest, goes
    assert list(cache.get_many(["a", "c", "d", "big"])) == ["c", "d", "big"] and cache.nbytes == 8800
    cache.put("huge", np.zeros(3000, dtype=np.float32))  # larger than the whole budget: not kept
    assert "huge" not in cache and cache.nbytes == 8800
    cache.put("d", np.zeros(10, dtype=np.float32))  # replacing an entry counts its new size only
    assert cache.nbytes == 8440
    cache.put("big2", np.zeros(2000, dtype=np.float32))  # over 10,000 bytes: the oldest go until it fits
    assert list(cache.get_many(["c", "big", "d", "big2"])) == ["d", "big2"] and cache.nbytes == 8040
    with pytest.raises(ValueError, match="must be positive"):
        LRUCache(0, 10, nbytes)


def test_bounds_hold_under_concurrent_writers():
    cache = LRUCache(50, 50 * 400, nbytes)
    errors = []

    def writer(n: int) -> None:
        try:
            for i in range(2000):
                cache.put(f"{n}-{i}", np.zeros(100, dtype=np.float32))
                cache.get(f"{n}-{i // 2}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(cache) == 50 and cache.nbytes == 50 * 400

"""CPU threads: set once per process; small calls run on one thread without changing the caller's or the process's
settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import faiss
import numpy as np

from ingest.ann.base import IndexSpec
from ingest.ann.sharded import ShardedIndex
from pubmed_rag.threads import few_threads, one_thread_requested
from tests.conftest import ROOT


def test_threads_are_set_once_per_process_and_a_later_count_is_ignored():
    script = (
        "import logging, faiss, torch\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "from pubmed_rag.threads import configure, configured_threads\n"
        "assert configured_threads() is None\n"
        "print(configure(1), torch.get_num_threads(), faiss.omp_get_max_threads())\n"
        "print(configure(2), torch.get_num_threads(), faiss.omp_get_max_threads(), configured_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["1 1 1", "1 1 1 1"]
    assert "threads already set to 1 for this process; 2 ignored" in done.stderr


def test_a_small_index_search_leaves_the_callers_openmp_threads_alone():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ShardedIndex.create(32, IndexSpec())
    index.add(list(range(2000)), vectors)
    seen: dict[str, object] = {}

    def caller() -> None:
        faiss.omp_set_num_threads(2)  # this thread's own OpenMP setting
        scores, ids = index.search(vectors[7], 5)
        seen["ids"], seen["threads"] = ids.reshape(-1)[:1].tolist(), faiss.omp_get_max_threads()

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join()
    assert seen == {"ids": [7], "threads": 2}  # found, on a pool thread of its own: the caller still has 2


def test_search_pools_run_faiss_on_one_thread_or_the_configured_count():
    from pubmed_rag.threads import configured_threads, search_pool

    assert search_pool(single=True).submit(faiss.omp_get_max_threads).result() == 1
    expected = configured_threads() or os.cpu_count()
    assert search_pool(single=False).submit(faiss.omp_get_max_threads).result() == expected


def test_few_threads_is_a_request_of_this_call_only():
    seen = {}

    def other() -> None:
        seen["other"] = one_thread_requested()

    with few_threads(1):
        assert one_thread_requested()
        thread = threading.Thread(target=other)  # another caller at the same time is not affected
        thread.start()
        thread.join()
    assert seen == {"other": False} and not one_thread_requested()

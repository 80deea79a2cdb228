"""CPU threads: set once per process, and one thread for small inference calls without changing anyone else's.

``configure`` sets torch's intra-op threads and the process's OpenMP threads (FAISS) once, from the ``threads``
setting; later calls with another number are ignored with a warning, so no request changes what another one runs on.

A short query or a few sentences gain nothing from intra-op threads: on 2 busy cores, 2 threads made a 3-pair
verifier call 6x slower (1.4 s vs 0.22 s, measured with two other jobs running), and a single-query FAISS search over
30k vectors takes 1.5 ms on one OpenMP thread against 4.4 ms on two. So small calls run on one thread, each runtime in
its own way and without a global switch:

- ONNX Runtime (embedder, verifier): a second session opened with one thread, chosen inside :func:`few_threads`
  (:func:`one_thread_requested`);
- FAISS: searches run on pool threads whose OpenMP thread count (a per-thread setting in OpenMP) was set when the
  thread started: one for single queries over small indexes, else the configured count (:func:`search_pool`);
- PyTorch (the fallback backend, the reranker): the process's threads; its thread count is process-wide, and
  changing it per call would change it under concurrent callers.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar

log = logging.getLogger(__name__)
_ONE_THREAD: ContextVar[bool] = ContextVar("pubmed_rag_one_thread", default=False)
_LOCK = threading.Lock()
_CONFIGURED: int | None = None
_POOLS: dict[bool, ThreadPoolExecutor] = {}
POOL_PREFIX = "faiss-"


def configure(threads: int = 0) -> int:
    """Set torch's and OpenMP's (FAISS) thread counts for this process to ``threads`` (0 = all cores), once.

    Returns the count in effect. A later call asking for another count changes nothing and logs a warning: the
    count is chosen at start (``--threads``, ``PUBMED_RAG_THREADS``), not per request."""
    global _CONFIGURED
    wanted = threads or os.cpu_count() or 1
    with _LOCK:
        if _CONFIGURED is not None:
            if wanted != _CONFIGURED:
                log.warning("threads already set to %d for this process; %d ignored", _CONFIGURED, wanted)
            return _CONFIGURED
        import torch

        torch.set_num_threads(wanted)
        faiss = sys.modules.get("faiss")
        if faiss is None:
            import faiss
        faiss.omp_set_num_threads(wanted)
        _CONFIGURED = wanted
        return wanted


def configured_threads() -> int | None:
    """The count :func:`configure` set, or None before it ran."""
    return _CONFIGURED


def _openmp_threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(n)  # OpenMP's thread count is per thread: this pool thread's, for its lifetime


def search_pool(single: bool) -> ThreadPoolExecutor:
    """A pool (one worker per core) whose threads run FAISS on one OpenMP thread each (``single``: single-query
    searches of small indexes) or on the process's configured count. OpenMP's count is a per-thread setting, so a
    search run in the caller's own thread (a web request's, a build's) would use whatever that thread last set."""
    with _LOCK:
        if single not in _POOLS:
            threads = 1 if single else (_CONFIGURED or os.cpu_count() or 1)
            _POOLS[single] = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                                thread_name_prefix=f"{POOL_PREFIX}{threads}",
                                                initializer=_openmp_threads, initargs=(threads,))
        return _POOLS[single]


def in_search_pool() -> bool:
    """Whether the caller already runs on a :func:`search_pool` thread."""
    return threading.current_thread().name.startswith(POOL_PREFIX)


@contextmanager
def few_threads(n: int, limit: int = 1) -> Iterator[None]:
    """Ask for one thread for a call over ``n`` items when ``n <= limit``: runtimes that can honour it for this call
    alone (ONNX Runtime's one-thread session) check :func:`one_thread_requested`. Nothing process-wide changes."""
    if n > limit:
        yield
        return
    token = _ONE_THREAD.set(True)
    try:
        yield
    finally:
        _ONE_THREAD.reset(token)


def one_thread_requested() -> bool:
    """Whether the caller is inside :func:`few_threads` for a small call."""
    return _ONE_THREAD.get()

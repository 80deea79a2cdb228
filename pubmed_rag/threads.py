"""One thread for small inference calls.

A short query or a few sentences gain nothing from intra-op threads: on 2 busy cores, 2 torch threads made a
3-pair verifier call 6x slower (1.4 s vs 0.22 s, measured with two other jobs running) and a one-query encode took
22 ms either way. Running them on one thread leaves the other cores to the work beside them (the BM25 search).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ONE_THREAD: ContextVar[bool] = ContextVar("pubmed_rag_one_thread", default=False)


@contextmanager
def few_threads(n: int, limit: int = 1) -> Iterator[None]:
    """Run a call over ``n`` items on one thread when ``n <= limit``.

    torch's intra-op threads are set to 1 for the duration (torch is not imported if nothing has imported it yet:
    then nothing runs on it), and :func:`one_thread_requested` tells other runtimes (the ONNX embedder) to use
    their one-thread session."""
    if n > limit:
        yield
        return
    token = _ONE_THREAD.set(True)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 1
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)
        _ONE_THREAD.reset(token)


def one_thread_requested() -> bool:
    """Whether the caller is inside :func:`few_threads` for a small call."""
    return _ONE_THREAD.get()

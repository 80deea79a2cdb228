"""Retry with exponential backoff: one helper for every network call (E-utilities, Chat Completions)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def with_retries(call: Callable[[], T], *, retries: int, backoff: float, retryable: Callable[[BaseException], bool],
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Run ``call``; on an exception that ``retryable`` accepts, wait ``backoff`` seconds (doubling each time) and
    try again, at most ``retries`` more times. The last exception, or any that is not retryable, is raised."""
    delay = backoff
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == retries or not retryable(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")

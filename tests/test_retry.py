"""The one retry helper: backoff doubles, only retryable errors are retried, the last error is raised."""

from __future__ import annotations

import pytest

from pubmed_rag.retry import with_retries


def test_backoff_doubles_and_the_call_succeeds():
    waits, calls, retried = [], [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("slow")
        return "ok"

    assert with_retries(flaky, retries=3, backoff=0.5, retryable=lambda e: isinstance(e, TimeoutError),
                        sleep=waits.append, on_retry=retried.append) == "ok"
    assert waits == [0.5, 1.0] and len(calls) == 3 and [str(e) for e in retried] == ["slow", "slow"]


def test_final_errors_are_not_retried_and_the_last_error_is_raised():
    waits: list[float] = []
    with pytest.raises(ValueError, match="bad request"):
        with_retries(lambda: (_ for _ in ()).throw(ValueError("bad request")), retries=5, backoff=1,
                     retryable=lambda e: isinstance(e, TimeoutError), sleep=waits.append)
    assert waits == []
    with pytest.raises(TimeoutError):
        with_retries(lambda: (_ for _ in ()).throw(TimeoutError()), retries=2, backoff=1, retryable=lambda e: True,
                     sleep=waits.append)
    assert waits == [1, 2]

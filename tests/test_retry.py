"""Bounded retries with jittered backoff (which errors count as transient: test_failure_kinds)."""

from __future__ import annotations

import pytest

from reingest_assets.domain.failures import is_transient
from reingest_assets.resources.retry import retry


class Flaky:
    """Fails with ``error`` for the first ``failures`` calls, then returns "ok"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_retry_returns_once_the_call_succeeds_backing_off_exponentially() -> None:
    sleeps: list[float] = []
    retries: list[int] = []
    flaky = Flaky(3, TimeoutError("slow"))

    result = retry(
        flaky,
        attempts=5,
        base_delay=1.0,
        max_delay=3.0,
        retry_on=is_transient,
        sleep=sleeps.append,
        on_retry=lambda attempt, exc, delay: retries.append(attempt),
    )

    assert result == "ok"
    assert flaky.calls == 4
    assert retries == [1, 2, 3]
    # Full jitter: each delay is drawn from [0, min(max_delay, base_delay * 2**n)].
    assert len(sleeps) == 3
    for delay, ceiling in zip(sleeps, [1.0, 2.0, 3.0], strict=True):
        assert 0.0 <= delay <= ceiling


def test_retry_reraises_the_last_error_after_bounded_attempts() -> None:
    flaky = Flaky(10, ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        retry(flaky, attempts=3, retry_on=is_transient, sleep=lambda _: None)
    assert flaky.calls == 3


def test_retry_does_not_retry_errors_retry_on_rejects() -> None:
    flaky = Flaky(1, ValueError("bad input"))
    with pytest.raises(ValueError):
        retry(flaky, attempts=5, retry_on=is_transient, sleep=lambda _: None)
    assert flaky.calls == 1

"""Bounded retries with exponential backoff and full jitter.

What to retry is the caller's: adapters pass ``retry_on`` built on their library's errors and
``domain.failures.is_transient``; this module knows no client library.

Full jitter (a uniform delay in ``[0, min(max_delay, base_delay * 2**n)]``) spreads the retries of
many workers hit by the same throttling burst, instead of sending them back in lockstep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.1,
    max_delay: float = 5.0,
    retry_on: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` up to ``attempts`` times while it raises errors ``retry_on`` accepts.

    Re-raises the last error when attempts run out, and at once an error ``retry_on`` rejects.
    ``on_retry(attempt, error, delay)`` is called before each sleep (attempt counts from 1).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts):
        try:
            return fn()
        except Exception as exc:
            if not retry_on(exc):
                raise
            delay = random.uniform(0.0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
    return fn()

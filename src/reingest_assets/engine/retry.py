"""Bounded retries with exponential backoff and full jitter, and what counts as transient.

Full jitter (a uniform delay in ``[0, min(max_delay, base_delay * 2**n)]``) spreads the retries of
many workers hit by the same throttling burst, instead of sending them back in lockstep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from botocore import exceptions as botocore_exceptions

T = TypeVar("T")

# S3 and other AWS services answer these when the request may succeed if sent again.
TRANSIENT_AWS_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
    }
)


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


def is_transient(exc: BaseException) -> bool:
    """Whether the same call may succeed if made again: network faults, timeouts, throttling,
    server errors, lost database connections and serialization conflicts.

    Adapters for other clients mark their own transient errors with ``exc.transient = True``.
    """
    if getattr(exc, "transient", False) is True:
        return True
    if isinstance(exc, botocore_exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in TRANSIENT_AWS_CODES or status >= 500 or status == 429
    if isinstance(exc, botocore_exceptions.SSLError):
        return False  # a certificate problem does not go away by asking again
    if isinstance(
        exc,
        botocore_exceptions.ConnectionError  # cannot connect, connect timeout
        | botocore_exceptions.HTTPClientError  # closed mid-request, read timeout, broken stream
        | botocore_exceptions.IncompleteReadError,
    ):
        return True
    if isinstance(
        exc, psycopg.errors.InvalidAuthorizationSpecification | psycopg.errors.InvalidPassword
    ):
        return False  # bad credentials (OperationalErrors too) stay bad
    if isinstance(exc, psycopg.errors.ProgramLimitExceeded):
        return False  # a row too large for an index (an OperationalError too) stays too large
    # OperationalError covers a lost or refused connection, admin shutdown, statement timeout,
    # and (as subclasses) serialization failures and deadlocks: all worth a retry.
    return isinstance(exc, ConnectionError | TimeoutError | psycopg.OperationalError)

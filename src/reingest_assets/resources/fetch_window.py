"""Concurrent fetches over a sliding window: bounded in flight, results in input order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor


def fetch_in_order(
    get: Callable[[str], bytes], uris: Iterable[str], *, max_in_flight: int
) -> Iterator[tuple[str, bytes | BaseException]]:
    """Yield ``(uri, get(uri) or the error it raised)`` in input order.

    At most ``max_in_flight`` fetches run or wait for the consumer at any time, and the input is
    pulled only as the window moves, so a partition's worth of URIs is never materialized.
    """
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
    if max_in_flight == 1:  # no thread hand-off for stores where a fetch is a local read
        for uri in uris:
            try:
                yield uri, get(uri)
            except Exception as exc:
                yield uri, exc
        return
    pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="fetch")
    window: deque[tuple[str, Future[bytes]]] = deque()
    try:
        for uri in uris:
            window.append((uri, pool.submit(get, uri)))
            if len(window) >= max_in_flight:
                yield _settled(*window.popleft())
        while window:
            yield _settled(*window.popleft())
    finally:
        # The consumer may stop early: drop what has not started, do not wait for the rest.
        pool.shutdown(wait=False, cancel_futures=True)


def _settled(uri: str, future: Future[bytes]) -> tuple[str, bytes | BaseException]:
    error = future.exception()
    return (uri, error) if error is not None else (uri, future.result())

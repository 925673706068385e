"""One Postgres connection that survives the server going away: transient errors (lost
connection, admin shutdown, serialization failures) reconnect and retry with backoff."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import orjson
import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import set_json_loads

from reingest_assets.engine.retry import is_transient, retry
from reingest_assets.resources.redaction import redact

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)


def text_array(values: Iterable[str]) -> str:
    """A text[] literal of ``values``, passed as ``%s::text[]``: psycopg's list dumper costs
    about 7 ms for a page of 1,000 keys, on every query that looks a page up."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


class PgClient:
    """Base of the Postgres adapters. Not thread-safe: one per process or thread.

    Every write the adapters make is idempotent (upserts keyed by uid/uuid, deletes by key), so
    re-running a statement whose outcome was lost with the connection is safe.
    """

    attempts = 8  # ~10 s of backoff in all: enough for a server restart

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                # Asynchronous commit: a server crash loses only the latest commits, in commit
                # order, so the ledger (committed after the chunks) never claims lost chunks.
                self._conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    row_factory=tuple_row,
                    options="-c synchronous_commit=off",
                )
                set_json_loads(orjson.loads, self._conn)
            except psycopg.Error as exc:
                # libpq quotes a URL it cannot parse, password and all: same error, redacted,
                # and without the original as its context.
                message = redact(str(exc), self.url)
                if message == str(exc):
                    raise
                raise type(exc)(message) from None
        return self._conn

    def reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        self.reset()


def retried(method: Callable[P, R]) -> Callable[P, R]:
    """Retry a ``PgClient`` method on transient errors, on a fresh connection each time."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        client = args[0]
        assert isinstance(client, PgClient)

        def attempt() -> R:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                if is_transient(exc):
                    client.reset()
                raise

        return retry(
            attempt,
            attempts=client.attempts,
            base_delay=0.2,
            max_delay=3.0,
            retry_on=is_transient,
            on_retry=lambda n, exc, delay: log.warning(
                "database call %s failed (%s: %s); retry %d in %.1fs",
                method.__name__,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                n,
                delay,
            ),
        )

    return wrapper

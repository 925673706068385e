"""One Postgres connection that survives the server going away: transient errors (lost
connection, admin shutdown, serialization failures) reconnect and retry with backoff.

:func:`pg_error_kind` is psycopg's mapping onto the failure kinds of ``domain.failures``; a
``@retried`` method raises :class:`TransientError` or :class:`ConfigurationError` (chained to the
psycopg error) once its retries are spent, so callers never need to know psycopg."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import tuple_row
from psycopg.types.json import set_json_loads

from reingest_assets.domain.failures import (
    ConfigurationError,
    ErrorKind,
    TransientError,
    is_row_error,
    is_transient,
)
from reingest_assets.resources.redaction import redact
from reingest_assets.resources.retry import retry

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


DATABASE_SETTING = "REINGEST_DATABASE_URL"

# Refused by the server for who is asking or where: no retry changes that.
_CONFIGURATION_ERRORS = (
    pg_errors.InvalidAuthorizationSpecification,  # no such role, no pg_hba.conf entry
    pg_errors.InvalidPassword,
    pg_errors.InsufficientPrivilege,
    pg_errors.InvalidCatalogName,  # no such database
    # The schema is not the one this code expects (migrations not applied, another database).
    pg_errors.UndefinedTable,
    pg_errors.UndefinedColumn,
    pg_errors.UndefinedFunction,
    pg_errors.UndefinedObject,
    pg_errors.InvalidSchemaName,
)
# libpq reports a refused connection without a SQLSTATE: these texts name a setting's fault.
_CONFIGURATION_CONNECT_MESSAGES = (
    "password authentication failed",
    "does not exist",  # role or database
    "no pg_hba.conf entry",
    "invalid connection option",
    "invalid dsn",
    "server does not support ssl",
    "certificate",
)


def pg_error_kind(exc: BaseException) -> ErrorKind | None:
    """What a psycopg error means for a retry; None for errors that are not psycopg's or are a
    bug in the statement (a syntax error is neither transient nor a setting)."""
    if not isinstance(exc, psycopg.Error):
        return None
    if isinstance(exc, _CONFIGURATION_ERRORS):
        return "configuration"
    if is_row_error(exc):
        # What one row holds (SQLSTATE 22, 23, 54: also an index row too large, which is an
        # OperationalError): left as psycopg raised it, for the runner to isolate the row.
        return "data"
    if isinstance(exc, psycopg.OperationalError):
        # A lost or refused connection, admin shutdown, statement timeout, and (as subclasses)
        # serialization failures and deadlocks: all worth a retry, unless libpq says the
        # connection was refused for its settings.
        if exc.sqlstate is None and any(
            text in str(exc).lower() for text in _CONFIGURATION_CONNECT_MESSAGES
        ):
            return "configuration"
        return "transient"
    return None


def _is_transient(exc: BaseException) -> bool:
    return pg_error_kind(exc) == "transient" or is_transient(exc)


def _translated(exc: psycopg.Error, call: str) -> Exception | None:
    """The failure kind's exception for a psycopg error that retries did not fix, or None to
    re-raise it as it is."""
    kind = pg_error_kind(exc)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if kind == "configuration":
        return ConfigurationError(
            f"the database refused {call} ({type(exc).__name__}: {first_line}): check the "
            f"user, password, database and privileges in {DATABASE_SETTING}, and that its "
            "schema is migrated",
            setting=DATABASE_SETTING,
        )
    if kind == "transient":
        return TransientError(f"database call {call} kept failing: {first_line}")
    return None


def retried(method: Callable[P, R]) -> Callable[P, R]:
    """Retry a ``PgClient`` method on transient errors, on a fresh connection each time; what
    retries did not fix leaves as a failure kind (see :func:`_translated`)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        client = args[0]
        assert isinstance(client, PgClient)

        def attempt() -> R:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                if _is_transient(exc):
                    client.reset()
                raise

        try:
            return retry(
                attempt,
                attempts=client.attempts,
                base_delay=0.2,
                max_delay=3.0,
                retry_on=_is_transient,
                on_retry=lambda n, exc, delay: log.warning(
                    "database call %s failed (%s: %s); retry %d in %.1fs",
                    method.__name__,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    n,
                    delay,
                ),
            )
        except psycopg.Error as exc:
            translated = _translated(exc, method.__name__)
            if translated is None:
                raise
            raise translated from exc

    return wrapper

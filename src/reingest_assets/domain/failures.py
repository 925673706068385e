"""Why a document did not make it, in terms the failure table and the repair sensor use.

The one failure classifier: every adapter (object stores, chunk stores, embedders, the
registry) maps its library's exceptions onto three kinds at its boundary, so the engine and the
repair sensor see only these:

* ``transient``: the same call may succeed if made again (throttling, timeouts, 5xx, connection
  resets, gRPC UNAVAILABLE/DEADLINE_EXCEEDED/RESOURCE_EXHAUSTED). Adapters retry these in place
  with bounded backoff and raise :class:`TransientError` when their attempts run out; what is
  left becomes a ``transient`` failure row the repair sensor retries.
* ``data``: this input is wrong (bad JSON, a record the store refuses). Not retried until the
  source changes.
* ``configuration``: nothing will succeed until a setting changes (credentials, permissions, a
  missing bucket or collection, a schema mismatch). :class:`ConfigurationError` names the
  setting; it is not any one document's failure, so it stops the run instead of writing a
  failure row per document that the repair sensor would retry in vain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reingest_assets.domain.document import PicklesByFields

Stage = Literal["fetch", "parse", "normalize", "chunk", "embed", "store"]
Kind = Literal["transient", "data"]  # what a failure row records
ErrorKind = Literal["transient", "data", "configuration"]

MAX_MESSAGE_CHARS = 2000


class DocumentError(Exception):
    """A document-level failure: recorded with its stage and the run goes on.

    ``kind="data"`` is not retried in place (the input itself is wrong); ``"transient"`` was
    retried and still failed.
    """

    def __init__(self, stage: Stage, message: str, *, kind: Kind = "data") -> None:
        super().__init__(message)
        self.stage: Stage = stage
        self.kind: Kind = kind
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # picklable across worker processes (the default would pass only the message)
        return (type(self), (self.stage, self.message), {"kind": self.kind})


class TransientError(Exception):
    """Worth another attempt later: raised by adapters (chained to their library's error) for
    errors they classify as transient, once their own retries are spent."""


class ConfigurationError(Exception):
    """Permanent until ``setting`` changes; the message names it."""

    def __init__(self, message: str, *, setting: str) -> None:
        if setting not in message:
            message = f"{message} (check {setting})"
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> tuple[object, ...]:
        # picklable across worker processes: ``setting`` is keyword-only
        return (_configuration_error, (str(self), self.setting))


def _configuration_error(message: str, setting: str) -> ConfigurationError:
    return ConfigurationError(message, setting=setting)


def failure_kind(exc: BaseException) -> ErrorKind:
    """The kind of a failure recorded or reported after the adapters' own retries.

    Errors no adapter classified (a bug, an unexpected library error) count as transient: the
    repair sensor retries them up to ``REINGEST_MAX_ATTEMPTS``, which lets a deployed fix
    repair them; nothing retries them in place (see :func:`is_transient`).
    """
    if isinstance(exc, DocumentError):
        return exc.kind
    if isinstance(exc, ConfigurationError):
        return "configuration"
    if isinstance(exc, ValueError | UnicodeError | KeyError):
        return "data"
    return "transient"


def is_transient(exc: BaseException) -> bool:
    """Whether an adapter should send the same call again: only errors known to be transient
    (an adapter's :class:`TransientError`, a dropped connection, a timeout), never unknown ones
    and never a :class:`DocumentError` (recorded as the document's failure instead)."""
    return isinstance(exc, TransientError | ConnectionError | TimeoutError)


@dataclass(frozen=True, slots=True)
class Failure(PicklesByFields):
    uid: str
    source: str
    ingest_date: str  # YYYY-MM-DD
    stage: Stage
    kind: Kind
    error_class: str
    message: str
    content_hash: str | None = None

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        uid: str,
        source: str,
        ingest_date: str,
        stage: Stage,
        content_hash: str | None = None,
    ) -> Failure:
        """The document's failure row. A :class:`ConfigurationError` is re-raised instead: it
        is no document's fault, and it stops the run with its message."""
        kind = failure_kind(exc)
        if kind == "configuration":
            raise exc
        if isinstance(exc, DocumentError):
            stage = exc.stage
        return cls(
            uid=uid,
            source=source,
            ingest_date=ingest_date,
            stage=stage,
            kind=kind,
            error_class=type(exc).__name__,
            message=str(exc)[:MAX_MESSAGE_CHARS],
            content_hash=content_hash,
        )


# SQLSTATE classes a database raises for what one row holds, not for the server's state: data
# exceptions (22: a value out of range, bad encoding), integrity constraints (23) and program
# limits (54: an index row too large for its btree).
_ROW_SQLSTATE_CLASSES = ("22", "23", "54")


def is_row_error(exc: BaseException) -> bool:
    """Whether a store or ledger write failed for what a row holds (so some document in the
    batch is to blame and the others can be written without it), not for the service."""
    if isinstance(exc, DocumentError):
        return exc.kind == "data"
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _ROW_SQLSTATE_CLASSES


def object_not_found(uri: str) -> DocumentError:
    """A registered document whose raw object is missing. Transient, not data: uploading the
    object fixes it without changing the registry's content hash, so the repair sensor must
    keep retrying it (up to the attempt limit)."""
    return DocumentError("fetch", f"object not found: {uri}", kind="transient")

"""Why a document did not make it, in terms the failure table and the repair sensor use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reingest_assets.domain.document import PicklesByFields

Stage = Literal["fetch", "parse", "normalize", "chunk", "embed", "store"]
Kind = Literal["transient", "data"]

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
        if isinstance(exc, DocumentError):
            stage, kind = exc.stage, exc.kind
        else:
            kind = "data" if isinstance(exc, ValueError | UnicodeError | KeyError) else "transient"
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

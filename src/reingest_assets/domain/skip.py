"""The skip rule: when a registry document needs no work, and when a failure is worth a retry.

One definition. The Postgres registry implements it in SQL (``resources/registry/postgres.py``,
``UNCHANGED_SQL`` and ``KNOWN_BAD_SQL``), the in-memory registry and the engine's chunk stage
call these functions, and the registry contract suite (``tests/support/registry_contract.py``)
pins that both registries follow it.
"""

from __future__ import annotations

from typing import Protocol


class WrittenVersion(Protocol):
    """What the ledger says was written for a document (a ``LedgerEntry``)."""

    @property
    def content_hash(self) -> str: ...
    @property
    def chunker_version(self) -> str: ...
    @property
    def embedder_id(self) -> str: ...


def is_written(
    content_hash: str | None,
    written: WrittenVersion | None,
    *,
    chunker_version: str,
    embedder_id: str,
) -> bool:
    """The ledger holds this content, chunked and embedded as this run would. A registry row
    with no content hash is never taken as written (nothing to compare)."""
    return (
        written is not None
        and content_hash is not None
        and written.content_hash == content_hash
        and written.chunker_version == chunker_version
        and written.embedder_id == embedder_id
    )


def is_known_bad(failure_kind: str, failure_hash: str | None, content_hash: str | None) -> bool:
    """An unresolved failure says this very content is bad data: retrying it cannot succeed
    until the registry's content hash changes (the source was fixed). No hash on either side
    counts as the same content."""
    return failure_kind == "data" and failure_hash == content_hash


def is_unchanged(
    content_hash: str | None,
    *,
    written: WrittenVersion | None,
    open_failure: tuple[str, str | None] | None,
    chunker_version: str,
    embedder_id: str,
) -> bool:
    """A run skips the document: the ledger already holds this content with this chunker and
    embedder, or its unresolved failure ``(kind, content hash)`` is bad data of this content."""
    return is_written(
        content_hash, written, chunker_version=chunker_version, embedder_id=embedder_id
    ) or (open_failure is not None and is_known_bad(*open_failure, content_hash))

"""The registry by concern, as protocols the engine depends on; no database library here.

- :class:`DocumentRegistry`: the ``documents`` table, the input (pages of a partition,
  partition summaries).
- :class:`Ledger`: what the chunk store holds per (target, document).
- :class:`FailureLog`: ``ingestion_failures`` (recorded, counted, repaired).
- :class:`StatusReport`: the per-partition figures ``reingest status`` shows.
- :class:`Registry`: all four on one connection, which is what a pipeline holds.

Implementations: ``postgres.py`` (the database; ``migrations.py`` owns its schema) and
``memory.py`` (plain Python, for engine tests). Both follow the skip rule of
``domain.skip``; ``tests/support/registry_contract.py`` runs the same tests against both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from reingest_assets.domain.failures import Failure
from reingest_assets.domain.partition import partition_key


@dataclass(frozen=True, slots=True)
class RegistryRow:
    uid: str
    source: str
    source_id: str
    s3_raw_uri: str
    content_hash: str | None
    updated_at: datetime
    # Nothing to do (domain.skip.is_unchanged): the ledger already holds this content with this
    # chunker and embedder, or this very content already failed as bad data.
    unchanged: bool


class LedgerEntry(NamedTuple):
    """A ledger row. A named tuple: the checks build one per written document, and a frozen
    dataclass costs several times as much to construct."""

    uid: str
    source: str
    ingest_date: str
    content_hash: str
    chunker_version: str
    embedder_id: str
    chunk_uuids: list[str]


# (uid, source, ingest_date, content_hash, chunk_uuids): a document a run has just written.
WrittenDocument = tuple[str, str, str, str, list[str]]


@dataclass(frozen=True, slots=True)
class RepairableFailure:
    id: int
    uid: str
    source: str
    ingest_date: str  # the document's current partition date, not the failed run's
    kind: str
    repair_attempts: int

    @property
    def partition_key(self) -> str:
        return partition_key(self.ingest_date, self.source)


@dataclass(slots=True)
class PartitionCounts:
    documents: int = 0
    pending: int = 0
    ledger_documents: int = 0
    ledger_chunks: int = 0
    open_failures: int = 0
    permanent_failures: int = 0


class DocumentRegistry(Protocol):
    """The registered documents: the pipeline's input. A partition is a source and a UTC day
    of ``updated_at``."""

    def iter_partition(
        self,
        source: str,
        ingest_date: str,
        *,
        target: str,
        chunker_version: str,
        embedder_id: str,
        batch_size: int,
        uids: Sequence[str] | None = None,
        last_date: str | None = None,
    ) -> Iterator[list[RegistryRow]]:
        """The partition's documents in pages of ``batch_size``, keyset-paginated on
        (updated_at, uid): every row once, in that order. Each row is flagged ``unchanged``
        against ``target``'s ledger and the open failures (``domain.skip.is_unchanged``). With
        ``last_date``, every day from ``ingest_date`` to it in one walk; with ``uids``, only
        those documents."""
        ...

    def upsert_documents(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """Register documents ``(uid, source, source_id, title, published_at, s3_raw_uri,
        content_hash, created_at, updated_at)`` as the existing service does (demo and tests):
        a known uid changes only when its content hash does. Returns the rows given."""
        ...

    def partition_summary(self, source: str, ingest_date: str) -> tuple[int, str | None]:
        """(document count, digest of its uids and content hashes) of one partition."""
        ...

    def partition_summaries(self, sources: Sequence[str], since: str) -> dict[str, tuple[int, str]]:
        """``{partition key: (count, digest)}`` for every non-empty partition of these sources
        from ``since`` on. The digest changes whenever a document is added, removed or its
        content changes: it is the partition's data version."""
        ...


class Ledger(Protocol):
    """What the chunk store holds for each document, per target: written only after the store
    confirmed every chunk of the document."""

    def ledger_lookup(self, target: str, uids: Sequence[str]) -> dict[str, LedgerEntry]: ...

    def record_written(
        self,
        target: str,
        entries: Sequence[WrittenDocument],
        *,
        chunker_version: str,
        embedder_id: str,
        run_id: str,
    ) -> None:
        """Replace these documents' ledger rows and resolve their open failures (resolved by
        ``run_id``), in one transaction."""
        ...

    def forget(self, target: str, uids: Sequence[str]) -> None:
        """Delete these documents' ledger rows."""
        ...

    def removed_documents(self, target: str, source: str, ingest_date: str) -> list[str]:
        """Ledger documents of this partition that the registry no longer has at all."""
        ...

    def removed_documents_by_date(
        self, target: str, source: str, first_date: str, last_date: str
    ) -> dict[str, list[str]]:
        """``removed_documents`` of every partition from ``first_date`` to ``last_date``:
        ``{ingest date: uids}`` for the dates that have any."""
        ...

    def run_touched_dates(self, target: str, source: str, run_id: str) -> dict[str, int]:
        """``{ingest date: documents written}`` of what ``run_id`` did to this source: the
        dates where it wrote ledger rows or recorded failures (0 written)."""
        ...

    def iter_run_ledger(
        self, target: str, source: str, run_id: str, *, batch_size: int = 1000
    ) -> Iterator[list[LedgerEntry]]:
        """The ledger rows ``run_id`` wrote for this source, in pages in (ingest_date, uid)
        order."""
        ...

    def iter_ledger(
        self,
        target: str,
        *,
        source: str | None = None,
        ingest_date: str | None = None,
        run_id: str | None = None,
        batch_size: int = 1000,
    ) -> Iterator[list[LedgerEntry]]:
        """Ledger rows of a partition or a run in pages in uid order. Rows deleted between
        pages do not disturb the walk (rollback deletes as it goes)."""
        ...


class FailureLog(Protocol):
    """``ingestion_failures``: at most one unresolved failure per document."""

    def record_failures(
        self, failures: Sequence[Failure], *, run_id: str, max_attempts: int, repair: bool = False
    ) -> int:
        """Upsert failures: a document's open failure is updated (attempts + 1), not duplicated.
        A failed ``repair`` run also counts a repair attempt; after ``max_attempts`` of them the
        failure is permanent and the repair sensor stops retrying it. Other runs (first, plain
        or forced re-runs) never make a failure permanent. Returns how many were recorded."""
        ...

    def failure_counts(self, source: str, ingest_date: str) -> dict[str, int]:
        """Unresolved failures of a partition: ``{"open": n, "permanent": n}``, only the
        non-zero ones."""
        ...

    def failure_counts_by_date(
        self, source: str, first_date: str, last_date: str
    ) -> dict[str, dict[str, int]]:
        """``failure_counts`` of every partition from ``first_date`` to ``last_date``."""
        ...

    def repairable_failures(self, *, limit: int = 10_000) -> list[RepairableFailure]:
        """Open, non-permanent failures worth another run: transient ones, and data ones whose
        registry content hash changed since (``domain.skip.is_known_bad``), ordered by
        (source, current date, uid). Each comes with the document's current partition date:
        a fixed document may have moved to a later partition. Documents gone from the registry
        are left out."""
        ...

    def unresolved_failure_uids(self, uids: Sequence[str]) -> set[str]:
        """Which of these documents have an unresolved failure (open or permanent)."""
        ...


class StatusReport(Protocol):
    def partition_status(
        self,
        target: str,
        sources: Sequence[str],
        since: str,
        until: str,
        *,
        chunker_version: str,
        embedder_id: str,
    ) -> dict[str, PartitionCounts]:
        """Per partition key with anything in it: registry documents and how many of them a run
        would still write (pending: not ``domain.skip.is_unchanged``), ledger documents and
        chunks, open and permanent failures."""
        ...


class Registry(DocumentRegistry, Ledger, FailureLog, StatusReport, Protocol):
    """Every concern on one connection: what a pipeline holds."""

    def close(self) -> None: ...

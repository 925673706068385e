"""The registry in plain Python: every protocol of ``resources.registry`` over dicts, for engine
tests that need no database. Same behaviour as ``postgres.py`` (the contract suite in
``tests/support/registry_contract.py`` runs against both), including the skip rule of
``domain.skip``. Single-threaded; nothing persists."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from reingest_assets.domain.failures import Failure
from reingest_assets.domain.partition import partition_key
from reingest_assets.domain.skip import is_known_bad, is_unchanged
from reingest_assets.resources.registry import (
    LedgerEntry,
    PartitionCounts,
    RegistryRow,
    RepairableFailure,
    WrittenDocument,
)

T = TypeVar("T")


@dataclass(slots=True)
class Document:
    """A row of the existing service's ``documents`` table."""

    uid: str
    source: str
    source_id: str
    title: str | None
    published_at: date | None
    s3_raw_uri: str
    content_hash: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def day(self) -> str:
        return self.updated_at.astimezone(UTC).date().isoformat()


@dataclass(slots=True)
class FailureRow:
    """A row of ``ingestion_failures``."""

    id: int
    uid: str
    source: str
    ingest_date: str
    stage: str
    kind: str
    error_class: str
    message: str
    content_hash: str | None
    run_id: str
    attempts: int = 1
    repair_attempts: int = 0
    permanent: bool = False
    resolved_run_id: str | None = None

    @property
    def resolved(self) -> bool:
        return self.resolved_run_id is not None


def _pages(
    rows: Callable[[], Iterable[T]], key: Callable[[T], Any], batch_size: int
) -> Iterator[list[T]]:
    """Keyset pagination over what ``rows()`` holds at each page: rows added or removed between
    pages are seen as a database would see them."""
    last: Any = None
    while True:
        after = (r for r in rows() if last is None or key(r) > last)
        page = heapq.nsmallest(batch_size, after, key=key)
        if not page:
            return
        yield page
        last = key(page[-1])
        if len(page) < batch_size:
            return


def _digest(docs: Iterable[Document]) -> str | None:
    parts = [f"{d.uid}:{d.content_hash or ''}" for d in sorted(docs, key=lambda d: d.uid)]
    return hashlib.md5(",".join(parts).encode()).hexdigest() if parts else None


class MemoryRegistry:
    """Documents, ledger and failures as dicts and lists (public, for tests to look at)."""

    def __init__(self) -> None:
        self.documents: dict[str, Document] = {}
        # (target, uid) → (entry, run that wrote it)
        self.ledger: dict[tuple[str, str], tuple[LedgerEntry, str]] = {}
        self.failures: list[FailureRow] = []

    def close(self) -> None:
        """Nothing to release."""

    # -- documents ----------------------------------------------------------------------------

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
        last_day = last_date or ingest_date
        wanted = set(uids) if uids is not None else None

        def docs() -> Iterator[Document]:
            for d in self.documents.values():
                if (
                    d.source == source
                    and ingest_date <= d.day <= last_day
                    and (wanted is None or d.uid in wanted)
                ):
                    yield d

        for page in _pages(docs, lambda d: (d.updated_at, d.uid), batch_size):
            yield [
                RegistryRow(
                    d.uid,
                    d.source,
                    d.source_id,
                    d.s3_raw_uri,
                    d.content_hash,
                    d.updated_at,
                    self._unchanged(d, target, chunker_version, embedder_id),
                )
                for d in page
            ]

    def _unchanged(self, d: Document, target: str, chunker_version: str, embedder_id: str) -> bool:
        written = self.ledger.get((target, d.uid))
        failure = self._open_failure(d.uid)
        return is_unchanged(
            d.content_hash,
            written=written[0] if written else None,
            open_failure=(failure.kind, failure.content_hash) if failure else None,
            chunker_version=chunker_version,
            embedder_id=embedder_id,
        )

    def upsert_documents(self, rows: Iterable[tuple[Any, ...]]) -> int:
        n = 0
        for row in rows:
            doc = Document(*row)
            known = self.documents.get(doc.uid)
            if known is None:
                self.documents[doc.uid] = doc
            elif known.content_hash != doc.content_hash:
                doc.created_at = known.created_at
                self.documents[doc.uid] = doc
            n += 1
        return n

    def partition_summary(self, source: str, ingest_date: str) -> tuple[int, str | None]:
        docs = [d for d in self.documents.values() if d.source == source and d.day == ingest_date]
        return len(docs), _digest(docs)

    def partition_summaries(self, sources: Sequence[str], since: str) -> dict[str, tuple[int, str]]:
        by_key: dict[str, list[Document]] = {}
        for d in self.documents.values():
            if d.source in sources and d.day >= since:
                by_key.setdefault(partition_key(d.day, d.source), []).append(d)
        return {key: (len(docs), _digest(docs) or "") for key, docs in by_key.items()}

    # -- ledger -------------------------------------------------------------------------------

    def ledger_lookup(self, target: str, uids: Sequence[str]) -> dict[str, LedgerEntry]:
        return {uid: self.ledger[(target, uid)][0] for uid in uids if (target, uid) in self.ledger}

    def record_written(
        self,
        target: str,
        entries: Sequence[WrittenDocument],
        *,
        chunker_version: str,
        embedder_id: str,
        run_id: str,
    ) -> None:
        for uid, source, ingest_date, content_hash, uuids in entries:
            entry = LedgerEntry(
                uid, source, ingest_date, content_hash, chunker_version, embedder_id, list(uuids)
            )
            self.ledger[(target, uid)] = (entry, run_id)
            failure = self._open_failure(uid)
            if failure is not None:
                failure.resolved_run_id = run_id

    def forget(self, target: str, uids: Sequence[str]) -> None:
        for uid in uids:
            self.ledger.pop((target, uid), None)

    def removed_documents(self, target: str, source: str, ingest_date: str) -> list[str]:
        return self.removed_documents_by_date(target, source, ingest_date, ingest_date).get(
            ingest_date, []
        )

    def removed_documents_by_date(
        self, target: str, source: str, first_date: str, last_date: str
    ) -> dict[str, list[str]]:
        removed: dict[str, list[str]] = {}
        for entry in self._entries(target, source=source):
            if first_date <= entry.ingest_date <= last_date and entry.uid not in self.documents:
                removed.setdefault(entry.ingest_date, []).append(entry.uid)
        return removed

    def run_touched_dates(self, target: str, source: str, run_id: str) -> dict[str, int]:
        touched = Counter(
            e.ingest_date for e in self._entries(target, source=source, run_id=run_id)
        )
        for f in self.failures:
            if f.run_id == run_id and f.source == source:
                touched[f.ingest_date] += 0
        return dict(touched)

    def iter_run_ledger(
        self, target: str, source: str, run_id: str, *, batch_size: int = 1000
    ) -> Iterator[list[LedgerEntry]]:
        yield from _pages(
            lambda: self._entries(target, source=source, run_id=run_id),
            lambda e: (e.ingest_date, e.uid),
            batch_size,
        )

    def iter_ledger(
        self,
        target: str,
        *,
        source: str | None = None,
        ingest_date: str | None = None,
        run_id: str | None = None,
        batch_size: int = 1000,
    ) -> Iterator[list[LedgerEntry]]:
        yield from _pages(
            lambda: self._entries(target, source=source, ingest_date=ingest_date, run_id=run_id),
            lambda e: e.uid,
            batch_size,
        )

    def _entries(
        self,
        target: str,
        *,
        source: str | None = None,
        ingest_date: str | None = None,
        run_id: str | None = None,
    ) -> list[LedgerEntry]:
        return [
            entry
            for (t, _), (entry, written_by) in self.ledger.items()
            if t == target
            and source in (None, entry.source)
            and ingest_date in (None, entry.ingest_date)
            and run_id in (None, written_by)
        ]

    # -- failures -----------------------------------------------------------------------------

    def _open_failure(self, uid: str) -> FailureRow | None:
        return next((f for f in self.failures if f.uid == uid and not f.resolved), None)

    def _unresolved(self) -> Iterator[FailureRow]:
        return (f for f in self.failures if not f.resolved)

    def record_failures(
        self, failures: Sequence[Failure], *, run_id: str, max_attempts: int, repair: bool = False
    ) -> int:
        repairs = int(repair)
        for f in failures:
            row = self._open_failure(f.uid)
            if row is None:
                self.failures.append(
                    FailureRow(
                        len(self.failures) + 1,
                        f.uid,
                        f.source,
                        f.ingest_date,
                        f.stage,
                        f.kind,
                        f.error_class,
                        f.message,
                        f.content_hash,
                        run_id,
                        repair_attempts=repairs,
                        permanent=repairs >= max_attempts,
                    )
                )
                continue
            # As the database's upsert: the failure's partition stays the first one's.
            row.stage, row.kind, row.error_class = f.stage, f.kind, f.error_class
            row.message, row.content_hash, row.run_id = f.message, f.content_hash, run_id
            row.attempts += 1
            row.repair_attempts += repairs
            row.permanent = row.permanent or row.repair_attempts >= max_attempts
        return len(failures)

    def failure_counts(self, source: str, ingest_date: str) -> dict[str, int]:
        return self.failure_counts_by_date(source, ingest_date, ingest_date).get(ingest_date, {})

    def failure_counts_by_date(
        self, source: str, first_date: str, last_date: str
    ) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for f in self._unresolved():
            if f.source == source and first_date <= f.ingest_date <= last_date:
                day = counts.setdefault(f.ingest_date, {})
                kind = "permanent" if f.permanent else "open"
                day[kind] = day.get(kind, 0) + 1
        return counts

    def repairable_failures(self, *, limit: int = 10_000) -> list[RepairableFailure]:
        found = []
        for f in self._unresolved():
            doc = self.documents.get(f.uid)
            if (
                doc is not None
                and not f.permanent
                and not is_known_bad(f.kind, f.content_hash, doc.content_hash)
            ):
                found.append(
                    RepairableFailure(f.id, f.uid, doc.source, doc.day, f.kind, f.repair_attempts)
                )
        found.sort(key=lambda r: (r.source, r.ingest_date, r.uid))
        return found[:limit]

    def unresolved_failure_uids(self, uids: Sequence[str]) -> set[str]:
        wanted = set(uids)
        return {f.uid for f in self._unresolved() if f.uid in wanted}

    # -- status -------------------------------------------------------------------------------

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
        counts: dict[str, PartitionCounts] = {}

        def at(day: str, source: str) -> PartitionCounts | None:
            if source not in sources or not since <= day <= until:
                return None
            return counts.setdefault(partition_key(day, source), PartitionCounts())

        for d in self.documents.values():
            if (entry := at(d.day, d.source)) is not None:
                entry.documents += 1
                entry.pending += not self._unchanged(d, target, chunker_version, embedder_id)
        for written in self._entries(target):
            if (entry := at(written.ingest_date, written.source)) is not None:
                entry.ledger_documents += 1
                entry.ledger_chunks += len(written.chunk_uuids)
        for f in self._unresolved():
            if (entry := at(f.ingest_date, f.source)) is not None:
                entry.permanent_failures += f.permanent
                entry.open_failures += not f.permanent
        return counts

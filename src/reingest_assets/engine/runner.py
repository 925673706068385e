"""The streaming per-partition runner: registry → object store → normalize → Parquet, and
Parquet → chunk → embed → chunk store → ledger. Bounded batches end to end; no Dagster here.

The CLI, the benchmark and the Dagster assets all drive these functions.
"""

from __future__ import annotations

import functools
import gc
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reingest_assets.domain.chunker import CHUNKER_VERSION, ChunkerConfig
from reingest_assets.domain.failures import DocumentError, Failure, is_row_error
from reingest_assets.domain.limits import DocumentLimits, registry_refusal
from reingest_assets.domain.partition import Partition, partition_key
from reingest_assets.domain.skip import is_written
from reingest_assets.engine.damage import damaged_documents
from reingest_assets.engine.progress import Progress
from reingest_assets.engine.workers import (
    NORMALIZED_SCHEMA,
    ChunkedItem,
    RawItem,
    WorkerPool,
    arrow_slices,
    chunk_arrow,
    normalize_to_arrow,
    slices,
)
from reingest_assets.resources.embedders import Embedder
from reingest_assets.resources.object_store import ObjectStore
from reingest_assets.resources.registry import LedgerEntry, Registry, RegistryRow
from reingest_assets.resources.stores import ChunkStore, EncodingChunkStore

WORKER_SLICE = 250  # documents per task sent to a worker process


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Keep the objects that exist now out of the cyclic garbage collector until the block
    ends. In a Dagster run they are the code location and the instance, hundreds of thousands
    of objects that live as long as the process, and every full collection rescanned them: a
    third of the checks' time at 100,000 documents. Not nestable (unfreeze thaws all)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class WriterLocks(Protocol):
    """One writer per partition across runs (``resources.partition_locks``: Postgres advisory
    locks held by the run's own connection)."""

    def try_lock(self, partition_key: str) -> bool: ...
    def lock(self, partition_key: str) -> None: ...
    def unlock(self, keys: Iterable[str]) -> None: ...
    def holder(self, partition_key: str) -> str | None: ...
    def close(self) -> None: ...


@dataclass
class Pipeline:
    """Everything one engine run needs. Built by the Dagster resources or by the CLI."""

    registry: Registry
    objects: ObjectStore
    store: ChunkStore
    run_id: str
    embedder: Embedder | None = None
    batch_size: int = 2000
    workers: int = 2
    max_attempts: int = 3
    # A repair run: a document that fails again costs a repair attempt (REINGEST_MAX_ATTEMPTS);
    # failures in other runs never turn permanent.
    repair: bool = False
    chunker: ChunkerConfig = field(default_factory=ChunkerConfig)
    limits: DocumentLimits = field(default_factory=DocumentLimits)
    log: Callable[[str], None] = print
    # One writer per partition across runs; None: this pipeline is the only writer (tests).
    locks: WriterLocks | None = None
    _pool: WorkerPool | None = None

    @property
    def embedder_id(self) -> str:
        return self.embedder.id if self.embedder is not None else "none"

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(self.workers)
        return self._pool

    def registry_pages(
        self, part: Partition, uids: Sequence[str] | None
    ) -> Iterator[list[RegistryRow]]:
        """The partition's registry rows in pages, each row flagged ``unchanged`` against this
        pipeline's store, chunker version and embedder (the real run and the dry run share it,
        so a plan skips exactly what a run would)."""
        return self.registry.iter_partition(
            part.source,
            part.ingest_date,
            target=self.store.target,
            chunker_version=CHUNKER_VERSION,
            embedder_id=self.embedder_id,
            batch_size=self.batch_size,
            uids=uids,
        )

    def rows_to_write(
        self, rows: list[RegistryRow], *, force: bool, verify: bool
    ) -> list[RegistryRow]:
        """A page's documents a run writes: every one with ``force``; else the new or changed
        ones and, with ``verify``, the unchanged ones whose chunks the store does not hold as
        the ledger says (the repair of what validation found: missing, orphan, altered)."""
        if force:
            return rows
        if not verify:
            return [r for r in rows if not r.unchanged]
        damaged = damaged_documents(
            self.registry,
            self.store,
            [r.uid for r in rows if r.unchanged],
            max_tokens=self.chunker.max_tokens,
        )
        if damaged:
            self.log(f"verify: {len(damaged)} damaged document(s) to rewrite")
        return [r for r in rows if not r.unchanged or r.uid in damaged]

    def finish(self) -> None:
        """End this pipeline's work: stop the workers and let the store finish what it
        deferred (the checks that follow read an analyzed table). The adapters stay open for
        their owner (the Dagster resource) to close."""
        try:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            if self.locks is not None:
                self.locks.close()
        finally:
            self.store.finish()

    def close(self) -> None:
        """Finish, then close the adapters: for callers that built them (tests, tools)."""
        try:
            self.finish()
        finally:
            try:
                self.store.close()
            finally:
                self.registry.close()


@dataclass
class StageReport:
    partition: str
    docs_in: int = 0
    docs_written: int = 0
    docs_skipped: int = 0
    docs_failed: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    docs_deleted: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    failures_by_stage: dict[str, int] = field(default_factory=dict)

    @property
    def docs_per_minute(self) -> float:
        return self.docs_in / self.seconds * 60 if self.seconds > 0 else 0.0

    def timed(self, stage: str, start: float) -> None:
        self.add_seconds(stage, time.perf_counter() - start)

    def add_seconds(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def add_failures(self, failures: Sequence[Failure]) -> None:
        self.docs_failed += len(failures)
        for f in failures:
            self.failures_by_stage[f.stage] = self.failures_by_stage.get(f.stage, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "docs_in": self.docs_in,
            "docs_written": self.docs_written,
            "docs_skipped": self.docs_skipped,
            "docs_failed": self.docs_failed,
            "docs_deleted": self.docs_deleted,
            "chunks_written": self.chunks_written,
            "chunks_deleted": self.chunks_deleted,
            "seconds": round(self.seconds, 3),
            "docs_per_minute": round(self.docs_per_minute, 1),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "failures_by_stage": dict(self.failures_by_stage),
        }


# -- one writer per partition ------------------------------------------------------------------


def exclusively(
    p: Pipeline,
    stage: Callable[..., list[StageReport]],
    parts: Sequence[Partition],
    **kwargs: Any,
) -> list[StageReport]:
    """Run a writing stage over the partitions no other run is writing, set-based; then each
    partition another live run holds, one at a time, once that run lets go of it (by then it
    wrote it: what is left is skipped as unchanged). Never two writers on a partition, and no
    deadlock: a run waits holding no lock."""
    if p.locks is None:
        return stage(p, parts, **kwargs)
    locks = p.locks
    owned = [part for part in parts if locks.try_lock(part.key)]
    busy = [part for part in parts if part not in set(owned)]
    reports: dict[str, StageReport] = {}
    try:
        if owned:
            reports.update((r.partition, r) for r in stage(p, owned, **kwargs))
    finally:
        locks.unlock(part.key for part in owned)
    for part in busy:
        holder = locks.holder(part.key)
        p.log(f"{part.key}: run {holder or '(finished)'} is writing it; waiting for it")
        locks.lock(part.key)
        try:
            reports[part.key] = stage(p, [part], **kwargs)[0]
        finally:
            locks.unlock([part.key])
    return [reports[part.key] for part in parts]


# -- stage 1: raw → normalized Parquet ---------------------------------------------------------


def fetch_raw(
    objects: ObjectStore, rows: list[RegistryRow], ingest_date: str | None = None
) -> tuple[list[RawItem], list[Failure]]:
    """The rows' raw objects (fetched concurrently by the store), and a ``fetch`` failure for
    each one that could not be had or whose registry values the pipeline cannot store.
    Without ``ingest_date`` each row is of its own day."""
    items: list[RawItem] = []
    failures: list[Failure] = []

    def failed(row: RegistryRow, exc: BaseException) -> None:
        failures.append(
            Failure.from_exception(
                exc,
                uid=row.uid,
                source=row.source,
                ingest_date=ingest_date or _day(row),
                stage="fetch",
                content_hash=row.content_hash,
            )
        )

    storable = []
    for row in rows:
        refusal = registry_refusal(row.uid, row.source)
        if refusal is None:
            storable.append(row)
        else:
            failed(row, refusal)
    for row, (_, result) in zip(
        storable, objects.get_many(r.s3_raw_uri for r in storable), strict=True
    ):
        if isinstance(result, BaseException):
            failed(row, result)
        else:
            day = ingest_date or _day(row)
            items.append(RawItem(row.uid, row.source, row.source_id, day, row.content_hash, result))
    return items, failures


def normalize_partitions(
    p: Pipeline,
    parts: Sequence[Partition],
    *,
    uids: Sequence[str] | None = None,
    force: bool = False,
    verify: bool = False,
) -> list[StageReport]:
    """Normalize the new or changed documents of each partition into one Parquet object per
    partition, streamed in row groups of ``batch_size``. Unchanged documents (per the ledger)
    are skipped before their raw object is fetched. Set-based over the range: one registry walk
    per source and run of consecutive days, pages crossing partitions, the workers kept busy
    across them; a partition with nothing new gets no object (a stale one is removed), so an
    unchanged partition costs its share of one indexed scan; with ``verify``, unchanged
    documents the store holds damaged are normalized again too. One report per partition, in
    order."""
    reports = {part.key: StageReport(part.key) for part in parts}
    for source, days in _consecutive_days(parts):
        _normalize_days(p, source, days, uids, force, verify, reports)
    return [reports[part.key] for part in parts]


def _consecutive_days(parts: Sequence[Partition]) -> Iterator[tuple[str, list[str]]]:
    """The partitions as (source, consecutive dates) runs: each is one registry walk."""
    by_source: dict[str, list[str]] = {}
    for part in parts:
        by_source.setdefault(part.source, []).append(part.ingest_date)
    for source, dates in by_source.items():
        days: list[str] = []
        for day in sorted(set(dates)):
            if days and date.fromisoformat(day) - date.fromisoformat(days[-1]) != _ONE_DAY:
                yield source, days
                days = []
            days.append(day)
        if days:
            yield source, days


_ONE_DAY = timedelta(days=1)


def _normalized_uris(p: Pipeline, source: str) -> set[str]:
    """The normalized objects that exist for a source (one listing, not a request each)."""
    listed = p.objects.list(f"normalized/source={source}/")
    return {uri.split("://", 1)[-1].split("/", 1)[-1] for uri in listed}  # bare keys


def _normalize_days(
    p: Pipeline,
    source: str,
    days: list[str],
    uids: Sequence[str] | None,
    force: bool,
    verify: bool,
    reports: dict[str, StageReport],
) -> None:
    existing = _normalized_uris(p, source)
    if len(days) == 1:
        total: int | None = p.registry.partition_summary(source, days[0])[0]
    else:
        total = None
    if uids is not None:
        total = len(uids)
    label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
    progress = Progress("normalize", partition_key(label, source), total, p.log)
    written: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="reingest-") as tmp:
        out = _PartitionParquet(p, Path(tmp))
        pages = _prefetched_pages(p, source, days, uids, force, verify, reports)
        normalize = functools.partial(normalize_to_arrow, limits=p.limits)
        last = time.perf_counter()
        for page, results, cpu in p.pool.lookahead(
            pages, normalize, lambda page: slices(page.items, WORKER_SLICE)
        ):
            spent = page.spent
            spent.add_seconds("normalize_cpu", cpu)
            failures = page.failures + [r for r in results if isinstance(r, Failure)]
            normalized = [r for r in results if isinstance(r, pa.RecordBatch)]
            t = time.perf_counter()
            if normalized:
                table = pa.Table.from_batches(normalized, NORMALIZED_SCHEMA)
                for day, rows in _runs_by_day(table):
                    part = Partition(source, day)
                    out.write(part, rows)
                    written.add(part.normalized_uri)
                    reports[part.key].docs_written += rows.num_rows
            spent.timed("write", t)
            _record_failures(p, reports, failures)
            progress.advance(sum(page.docs.values()))
            now = time.perf_counter()
            spent.seconds = now - last
            last = now
            _share(spent, page.docs, reports)
        t = time.perf_counter()
        finished = out.finish()
        if finished is not None:
            reports[finished.key].timed("write", t)
    for day in days:
        uri = Partition(source, day).normalized_uri
        if uri in existing and uri not in written:  # nothing new: chunking must not redo it
            p.objects.delete(uri)
    progress.done()


class _PartitionParquet:
    """One partition's Parquet at a time, stored as its object when the walk moves on to
    another partition. Up to ``batch_size`` rows (a daily partition of a few hundred
    documents) are held and encoded in memory, then stored with one put; a larger partition
    streams to a temporary file, uploaded at the end: memory stays bounded either way."""

    def __init__(self, p: Pipeline, tmp: Path) -> None:
        self.p = p
        self.path = tmp / "documents.parquet"
        self.part: Partition | None = None
        self.held: list[pa.Table] = []
        self.writer: pq.ParquetWriter | None = None

    def write(self, part: Partition, table: pa.Table) -> None:
        if part != self.part:
            self.finish()
            self.part = part
        if self.writer is None:
            if sum(t.num_rows for t in self.held) + table.num_rows <= self.p.batch_size:
                self.held.append(table)
                return
            self.writer = self._write_held(self.path)
        self.writer.write_table(table)

    def _write_held(self, sink: Path | pa.NativeFile) -> pq.ParquetWriter:
        writer = pq.ParquetWriter(sink, NORMALIZED_SCHEMA, compression="zstd")
        if self.held:
            writer.write_table(pa.concat_tables(self.held))  # one row group
            self.held = []
        return writer

    def finish(self) -> Partition | None:
        """Store the partition being written, if any; returns it."""
        part = self.part
        if part is None:
            return None
        if self.writer is not None:
            self.writer.close()
            self.p.objects.upload_file(part.normalized_uri, self.path)
        elif self.held:
            buffer = pa.BufferOutputStream()
            self._write_held(buffer).close()
            self.p.objects.put(part.normalized_uri, buffer.getvalue().to_pybytes())
        self.writer = None
        self.part = None
        return part


@dataclass
class _RawPage:
    """A registry page's documents to normalize, of one or more partitions of a source."""

    items: list[RawItem]  # the raw objects fetched
    failures: list[Failure]  # the rows whose object could not be had
    docs: dict[str, int]  # registry rows read, per partition key
    spent: StageReport  # its times, shared by those partitions


def _prefetched_pages(
    p: Pipeline,
    source: str,
    days: list[str],
    uids: Sequence[str] | None,
    force: bool,
    verify: bool,
    reports: dict[str, StageReport],
) -> Iterator[_RawPage]:
    """Registry pages, crossing partitions, with their raw objects fetched (concurrently, by
    the object store)."""
    t = time.perf_counter()
    for page in p.registry.iter_partition(
        source,
        days[0],
        last_date=days[-1],
        target=p.store.target,
        chunker_version=CHUNKER_VERSION,
        embedder_id=p.embedder_id,
        batch_size=p.batch_size,
        uids=uids,
    ):
        spent = StageReport(source)
        day_of = {row.uid: _day(row) for row in page}
        todo = p.rows_to_write(page, force=force, verify=verify)
        kept = Counter(day_of[row.uid] for row in todo)
        docs = {}
        for day, n in Counter(day_of.values()).items():
            key = Partition(source, day).key
            docs[key] = n
            reports[key].docs_in += n
            reports[key].docs_skipped += n - kept[day]
        spent.timed("read", t)
        t = time.perf_counter()
        items, failures = fetch_raw(p.objects, todo) if todo else ([], [])
        spent.timed("fetch", t)
        yield _RawPage(items, failures, docs, spent)
        t = time.perf_counter()


def _runs_by_day(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """Normalized rows in registry order (by ``updated_at``) as their runs of one ingest
    date: one run per partition."""
    days = table.column("ingest_date").to_pylist()
    start = 0
    for i in range(1, len(days) + 1):
        if i == len(days) or days[i] != days[start]:
            yield days[start], table.slice(start, i - start)
            start = i


def _day(row: RegistryRow) -> str:
    return row.updated_at.astimezone(UTC).date().isoformat()


def _record_failures(p: Pipeline, reports: dict[str, StageReport], failures: list[Failure]) -> None:
    """Record failures in one call, each counted on its document's partition."""
    if failures:
        p.registry.record_failures(
            failures, run_id=p.run_id, max_attempts=p.max_attempts, repair=p.repair
        )
        for f in failures:
            reports[Partition(f.source, f.ingest_date).key].add_failures([f])


# -- stage 2: normalized Parquet → chunks in the store -----------------------------------------


def _normalized_batches(
    p: Pipeline, part: Partition, uids: Sequence[str] | None, tmp: Path
) -> Iterator[pa.RecordBatch]:
    """A partition's normalized rows, downloaded into ``tmp`` (one directory for the walk,
    not one a partition) and read in batches of ``batch_size``."""
    wanted = pa.array(sorted(set(uids)), pa.string()) if uids is not None else None
    path = tmp / f"{part.ingest_date}.parquet"
    if not p.objects.download_file(part.normalized_uri, path):
        return  # removed after it was listed: a newer normalization found nothing new
    try:
        parquet = pq.ParquetFile(path)
        # Row group by row group: ParquetFile.iter_batches holds on to Arrow memory as it goes
        # (+100 MB over a million documents), read_row_group does not.
        for group in range(parquet.num_row_groups):
            for batch in parquet.read_row_group(group).to_batches(max_chunksize=p.batch_size):
                if wanted is not None:
                    batch = batch.filter(pc.is_in(batch.column("uid"), value_set=wanted))
                yield batch
    finally:
        path.unlink()


def chunk_partitions(
    p: Pipeline,
    parts: Sequence[Partition],
    *,
    uids: Sequence[str] | None = None,
    force: bool = False,
    verify: bool = False,
) -> list[StageReport]:
    """Chunk each partition's normalized documents and write them: upsert new chunks, then
    delete the stale tail, then record the ledger (a crash anywhere redoes at most the batch in
    flight). A partition without a normalized object had nothing new. Batches flow through the
    workers across partitions; removed documents are found in one query per source. With
    ``verify`` (after a verifying normalize) every normalized document is written, and chunks
    the store holds for them beyond the ledger's (orphans) are deleted first.

    Batches of ``batch_size`` documents span partitions (one ledger lookup, one store write and
    one ledger write each, however small the partitions); each document's figures go to its own
    partition, and a batch's times are shared among its partitions by documents."""
    reports = {part.key: StageReport(part.key) for part in parts}
    # Workers encode the chunks for the store when it can take them so (and no vectors are
    # computed here): the main process then forwards bytes.
    encode = (
        p.store.encode_chunks
        if isinstance(p.store, EncodingChunkStore) and p.embedder is None
        else None
    )
    chunker = functools.partial(chunk_arrow, config=p.chunker, encode=encode, limits=p.limits)
    for source, days in _consecutive_days(parts):
        existing = _normalized_uris(p, source)
        todo = [
            Partition(source, d) for d in days if Partition(source, d).normalized_uri in existing
        ]
        label = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        progress = Progress("chunk", partition_key(label, source), None, p.log)
        last = time.perf_counter()
        for batch, results, cpu in p.pool.lookahead(
            _planned_batches(p, todo, uids, force, verify, reports),
            chunker,
            lambda b: arrow_slices(b.rows, WORKER_SLICE),
        ):
            spent = StageReport(source)  # this batch's times, shared by its partitions
            spent.add_seconds("plan", batch.plan_seconds)
            spent.add_seconds("chunk_cpu", cpu)
            failures = [r for r in results if isinstance(r, Failure)]
            chunked = [r for r in results if isinstance(r, ChunkedItem)]
            written, store_failures = _write_chunked(p, chunked, batch.previous, spent)
            for item, stale in written:
                report = reports[Partition(item.source, item.ingest_date).key]
                report.docs_written += 1
                report.chunks_written += len(item.chunk_uuids)
                report.chunks_deleted += stale
            _record_failures(p, reports, failures + store_failures)
            progress.advance(sum(batch.docs.values()))
            now = time.perf_counter()
            spent.seconds = now - last
            last = now
            _share(spent, batch.docs, reports)
        if uids is None:
            _delete_removed_documents(p, source, days, reports)
        progress.done()
    return [reports[part.key] for part in parts]


@dataclass
class _ChunkBatch:
    """Normalized documents still to write, of one or more partitions of a source."""

    rows: pa.RecordBatch
    previous: dict[str, LedgerEntry]  # what the ledger holds for every document read
    docs: dict[str, int]  # documents read, per partition key
    plan_seconds: float


def _planned_batches(
    p: Pipeline,
    parts: Sequence[Partition],
    uids: Sequence[str] | None,
    force: bool,
    verify: bool,
    reports: dict[str, StageReport],
) -> Iterator[_ChunkBatch]:
    """The partitions' normalized documents in batches of ``batch_size`` across partitions,
    each with its ledger entries (one lookup), less those already written."""
    for rows, docs in _gathered(p, parts, uids):
        t = time.perf_counter()
        source = parts[0].source
        days = rows.column("ingest_date").to_pylist()
        key_of = {day: Partition(source, day).key for day in set(days)}
        for key, n in docs.items():
            reports[key].docs_in += n
        batch_uids = rows.column("uid").to_pylist()
        previous = p.registry.ledger_lookup(p.store.target, batch_uids)
        todo = rows
        if verify:
            partition_of = {uid: key_of[day] for uid, day in zip(batch_uids, days, strict=True)}
            for uid in _delete_orphans(p, batch_uids, previous):
                reports[partition_of[uid]].chunks_deleted += 1
        elif not force:
            hashes = rows.column("content_hash").to_pylist()
            # Normalized documents were new or changed when read; another run may have
            # written them since. (Bad data never reaches the Parquet.)
            keep = [
                not is_written(
                    content_hash,
                    previous.get(uid),
                    chunker_version=CHUNKER_VERSION,
                    embedder_id=p.embedder_id,
                )
                for uid, content_hash in zip(batch_uids, hashes, strict=True)
            ]
            todo = rows.filter(pa.array(keep, pa.bool_()))
            for day, kept in zip(days, keep, strict=True):
                reports[key_of[day]].docs_skipped += not kept
        yield _ChunkBatch(todo, previous, docs, time.perf_counter() - t)


def _gathered(
    p: Pipeline, parts: Sequence[Partition], uids: Sequence[str] | None
) -> Iterator[tuple[pa.RecordBatch, dict[str, int]]]:
    """The partitions' normalized rows, one partition after the other, in batches of
    ``batch_size`` rows, with how many rows of each partition a batch holds."""
    pending: list[pa.RecordBatch] = []
    docs: dict[str, int] = {}
    size = 0
    with tempfile.TemporaryDirectory(prefix="reingest-") as tmp:
        for part in parts:
            for batch in _normalized_batches(p, part, uids, Path(tmp)):
                while batch.num_rows:
                    taken = batch.slice(0, p.batch_size - size)
                    batch = batch.slice(taken.num_rows)
                    pending.append(taken)
                    docs[part.key] = docs.get(part.key, 0) + taken.num_rows
                    size += taken.num_rows
                    if size == p.batch_size:
                        yield pa.concat_batches(pending), docs
                        pending, docs, size = [], {}, 0
    if pending:
        yield pa.concat_batches(pending), docs


def _share(spent: StageReport, docs: dict[str, int], reports: dict[str, StageReport]) -> None:
    """A batch's times (wall and per stage), shared among its partitions by documents."""
    total = sum(docs.values())
    for key, n in docs.items():
        report = reports[key]
        report.seconds += spent.seconds * n / total
        for stage, seconds in spent.stage_seconds.items():
            report.add_seconds(stage, seconds * n / total)


def _delete_orphans(p: Pipeline, uids: list[str], ledger: dict[str, LedgerEntry]) -> list[str]:
    """Delete the chunks the store holds for these documents that their ledger rows do not list
    (the rewrite that follows restores missing and altered ones, and its stale-tail delete sees
    only the ledger's); returns the document of each chunk deleted."""
    listed = {u for entry in ledger.values() for u in entry.chunk_uuids}
    orphans = [(uuid, uid) for uuid, uid in p.store.fetch_ids(uids) if uuid not in listed]
    if orphans:
        p.store.delete([uuid for uuid, _ in orphans])
    return [uid for _, uid in orphans]


def _write_chunked(
    p: Pipeline,
    chunked: list[ChunkedItem],
    previous: dict[str, LedgerEntry],
    spent: StageReport,
) -> tuple[list[tuple[ChunkedItem, int]], list[Failure]]:
    """Write a batch's documents; returns (the documents written, each with how many stale
    chunks of its were deleted; store/embed failures). Only the times go into ``spent``.

    A write refused for what a row holds (an index row too large, a value out of range) is
    some document's fault: the batch is split in halves until that document is alone, and it
    becomes a failure with none of its chunks or ledger row left behind, while the others are
    written. Errors of the service itself (after the adapters' retries) stop the run."""
    if not chunked:
        return [], []
    failures: list[Failure] = []
    return _write_isolating(p, chunked, previous, spent, failures), failures


def _write_isolating(
    p: Pipeline,
    chunked: list[ChunkedItem],
    previous: dict[str, LedgerEntry],
    spent: StageReport,
    failures: list[Failure],
) -> list[tuple[ChunkedItem, int]]:
    try:
        return _write_batch(p, chunked, previous, spent, failures)
    except Exception as exc:
        if not is_row_error(exc):
            raise
        if len(chunked) == 1:
            item = chunked[0]
            # Upserted chunks (and stale ones deleted) before the ledger refused the row: the
            # document goes wholly, so no chunk is left without its ledger row.
            p.store.delete_parents([item.uid])
            p.registry.forget(p.store.target, [item.uid])
            failures.append(_failure(item, DocumentError("store", _one_line(exc)), "store"))
            return []
        half = len(chunked) // 2
        return _write_isolating(p, chunked[:half], previous, spent, failures) + (
            _write_isolating(p, chunked[half:], previous, spent, failures)
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _write_batch(
    p: Pipeline,
    chunked: list[ChunkedItem],
    previous: dict[str, LedgerEntry],
    spent: StageReport,
    failures: list[Failure],
) -> list[tuple[ChunkedItem, int]]:
    chunks = [c for item in chunked for c in item.chunks]  # none when the workers encoded them
    vectors = None
    if p.embedder is not None:
        t = time.perf_counter()
        try:
            vectors = p.embedder.embed([c.text for c in chunks])
        except Exception as exc:
            spent.timed("embed", t)
            failures += [_failure(item, exc, "embed") for item in chunked]
            return []
        spent.timed("embed", t)
    t = time.perf_counter()
    store = p.store
    try:
        if chunked[0].encoded:  # the workers encoded them for this store (chunk_partition)
            assert isinstance(store, EncodingChunkStore)
            failed = store.upsert_encoded(b"".join(item.encoded for item in chunked))
        else:
            failed = store.upsert(chunks, vectors)
    except Exception as exc:  # the store refused the whole batch, after its own retries
        spent.timed("store", t)
        if is_row_error(exc):
            raise
        failures += [_failure(item, exc, "store") for item in chunked]
        return []
    ok = [item for item in chunked if item.uid not in failed]
    stale = [_stale(item, previous) for item in ok]
    if any(stale):
        p.store.delete([u for uuids in stale for u in uuids])
    spent.timed("store", t)
    t = time.perf_counter()
    p.registry.record_written(
        p.store.target,
        [(i.uid, i.source, i.ingest_date, i.content_hash, i.chunk_uuids) for i in ok],
        chunker_version=CHUNKER_VERSION,
        embedder_id=p.embedder_id,
        run_id=p.run_id,
    )
    spent.timed("ledger", t)
    failures += [
        _failure(item, DocumentError("store", failed[item.uid], kind="transient"), "store")
        for item in chunked
        if item.uid in failed
    ]
    return [(item, len(uuids)) for item, uuids in zip(ok, stale, strict=True)]


def _stale(item: ChunkedItem, previous: dict[str, LedgerEntry]) -> set[str]:
    """The chunks the ledger lists for a document that its new chunks do not overwrite."""
    entry = previous.get(item.uid)
    return set(entry.chunk_uuids) - set(item.chunk_uuids) if entry is not None else set()


def _failure(item: ChunkedItem, exc: BaseException, stage: str) -> Failure:
    return Failure.from_exception(
        exc,
        uid=item.uid,
        source=item.source,
        ingest_date=item.ingest_date,
        stage=stage,  # type: ignore[arg-type]
        content_hash=item.content_hash,
    )


def _delete_removed_documents(
    p: Pipeline, source: str, days: list[str], reports: dict[str, StageReport]
) -> None:
    """Documents the ledger holds for these partitions but the registry no longer has: their
    chunks and ledger rows go (documents that moved to a later partition are not touched)."""
    removed = p.registry.removed_documents_by_date(p.store.target, source, days[0], days[-1])
    for day, uids in removed.items():
        report = reports[Partition(source, day).key]
        report.chunks_deleted += p.store.delete_parents(uids)
        p.registry.forget(p.store.target, uids)
        report.docs_deleted += len(uids)


def _one_partition(stage: Callable[..., list[StageReport]]) -> Callable[..., StageReport]:
    def run(p: Pipeline, part: Partition, **kwargs: Any) -> StageReport:
        return stage(p, [part], **kwargs)[0]

    run.__doc__ = f"``{stage.__name__}`` of one partition."
    return run


normalize_partition = _one_partition(normalize_partitions)
chunk_partition = _one_partition(chunk_partitions)

"""CPU-bound work (parsing, normalizing, tokenizing, chunking) on every core.

Functions here run inside worker processes: module-level, picklable in and out, no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa

from reingest_assets.domain.chunker import ChunkerConfig, chunk_document
from reingest_assets.domain.document import Chunk, Document, PicklesByFields
from reingest_assets.domain.failures import DocumentError, Failure
from reingest_assets.domain.limits import DEFAULT_LIMITS, DocumentLimits
from reingest_assets.domain.pubmed import normalize_record

T = TypeVar("T")
B = TypeVar("B")
R = TypeVar("R")

# The normalized documents' Parquet rows: Document.to_row() plus the registry's content hash and
# ingest date.
NORMALIZED_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("source", pa.string()),
        ("source_id", pa.string()),
        ("title", pa.string()),
        ("section_labels", pa.list_(pa.string())),
        ("section_texts", pa.list_(pa.string())),
        ("authors", pa.list_(pa.string())),
        ("journal", pa.string()),
        ("mesh_terms", pa.list_(pa.string())),
        ("doi", pa.string()),
        ("pmc_id", pa.string()),
        ("published_at", pa.string()),
        ("language", pa.string()),
        ("publication_types", pa.list_(pa.string())),
        ("extra", pa.string()),
        ("content_hash", pa.string()),
        ("ingest_date", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class RawItem(PicklesByFields):
    uid: str
    source: str
    source_id: str
    ingest_date: str
    content_hash: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class NormalizedItem(PicklesByFields):
    row: dict[str, Any]  # Document.to_row() plus the registry's content hash and ingest date


@dataclass(frozen=True, slots=True)
class ChunkedItem(PicklesByFields):
    uid: str
    source: str
    ingest_date: str
    content_hash: str
    chunk_uuids: list[str]
    # The chunks, or, when the store takes them pre-encoded, empty and ``encoded`` holds them.
    chunks: list[Chunk]
    encoded: bytes = b""


# The registry's content_hash as the original service wrote it: sha256 hex of the raw object's
# bytes as stored (DESIGN.md; synthetic.py builds the corpus the same way). Another form (an
# opaque version token) cannot be checked against the bytes.
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def verify_content_hash(item: RawItem) -> None:
    """Refuse an object whose bytes are not the ones the registry describes (a partial upload,
    another object at its key): a ``fetch`` failure, retried like a missing object, since
    uploading the right bytes fixes it without a new registry hash."""
    expected = item.content_hash
    if expected is None or not _SHA256_HEX.fullmatch(expected):
        return
    actual = hashlib.sha256(item.data).hexdigest()
    if actual != expected.lower():
        raise DocumentError(
            "fetch",
            f"object bytes do not match the registry: sha256 {actual}, registry content_hash "
            f"{expected}; re-upload the object or correct the registry row",
            kind="transient",
        )


def normalize_items(
    items: list[RawItem], limits: DocumentLimits = DEFAULT_LIMITS
) -> list[NormalizedItem | Failure]:
    """Each raw object checked against its registry hash and normalized. The ledger records
    the registry's hash: checked equal to what was read when it is a sha256 of the bytes."""
    out: list[NormalizedItem | Failure] = []
    for item in items:
        try:
            verify_content_hash(item)
            started = time.monotonic()
            doc = normalize_record(
                item.data,
                source=item.source,
                expected_source_id=item.source_id,
                limits=limits,
            )
            seconds = time.monotonic() - started
            if seconds > limits.max_parse_seconds:
                raise limits.over("parse", "max_parse_seconds", f"parsing took {seconds:.1f} s")
            if doc.uid != item.uid:
                raise DocumentError(
                    "normalize", f"record is {doc.uid} but the registry row is {item.uid}"
                )
            row = doc.to_row()
            row["content_hash"] = item.content_hash or doc.content_hash()
            row["ingest_date"] = item.ingest_date
            out.append(NormalizedItem(row))
        except Exception as exc:  # one bad record never stops the batch
            out.append(
                Failure.from_exception(
                    exc,
                    uid=item.uid,
                    source=item.source,
                    ingest_date=item.ingest_date,
                    stage="normalize",
                    content_hash=item.content_hash,
                )
            )
    return out


def normalize_to_arrow(
    items: list[RawItem], limits: DocumentLimits = DEFAULT_LIMITS
) -> list[pa.RecordBatch | Failure]:
    """``normalize_items``, the documents as one Arrow batch of NORMALIZED_SCHEMA (built here,
    so the main process only writes it), then the failures."""
    normalized: list[dict[str, Any]] = []
    failures: list[pa.RecordBatch | Failure] = []
    for result in normalize_items(items, limits):
        if isinstance(result, NormalizedItem):
            normalized.append(result.row)
        else:
            failures.append(result)
    if not normalized:
        return failures
    return [pa.RecordBatch.from_pylist(normalized, schema=NORMALIZED_SCHEMA), *failures]


def chunk_arrow(
    rows: pa.Buffer,
    config: ChunkerConfig,
    encode: Callable[[Sequence[Chunk]], bytes] | None = None,
    limits: DocumentLimits = DEFAULT_LIMITS,
) -> list[ChunkedItem | Failure]:
    """``chunk_rows`` over normalized rows sent as an Arrow IPC stream (see ``arrow_slices``)."""
    return chunk_rows(pa.ipc.open_stream(rows).read_all().to_pylist(), config, encode, limits)


def chunk_rows(
    rows: list[dict[str, Any]],
    config: ChunkerConfig,
    encode: Callable[[Sequence[Chunk]], bytes] | None = None,
    limits: DocumentLimits = DEFAULT_LIMITS,
) -> list[ChunkedItem | Failure]:
    """Each row's chunks, or, given the store's ``encode``, the chunks encoded for it (a
    document that cannot be encoded fails alone)."""
    out: list[ChunkedItem | Failure] = []
    for row in rows:
        try:
            doc = Document.from_row(row)
            chunks = chunk_document(doc, config, limits)
            uuids = [c.uuid for c in chunks]
            ingest_date, content_hash = row["ingest_date"], row["content_hash"]
            if encode is None:
                item = ChunkedItem(doc.uid, doc.source, ingest_date, content_hash, uuids, chunks)
            else:
                item = ChunkedItem(
                    doc.uid, doc.source, ingest_date, content_hash, uuids, [], encode(chunks)
                )
            out.append(item)
        except Exception as exc:
            out.append(
                Failure.from_exception(
                    exc,
                    uid=row["uid"],
                    source=row["source"],
                    ingest_date=row["ingest_date"],
                    stage="chunk",
                    content_hash=row["content_hash"],
                )
            )
    return out


class WorkerPool:
    """A process pool used for one engine run (started once, not per partition or batch).

    Work goes out in slices of a batch; ``lookahead`` keeps one batch ahead on the workers.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: Executor | None = None
        if workers > 1:
            # spawn: the parent may hold threads (Dagster, gRPC, DB pools) that fork would copy.
            self._executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn")
            )

    def submit(self, fn: Callable[[T], R], arg: T) -> Future[R]:
        """Run ``fn(arg)`` on a worker; inline (already done) when there is no pool."""
        if self._executor is not None:
            return self._executor.submit(fn, arg)
        future: Future[R] = Future()
        try:
            future.set_result(fn(arg))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def lookahead(
        self,
        batches: Iterable[B],
        fn: Callable[[T], list[R]],
        tasks_of: Callable[[B], Iterable[T]],
    ) -> Iterator[tuple[B, list[R], float]]:
        """``(batch, fn over each of its tasks, worker CPU seconds)`` in order. The next batch's
        tasks are already on the workers while the caller handles this one, so database I/O
        overlaps the CPU work; at most two batches are in memory."""
        timed = functools.partial(_timed_call, fn)
        pending: tuple[B, list[Future[tuple[list[R], float]]]] | None = None
        for batch in batches:
            futures = [self.submit(timed, task) for task in tasks_of(batch)]
            if pending is not None:
                yield _collect(*pending)
            pending = (batch, futures)
        if pending is not None:
            yield _collect(*pending)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _timed_call(fn: Callable[[T], list[R]], task: T) -> tuple[list[R], float]:
    started = time.process_time()
    return fn(task), time.process_time() - started


def _collect(batch: B, futures: list[Future[tuple[list[R], float]]]) -> tuple[B, list[R], float]:
    results: list[R] = []
    seconds = 0.0
    for future in futures:
        part, spent = future.result()
        results += part
        seconds += spent
    return batch, results, seconds


def slices(items: list[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def arrow_slices(batch: pa.RecordBatch, size: int) -> Iterator[pa.Buffer]:
    """The batch in slices of ``size`` rows, each as an Arrow IPC stream: pickling a slice
    itself would copy the whole batch's buffers to every worker."""
    for i in range(0, batch.num_rows, size):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch.slice(i, size))
        yield sink.getvalue()

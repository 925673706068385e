"""Dry-run: what materializing a partition would do, computed without writing anything.

The partition's registry rows are streamed in pages (the same set-based ledger join the real run
uses to skip unchanged documents); the rest are fetched, normalized and chunked in memory on the
pipeline's worker pool, and compared with the ledger: new documents are adds, known ones updates,
and chunks to delete are each document's ledger UUIDs the new chunking no longer produces.
Documents the ledger holds but the registry dropped are deletes. Nothing is written: no Parquet,
no chunks, no ledger rows, no failure rows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reingest_assets.engine.runner import WORKER_SLICE, Partition, Pipeline, fetch_raw
from reingest_assets.engine.workers import (
    ChunkedItem,
    NormalizedItem,
    chunk_rows,
    normalize_items,
    slices,
)

SAMPLE_LIMIT = 10

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PartitionPlan:
    partition: str
    docs_in: int = 0
    docs_add: int = 0
    docs_update: int = 0
    docs_skip: int = 0
    docs_delete: int = 0
    docs_fail: int = 0
    chunks_write: int = 0
    chunks_delete: int = 0
    seconds: float = 0.0
    failures_by_stage: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def _sample(self, kind: str, uids: list[str]) -> None:
        kept = self.samples.setdefault(kind, [])
        kept.extend(uids[: SAMPLE_LIMIT - len(kept)])

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "docs_in": self.docs_in,
            "docs_add": self.docs_add,
            "docs_update": self.docs_update,
            "docs_skip": self.docs_skip,
            "docs_delete": self.docs_delete,
            "docs_fail": self.docs_fail,
            "chunks_write": self.chunks_write,
            "chunks_delete": self.chunks_delete,
            "seconds": round(self.seconds, 3),
            "failures_by_stage": dict(self.failures_by_stage),
            "samples": {k: v for k, v in self.samples.items() if v},
        }


def plan_partition(
    p: Pipeline,
    part: Partition,
    *,
    uids: list[str] | None = None,
    force: bool = False,
    verify: bool = False,
) -> PartitionPlan:
    plan = PartitionPlan(part.key)
    started = time.perf_counter()
    chunker = functools.partial(chunk_rows, config=p.chunker)
    for rows in p.registry_pages(part, uids):
        plan.docs_in += len(rows)
        todo = p.rows_to_write(rows, force=force, verify=verify)
        plan.docs_skip += len(rows) - len(todo)
        if not todo:
            continue
        raw, failures = fetch_raw(p.objects, todo, part.ingest_date)
        normalized: list[dict[str, Any]] = []
        for result in _on_workers(p, normalize_items, raw):
            if isinstance(result, NormalizedItem):
                normalized.append(result.row)
            else:
                failures.append(result)
        chunked: list[ChunkedItem] = []
        for item in _on_workers(p, chunker, normalized):
            if isinstance(item, ChunkedItem):
                chunked.append(item)
            else:
                failures.append(item)
        _compare(p, plan, chunked)
        plan.docs_fail += len(failures)
        for f in failures:
            plan.failures_by_stage[f.stage] = plan.failures_by_stage.get(f.stage, 0) + 1
        plan._sample("fail", [f.uid for f in failures])
    if uids is None:
        removed = p.registry.removed_documents(p.store.target, part.source, part.ingest_date)
        plan.docs_delete = len(removed)
        plan._sample("delete", removed)
        for start in range(0, len(removed), p.batch_size):
            entries = p.registry.ledger_lookup(
                p.store.target, removed[start : start + p.batch_size]
            )
            plan.chunks_delete += sum(len(e.chunk_uuids) for e in entries.values())
    plan.seconds = time.perf_counter() - started
    return plan


def _on_workers(p: Pipeline, fn: Callable[[list[T]], list[R]], items: list[T]) -> list[R]:
    """``fn`` over one page's items, in slices spread over the pipeline's worker pool."""
    futures = [p.pool.submit(fn, s) for s in slices(items, WORKER_SLICE)]
    return [r for f in futures for r in f.result()]


def _compare(p: Pipeline, plan: PartitionPlan, chunked: list[ChunkedItem]) -> None:
    previous = p.registry.ledger_lookup(p.store.target, [i.uid for i in chunked])
    added = [i.uid for i in chunked if i.uid not in previous]
    updated = [i.uid for i in chunked if i.uid in previous]
    plan.docs_add += len(added)
    plan.docs_update += len(updated)
    plan._sample("add", added)
    plan._sample("update", updated)
    for item in chunked:
        plan.chunks_write += len(item.chunk_uuids)
        if item.uid in previous:
            new = set(item.chunk_uuids)
            plan.chunks_delete += len(set(previous[item.uid].chunk_uuids) - new)

"""Rollback: remove what a partition or a run wrote, from the chunk store and the ledger.

Page by page, a document's chunks are deleted first and its ledger row after: a crash in between
leaves ledger rows whose chunks are already gone, which a second rollback deletes again (deleting
missing objects is not an error). The reverse order could leave chunks nothing points at.
Failure rows stay: they are history, and the repair sensor only reads open ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reingest_assets.domain.partition import partition_key
from reingest_assets.engine.runner import Partition
from reingest_assets.resources.registry import Ledger
from reingest_assets.resources.stores import ChunkStore


@dataclass
class RollbackReport:
    target: str
    partition: str | None
    run_id: str | None
    docs_removed: int = 0
    chunks_deleted: int = 0
    # documents removed per partition key: which partitions now need a re-run
    partitions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "partition": self.partition,
            "run_id": self.run_id,
            "docs_removed": self.docs_removed,
            "chunks_deleted": self.chunks_deleted,
            "partitions": dict(sorted(self.partitions.items())),
        }


def rollback(
    ledger: Ledger,
    store: ChunkStore,
    *,
    partition: Partition | None = None,
    run_id: str | None = None,
    batch_size: int = 1000,
) -> RollbackReport:
    """Delete the chunks and ledger rows of ``partition``, of ``run_id``, or of both at once
    (the documents that run wrote in that partition)."""
    if partition is None and run_id is None:
        raise ValueError("rollback needs a partition or a run id (or both)")
    report = RollbackReport(store.target, partition.key if partition else None, run_id)
    per_partition: Counter[str] = Counter()
    for entries in ledger.iter_ledger(
        store.target,
        source=partition.source if partition else None,
        ingest_date=partition.ingest_date if partition else None,
        run_id=run_id,
        batch_size=batch_size,
    ):
        uids = [e.uid for e in entries]
        # By parent: also catches chunks of these documents that the ledger lost track of.
        report.chunks_deleted += store.delete_parents(uids)
        ledger.forget(store.target, uids)
        report.docs_removed += len(uids)
        per_partition.update(partition_key(e.ingest_date, e.source) for e in entries)
    report.partitions = dict(per_partition)
    return report

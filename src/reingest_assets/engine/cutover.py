"""Blue/green cutover: validate every partition of the newly written collection, and only when
all of them pass point readers at it (``promote``, e.g. moving a Weaviate alias).

The store is validated as written (its own ledger target), so the collection readers still
query is never read. A failed partition leaves the readers where they are; the report names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reingest_assets.domain.chunker import ChunkerConfig
from reingest_assets.engine.runner import Partition
from reingest_assets.engine.validation import PartitionValidation, validate_partition
from reingest_assets.resources.object_store import ObjectStore
from reingest_assets.resources.registry import Registry
from reingest_assets.resources.stores import ChunkStore


class CutoverRefused(RuntimeError):
    """Nothing to validate: promoting an unvalidated collection is never what was meant."""


@dataclass
class CutoverReport:
    target: str
    promoted: bool = False
    previous: str | None = None  # what readers saw before (None: the alias is new)
    validations: list[PartitionValidation] = field(default_factory=list)

    @property
    def failed_partitions(self) -> list[str]:
        return [v.partition for v in self.validations if not v.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "promoted": self.promoted,
            "previous": self.previous,
            "partitions": len(self.validations),
            "failed_partitions": self.failed_partitions,
        }


def cutover(
    registry: Registry,
    store: ChunkStore,
    objects: ObjectStore,
    partitions: Iterable[Partition],
    *,
    promote: Callable[[], str | None],
    chunker: ChunkerConfig | None = None,
    sample_size: int = 20,
    max_failure_rate: float = 0.01,
    batch_size: int = 1000,
    log: Callable[[str], None] = print,
) -> CutoverReport:
    """Validate each of ``partitions`` in ``store``; when every one passes, call ``promote``
    (which returns the previous target) and report both targets."""
    report = CutoverReport(store.target)
    for part in partitions:
        validation = validate_partition(
            registry,
            store,
            objects,
            part,
            chunker=chunker,
            sample_size=sample_size,
            max_failure_rate=max_failure_rate,
            batch_size=batch_size,
        )
        log(f"cutover validation {part.key}: {'passed' if validation.passed else 'FAILED'}")
        report.validations.append(validation)
    if not report.validations:
        raise CutoverRefused(f"no partitions to validate in {store.target}: nothing to promote")
    if report.failed_partitions:
        log(f"cutover refused: {len(report.failed_partitions)} partition(s) failed validation")
        return report
    report.previous = promote()
    report.promoted = True
    log(f"cutover: readers moved from {report.previous} to {store.target}")
    return report

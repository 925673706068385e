"""One engine run of a partition in its own process, for the crash test to SIGKILL.

    python tests/support/engine_run.py URL OBJECTS_ROOT RUN_ID BATCH_SIZE

Prints ``first-fetch`` when the run fetches its first raw object (its first useful work, after
start-up and skipping what the ledger already holds), then one JSON line per stage report.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from reingest_assets.engine.runner import Partition, Pipeline, chunk_partition, normalize_partition
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore


class AnnouncingStore(LocalObjectStore):
    """Says on stdout when the first fetch starts."""

    announced = False

    def get_many(self, uris: Iterable[str]) -> Iterator[tuple[str, bytes | BaseException]]:
        if not self.announced:
            self.announced = True
            print("first-fetch", flush=True)
        return super().get_many(uris)


def main(url: str, objects_root: str, run_id: str, batch_size: int) -> None:
    registry = PostgresRegistry(url)
    registry.migrate()
    store = PgVectorChunkStore(url)
    store.ensure_schema()
    pipeline = Pipeline(
        registry=registry,
        objects=AnnouncingStore(Path(objects_root)),
        store=store,
        run_id=run_id,
        batch_size=batch_size,
        workers=2,
        log=lambda _line: None,
    )
    part = Partition("pubmed", "2026-11-03")
    try:
        for stage in (normalize_partition, chunk_partition):
            print(json.dumps(stage(pipeline, part).as_dict()), flush=True)
    finally:
        pipeline.close()


if __name__ == "__main__":  # worker processes are spawned: they re-import this module
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))

"""One engine run over several partitions in its own process, writing under the partition
locks as a Dagster run does (``exclusively``).

    python tests/support/locked_run.py URL OBJECTS_ROOT RUN_ID DAY [DAY ...]

Prints ``first-fetch`` when it fetches its first raw object (it holds its locks by then), its
log lines, then one JSON line: the documents it wrote in all. With ``HOLD_UNTIL`` (a path) in
the environment it pauses at its first fetch until that file exists.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from reingest_assets.engine.runner import (
    Partition,
    Pipeline,
    chunk_partitions,
    exclusively,
    normalize_partitions,
)
from reingest_assets.resources.partition_locks import PartitionLocks
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.engine_run import AnnouncingStore


class HoldingStore(AnnouncingStore):
    """Announces the first fetch, then waits for ``HOLD_UNTIL`` to exist."""

    def get_many(self, uris: Iterable[str]) -> Iterator[tuple[str, bytes | BaseException]]:
        first = not self.announced
        fetched = super().get_many(uris)
        hold = os.environ.get("HOLD_UNTIL")
        while first and hold and not Path(hold).exists():
            time.sleep(0.05)
        return fetched


def main(url: str, objects_root: str, run_id: str, days: list[str]) -> None:
    registry = PostgresRegistry(url)
    store = PgVectorChunkStore(url)
    pipeline = Pipeline(
        registry=registry,
        objects=HoldingStore(Path(objects_root)),
        store=store,
        run_id=run_id,
        batch_size=20,
        workers=1,
        log=lambda line: print(line, flush=True),
        locks=PartitionLocks(url, run_id),
    )
    parts = [Partition("pubmed", day) for day in days]
    try:
        exclusively(pipeline, normalize_partitions, parts)
        written = sum(r.docs_written for r in exclusively(pipeline, chunk_partitions, parts))
        print(json.dumps({"docs_written": written}), flush=True)
    finally:
        pipeline.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])

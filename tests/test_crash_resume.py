"""SIGKILL in the middle of a large partition; the next run finishes it, losing and
duplicating nothing, redoing at most the batch in flight."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.faults import (
    expected_chunks,
    ledger_consistent_with_store,
    own_postgres,
    register_corpus,
    stored_chunks,
)

DOCS = 2000
BATCH = 50
ENGINE_RUN = Path(__file__).parent / "support" / "engine_run.py"


class EngineProcess:
    """``engine_run.py`` in a subprocess (its own process group, with its worker processes);
    stdout lines are kept with the time each arrived."""

    def __init__(self, url: str, objects: Path, run_id: str) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(ENGINE_RUN), url, str(objects), run_id, str(BATCH)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.started, line.strip()))

    def seconds_to(self, marker: str) -> float:
        return next(t for t, line in self.lines if line == marker)

    def reports(self) -> list[dict[str, object]]:
        return [json.loads(line) for _, line in self.lines if line.startswith("{")]

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL the engine process: no cleanup, no goodbye
        self.proc.wait()
        # Its orphaned worker processes go too (they exit on their own once it is gone).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(5)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.slow
def test_sigkill_mid_partition_then_rerun_loses_and_duplicates_nothing() -> None:
    objects = Path(tempfile.mkdtemp(prefix="reingest-crash-objects-"))
    with own_postgres() as pg:
        registry = PostgresRegistry(pg.url)
        registry.migrate()
        PgVectorChunkStore(pg.url).ensure_schema()
        records = register_corpus(registry, LocalObjectStore(objects), DOCS)
        registry.close()

        first = EngineProcess(pg.url, objects, "run-killed")
        try:
            written = 0
            deadline = time.monotonic() + 120
            while written < 4 * BATCH:  # some batches in, many more to go
                assert first.proc.poll() is None, "the run finished before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.01)
                written = count(pg.url, "SELECT count(*) FROM reingest.ledger")
        finally:
            first.kill()
        at_kill = count(pg.url, "SELECT count(*) FROM reingest.ledger")
        assert 0 < at_kill < DOCS
        # Chunks of documents the ledger does not hold: the batch in flight, upserted but
        # not yet recorded. This is what the next run redoes on top of the unwritten rest.
        in_flight = count(
            pg.url,
            "SELECT count(DISTINCT parent_uid) FROM reingest.document_chunk_v2 c"
            " WHERE NOT EXISTS (SELECT 1 FROM reingest.ledger l WHERE l.uid = c.parent_uid)",
        )
        assert in_flight <= BATCH
        assert ledger_consistent_with_store(pg.url) == []  # no ledger row claims missing chunks

        second = EngineProcess(pg.url, objects, "run-resumed")
        assert second.wait(timeout=120) == 0
        normalize, chunk = second.reports()
        # Nothing the killed run recorded is done again; the rest is written once.
        assert normalize["docs_skipped"] == at_kill >= at_kill - BATCH
        assert normalize["docs_written"] == chunk["docs_written"] == DOCS - at_kill
        assert normalize["docs_failed"] == chunk["docs_failed"] == 0
        assert second.seconds_to("first-fetch") < 30

        # Every registry document has its ledger row and exactly the chunks a clean run gives.
        missing = count(
            pg.url,
            "SELECT count(*) FROM documents d"
            " WHERE NOT EXISTS (SELECT 1 FROM reingest.ledger l WHERE l.uid = d.uid)",
        )
        assert missing == 0
        assert ledger_consistent_with_store(pg.url) == []
        assert stored_chunks(pg.url) == expected_chunks(records)
        print(
            f"\ncrash/resume: {DOCS} docs, killed after {at_kill} recorded ({in_flight} in "
            f"flight), resumed run skipped {normalize['docs_skipped']}, wrote "
            f"{chunk['docs_written']}, first fetch after {second.seconds_to('first-fetch'):.1f}s;"
            " lost 0, duplicated 0"
        )

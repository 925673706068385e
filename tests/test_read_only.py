"""Read-only commands and jobs never write: status, validate, preflight, the dry run and the
repair sensor's tick leave every table, index and row of the pipeline's schema as they were.
Schema changes happen only in ``reingest migrate`` and at the start of commands that write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, build_sensor_context

from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.preflight import check_stack
from reingest_assets.sensors import repair_sensor
from reingest_assets.settings import Settings
from reingest_assets.stack import prepare_stack

FTS_INDEX = "document_chunk_v2_fts_idx"


# The pipeline's tables: its own schema and the registry's documents table (Dagster's storage
# shares the database: read-only commands still record their runs there).
PIPELINE_TABLES = "(schemaname = 'reingest' OR (schemaname = 'public' AND tablename = 'documents'))"


def catalog(url: str) -> dict[str, Any]:
    """The pipeline's tables as a snapshot: each with its row count, and every index with its
    definition."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            f"SELECT schemaname, tablename FROM pg_tables WHERE {PIPELINE_TABLES} ORDER BY 1, 2"
        ).fetchall()
        rows = {
            f"{schema}.{table}": conn.execute(f'SELECT count(*) FROM {schema}."{table}"').fetchone()
            for schema, table in tables
        }
        indexes = dict(
            conn.execute(
                f"SELECT indexname, indexdef FROM pg_indexes WHERE {PIPELINE_TABLES}"
            ).fetchall()
        )
    return {"rows": rows, "indexes": indexes}


def cli_env(home: Path, pg_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "REINGEST_HOME": str(home),
        "REINGEST_DATABASE_URL": pg_url,
        "REINGEST_WORKERS": "1",
        "REINGEST_BATCH_SIZE": "50",
    }
    for name in ("DAGSTER_HOME", "REINGEST_PGVECTOR_FULLTEXT"):
        env.pop(name, None)
    return env


def cli(env: dict[str, str], *args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "reingest_assets.cli", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_read_only_commands_change_no_table_index_or_row(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    env = cli_env(home, pg_url)
    # The reported bug: a demo with the full-text index, then `status` without the variable
    # dropped the index.
    demo = cli({**env, "REINGEST_PGVECTOR_FULLTEXT": "on"}, "demo", "--docs", "60", "--days", "2")
    assert demo["docs_written"] > 0
    before = catalog(pg_url)
    assert FTS_INDEX in before["indexes"]

    cli(env, "status")
    assert catalog(pg_url) == before, "status"
    cli(env, "validate")
    assert catalog(pg_url) == before, "validate"
    cli(env, "full", "--dry-run")
    assert catalog(pg_url) == before, "full --dry-run"

    for name, value in env.items():
        if name.startswith("REINGEST_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("REINGEST_PGVECTOR_FULLTEXT", raising=False)
    # prepare_stack points Dagster at the stack's instance through these; setenv records
    # their state so it is put back after the test.
    for name in ("DAGSTER_HOME", "REINGEST_DAGSTER_STORAGE_URL", "DAGSTER_EVENT_BATCH_SIZE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    settings = Settings()
    check_stack(prepare_stack(settings))
    assert catalog(pg_url) == before, "preflight"

    with psycopg.connect(pg_url, autocommit=True) as conn:  # a failure for the sensor to see
        conn.execute(
            "INSERT INTO reingest.ingestion_failures (uid, source, ingest_date, stage, kind,"
            " error_class, message, content_hash, run_id) SELECT d.uid, d.source,"
            " d.updated_at::date, 'fetch', 'transient', 'X', 'x', d.content_hash, 'test'"
            " FROM documents d WHERE NOT EXISTS (SELECT 1 FROM reingest.ingestion_failures f"
            " WHERE f.uid = d.uid AND f.resolved_at IS NULL) LIMIT 1"
        )
    before = catalog(pg_url)
    resource = ReingestResource.from_settings(settings)
    with (
        DagsterInstance.ephemeral() as instance,
        build_sensor_context(resources={"reingest": resource}, instance=instance) as context,
    ):
        result = repair_sensor(context)
    assert result.run_requests, "the tick saw the failure"
    assert catalog(pg_url) == before, "repair sensor tick"

    # The explicit step applies the setting: migrate without it drops the index.
    assert cli(env, "migrate") == {"applied": []}
    assert FTS_INDEX not in catalog(pg_url)["indexes"]

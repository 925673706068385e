"""The CLI's modes on the local stack, as an operator runs them: demo, validate, status,
full --dry-run, rollback. The registry and the Dagster instance live in a test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reingest_assets.cli.parser import build_parser


def test_every_mode_has_help() -> None:
    parser = build_parser()
    for command in ("full", "repair", "validate", "status", "rollback"):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([command, "--help"])
        assert exit_.value.code == 0
    assert parser.parse_args(["full", "--dry-run", "--json"]).dry_run
    with pytest.raises(SystemExit):
        parser.parse_args(["rollback", "--partition", "x", "--run", "y"])  # one or the other


@pytest.mark.slow
def test_modes_end_to_end_from_the_cli(pg_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REINGEST_HOME": str(tmp_path / "home"),
        "REINGEST_DATABASE_URL": pg_url,
        "REINGEST_WORKERS": "1",
        "REINGEST_BATCH_SIZE": "50",
    }
    env.pop("DAGSTER_HOME", None)

    def cli(*args: str, ok: bool = True) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "reingest_assets.cli", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (proc.returncode == 0) == ok, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    demo = cli("demo", "--docs", "60", "--days", "2")
    assert len(demo["runs"]) == demo["runs_succeeded"] == 1
    days = sorted(
        p["partition"] for p in cli("status")["partitions"] if p["state"] == "materialized"
    )
    assert len(days) == 2
    since, until = days[0][:10], days[-1][:10]

    report = cli("validate", "--since", since, "--until", until)
    assert sorted(report["partitions"]) == days
    assert report["failed_partitions"] == []

    plan = cli("full", "--dry-run", "--since", since, "--until", until)
    assert plan["totals"]["docs_add"] == plan["totals"]["docs_update"] == 0
    assert plan["totals"]["docs_skip"] == demo["docs_written"] + demo["docs_failed"]

    rolled = cli("rollback", "--partition", days[0])
    assert rolled["docs_removed"] > 0 and rolled["chunks_deleted"] >= rolled["docs_removed"]
    status = {p["partition"]: p for p in cli("status", "--since", since)["partitions"]}
    assert status[days[0]]["ledger_documents"] == 0 and status[days[0]]["stale"]
    assert status[days[1]]["ledger_documents"] > 0 and not status[days[1]]["stale"]
    # The rolled-back partition now fails validation, naming its missing documents.
    failed = cli("validate", "--since", since, "--until", until, ok=False)
    assert failed["failed_partitions"] == [days[0]]
    completeness = failed["partitions"][days[0]]["completeness"]
    assert completeness["missing_documents"] == rolled["docs_removed"]
    assert len(completeness["offenders"]["missing_documents"]) == min(10, rolled["docs_removed"])

    # Damage behind the pipeline's back in the other partition: one chunk blanked.
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE reingest.document_chunk_v2 SET text = '' WHERE uuid = (SELECT uuid"
            " FROM reingest.document_chunk_v2 WHERE parent_uid = ANY(%s) LIMIT 1)",
            (_ledger_uids(pg_url, days[1][:10]),),
        )
    # One repair by hand restores exactly what is missing or damaged, without --force.
    repaired = cli("repair", "--since", since, "--until", until)
    assert repaired["docs_written"] == rolled["docs_removed"] + 1
    assert cli("validate", "--since", since, "--until", until)["failed_partitions"] == []


def _ledger_uids(pg_url: str, day: str) -> list[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT uid FROM reingest.ledger WHERE ingest_date = %s", (day,))
        return [uid for (uid,) in rows.fetchall()]

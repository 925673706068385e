"""What the operator sees (issue 17, items 1, 2 and 7): a failed run is a report (run id, status,
the error in one line, failed partitions, where to read more; exit 1), a bad argument or setting
exits 2 naming what to change, runs are listed with their ids, and stderr stays quiet unless -v.
Each command runs as the operator runs it: a process on a demo corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import with_database
from reingest_assets.cli import main

pytestmark = pytest.mark.slow

DAYS = ("2026-11-01", "2026-11-02")


@dataclass
class Demo:
    env: dict[str, str]
    home: Path
    summary: dict[str, Any]

    def run(self, *args: str) -> tuple[int, str, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "reingest_assets.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def json(self, *args: str, code: int = 0) -> dict[str, Any]:
        status, out, err = self.run(*args, "--json")
        assert status == code, err[-3000:]
        lines = out.strip().splitlines()
        assert len(lines) == 1, out  # one JSON object, nothing else
        return dict(json.loads(lines[0]))


@pytest.fixture(scope="module")
def demo(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    home = tmp_path_factory.mktemp("cli-reports") / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REINGEST_", "DAGSTER_"))},
        "REINGEST_HOME": str(home),
        "REINGEST_DATABASE_URL": with_database(pg_server, name),
        "REINGEST_WORKERS": "1",
    }
    env.pop("PYTHONWARNINGS", None)
    demo = Demo(env, home, {})
    demo.summary = demo.json("demo", "--docs", "40", "--since", DAYS[0], "--days", "2")
    yield demo
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_failed_run_is_a_report_not_a_traceback(demo: Demo) -> None:
    # The partition's normalized output cannot be written: a file stands where its directory goes.
    blocker = demo.home / "objects/reingest/normalized/source=pubmed/ingest_date=2026-11-02"
    for child in blocker.iterdir():
        child.unlink()
    blocker.rmdir()
    blocker.touch()
    try:
        report = demo.json("full", "--force", "--since", DAYS[1], "--until", DAYS[1], code=1)
        status, out, err = demo.run("full", "--force", "--since", DAYS[1], "--until", DAYS[1])
    finally:
        blocker.unlink()
    (run,) = report["runs"]
    assert run["status"] == "failure" and run["job"] == "reingest_job"
    assert run["error"].startswith("FileExistsError") and "\n" not in run["error"]
    assert run["failed_partitions"] == report["failed_partitions"] == [f"{DAYS[1]}|pubmed"]
    assert run["run_id"] in run["details"]
    assert report["runs_succeeded"] == 0
    # The table says the same, and stderr carries no traceback.
    assert status == 1
    assert "FileExistsError" in out and "failed partitions: 2026-11-02|pubmed" in out
    assert "Traceback" not in err and "FileExistsError" not in err


def test_bad_arguments_and_settings_exit_2_naming_what_to_change(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process: each stops before any run starts.
    for name in ("DAGSTER_HOME", "REINGEST_DAGSTER_STORAGE_URL", *demo.env):
        monkeypatch.setenv(name, demo.env.get(name, ""))
    cases = [
        (("full", "--source", "pmc"), "REINGEST_SOURCES"),
        (("validate", "--since", "2026-11-31"), "--since"),
        (("rollback", "--alias-target", "DocumentChunk_v1"), "REINGEST_STORE=weaviate"),
        (("rollback", "--run", "not-a-run-id"), "reingest runs"),
        (("rollback", "--partition", "2026-11-01"), "YYYY-MM-DD|source"),
    ]
    for argv, named in cases:
        status = main([*argv, "--json"])
        out, err = capsys.readouterr()
        assert status == 2, (argv, err[-2000:])
        assert named in json.loads(out)["error"], argv
        assert err.startswith("reingest: ") and len(err.splitlines()) == 1, (argv, err)


def test_run_ids_are_reported_listed_and_rolled_back(demo: Demo) -> None:
    (run,) = demo.summary["runs"]
    assert run["status"] == "success" and run["since"] == DAYS[0] and run["until"] == DAYS[1]
    listed = {r["run_id"]: r for r in demo.json("runs")["runs"]}
    row = listed[run["run_id"]]
    assert (row["job"], row["mode"], row["status"]) == ("reingest_job", "full", "success")
    assert row["range"] == f"{DAYS[0]}|pubmed..{DAYS[1]}|pubmed"
    assert row["docs_written"] == demo.summary["docs_written"] > 0
    assert row["chunks_written"] == demo.summary["chunks_written"]

    status, out, err = demo.run("rollback", "--run", run["run_id"], "--json")
    assert status == 0 and err == ""  # quiet: no Dagster DEBUG lines
    rolled = json.loads(out)
    assert rolled["docs_removed"] == demo.summary["docs_written"]
    (rollback_run,) = rolled["runs"]
    assert rollback_run["status"] == "success" and rollback_run["run_id"] != run["run_id"]


def test_quiet_by_default_debug_with_v(demo: Demo) -> None:
    status, out, err = demo.run("validate", "--json", "--since", DAYS[0])
    assert status in (0, 1) and json.loads(out)["partitions"]
    # Only the runs' own warnings (a failed validation, once the demo's run is rolled back).
    assert all(line.startswith("warning: ") for line in err.splitlines()), err[:2000]
    status, _, err = demo.run("validate", "-v", "--json", "--since", DAYS[0])
    assert "DEBUG" in err and "STEP_START" in err

"""Servers we start stop with us: ``reingest dev`` ends within 10 s of SIGTERM or Ctrl-C with
every child and the embedded Postgres gone; a command that ends before it used the server it
started meanwhile stops it too; a command killed before it could detach (kill -9) leaves a
server the next command adopts and stops; a killed test session's server is stopped when the
next session starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest
import yaml

from support.processes import (
    ATTACH,
    clean_env,
    free_port,
    gone_within,
    postmaster,
    running,
    stop_orphaned_test_servers,
    wait_for_webserver,
)


def test_a_command_refused_before_it_used_the_database_leaves_no_server(scratch: Path) -> None:
    home = scratch / "home"
    refused = subprocess.run(
        [sys.executable, "-m", "reingest_assets.cli", "rollback"],
        env=clean_env(REINGEST_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "give --partition" in refused.stderr
    assert (home / "pg" / "PG_VERSION").exists()  # the server was started while Dagster loaded
    server = postmaster(home / "pg")
    assert server is None or gone_within([server], 10) == []


def test_a_killed_commands_embedded_server_is_adopted_and_stopped(scratch: Path) -> None:
    pg_dir = scratch / "pg"
    crashed = subprocess.Popen(
        [sys.executable, "-c", ATTACH, str(pg_dir), "600"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert crashed.stdout is not None and crashed.stdout.readline().strip() == "attached"
    server = postmaster(pg_dir)
    assert server is not None
    crashed.kill()  # kill -9: no exit hook detaches it
    crashed.wait()
    assert running(server)

    subprocess.run(
        [sys.executable, "-c", ATTACH, str(pg_dir), "0"], env=clean_env(), check=True, timeout=120
    )
    assert gone_within([server], 10) == []


def test_a_killed_test_sessions_server_is_stopped_when_the_next_session_starts(
    scratch: Path,
) -> None:
    def attach(pg_dir: Path) -> tuple[subprocess.Popen[str], psutil.Process]:
        command = [sys.executable, "-c", ATTACH, str(pg_dir), "600"]
        owner = subprocess.Popen(command, env=clean_env(), stdout=subprocess.PIPE, text=True)
        assert owner.stdout is not None and owner.stdout.readline().strip() == "attached"
        server = postmaster(pg_dir)
        assert server is not None
        return owner, server

    killed, orphan = attach(scratch / "killed")
    live, in_use = attach(scratch / "live")
    try:
        killed.kill()
        killed.wait()

        assert stop_orphaned_test_servers(scratch) == [(scratch / "killed").resolve()]
        assert gone_within([orphan], 10) == []
        assert running(in_use)
    finally:
        live.kill()
        live.wait()
        stop_orphaned_test_servers(scratch)
    assert gone_within([in_use], 10) == []


def run_status(storage_url: str, run_id: str, timeout: float = 240) -> str:
    """Poll Dagster's run storage (the embedded server) until the run has finished."""
    url = storage_url.replace("+psycopg2", "")
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        status = row[0] if row else "?"
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    return status


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_reingest_dev_stops_within_10_s_with_every_child_and_the_database(
    scratch: Path, how: str
) -> None:
    home, port = scratch / "home", free_port()
    env = clean_env(REINGEST_HOME=str(home), REINGEST_WORKERS="1")
    dev = subprocess.Popen(
        [sys.executable, "-m", "reingest_assets.cli", "dev", "--port", str(port)],
        env=env,
        cwd=scratch,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_webserver(port, dev)
        if how == "SIGTERM":
            # Dagster's own CLI reaches the running instance: a run launched with
            # `dagster job launch` runs on its daemon.
            instance_yaml = yaml.safe_load((home / "dagster" / "dagster.yaml").read_text())
            run_id = str(uuid.uuid4())
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dagster",
                    "job",
                    "launch",
                    "-m",
                    "reingest_assets.definitions",
                    "-j",
                    "reingest_job",
                    "--run-id",
                    run_id,
                    "--tags",
                    json.dumps({"dagster/partition": "2026-11-03|pubmed"}),
                ],
                env={**env, "DAGSTER_HOME": str(home / "dagster")},
                cwd=scratch,
                check=True,
                capture_output=True,
                timeout=240,
            )
            storage = instance_yaml["run_storage"]["config"]["postgres_url"]
            assert run_status(storage, run_id) == "SUCCESS"
        children = psutil.Process(dev.pid).children(recursive=True)
        server = postmaster(home / "pg")
        assert children and server is not None
        if how == "SIGTERM":
            dev.send_signal(signal.SIGTERM)
        else:
            os.killpg(dev.pid, signal.SIGINT)
        started = time.monotonic()
        dev.wait(timeout=10)
        left = gone_within([*children, server], 10 - (time.monotonic() - started))
        assert left == [], [p.pid for p in left]
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)

"""Helpers for the tests that run the project's commands as processes: a clean environment,
the embedded server's postmaster, waiting for processes to end and for a webserver to answer."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
ATTACH = (
    "import sys, time; from pathlib import Path;"
    "from reingest_assets.resources.embedded_pg import embedded_postgres_url;"
    "embedded_postgres_url(Path(sys.argv[1])); print('attached', flush=True);"
    "time.sleep(float(sys.argv[2]))"
)


def clean_env(**extra: str) -> dict[str, str]:
    """Nothing of the caller's REINGEST_* or DAGSTER_* settings; the sources first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REINGEST_", "DAGSTER_"))}
    return {**env, "PYTHONPATH": str(SRC), **extra}


def postmaster(pg_dir: Path) -> psutil.Process | None:
    pid_file = pg_dir / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        return psutil.Process(int(pid_file.read_text().split()[0]))
    except psutil.NoSuchProcess:
        return None


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone_within(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """The processes still running (zombies count as gone) after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    alive = processes
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if running(p)]
    return alive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_webserver(port: int, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError("the webserver did not come up")


def stop_orphaned_test_servers(under: Path) -> list[Path]:
    """Stop the embedded servers under ``under`` that no live process is attached to any more:
    what a test session killed before its exit hooks ran (a CI timeout, ^C twice, kill -9) left
    running. Returns their data directories.

    Done under the library's inter-process lock, which it holds from starting a server to
    recording the process attached to it, so a server another session is starting or using is
    never taken for an orphan.
    """
    from embedded_postgres.postgres_server import PostgresServer

    from reingest_assets.resources.embedded_pg import pid_alive

    stopped: list[Path] = []
    with PostgresServer._lock:
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if process.info["name"] != "postgres" or "-D" not in cmdline:
                continue
            pg_dir = Path(cmdline[cmdline.index("-D") + 1])
            handles = pg_dir / ".handle_pids.json"
            if not pg_dir.is_relative_to(under) or not handles.exists():
                continue
            if not any(pid_alive(pid) for pid in json.loads(handles.read_text() or "[]")):
                process.send_signal(signal.SIGINT)  # fast shutdown: no client is left to wait for
                stopped.append(pg_dir)
    return stopped

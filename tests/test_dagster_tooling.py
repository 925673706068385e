"""Dagster's own tooling from the repository root, with nothing set, on the embedded default:
``dagster definitions validate``, ``dagster asset materialize``, ``dagster dev`` (``dagster job
launch`` against a running instance is in test_processes). And the project's own modules raise
no deprecation warning when the code location loads."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support.processes import (
    ROOT,
    clean_env,
    free_port,
    postmaster,
    wait_for_webserver,
)


def repo_root_copy(scratch: Path) -> Path:
    """The repository root's Dagster files (the package comes from PYTHONPATH)."""
    root = scratch / "repo"
    root.mkdir()
    for name in ("dagster.yaml", "workspace.yaml", "pyproject.toml"):
        shutil.copyfile(ROOT / name, root / name)  # follows the dagster.yaml link
    return root


def dagster(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args],
        cwd=root,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_projects_modules_raise_no_deprecation_warning() -> None:
    load = (
        "import warnings;"
        "warnings.filterwarnings('error', category=DeprecationWarning, module='reingest_assets');"
        "import reingest_assets.definitions"
    )
    proc = subprocess.run(
        [sys.executable, "-c", load], env=clean_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_definitions_validate_from_the_root_with_nothing_set(scratch: Path) -> None:
    root = repo_root_copy(scratch)
    ok = dagster(root, "definitions", "validate")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "All code locations passed validation" in ok.stdout + ok.stderr
    assert not (root / ".reingest").exists()  # loading the code starts no database
    bad = dagster(root, "definitions", "validate", REINGEST_WEAVIATE_HTTP_PORT="http")
    assert bad.returncode != 0 and "REINGEST_WEAVIATE_HTTP_PORT" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_asset_materialize_from_the_root_on_the_embedded_default(scratch: Path) -> None:
    root = repo_root_copy(scratch)
    proc = dagster(
        root,
        "asset",
        "materialize",
        "-m",
        "reingest_assets.definitions",
        "--select",
        "normalized_documents",
        "--partition",
        "2026-11-03|pubmed",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "migrations applied" in proc.stdout + proc.stderr
    )  # the writing step migrated the embedded database
    assert (root / ".reingest" / "pg").is_dir()
    assert postmaster(root / ".reingest" / "pg") is None


@pytest.mark.slow
def test_dagster_dev_from_the_root_with_nothing_set(scratch: Path) -> None:
    root, port = repo_root_copy(scratch), free_port()
    dev = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-p", str(port)],
        cwd=root,
        env=clean_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_webserver(port, dev)
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
        deadline, entries = time.monotonic() + 240, []
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql",
                data=json.dumps({"query": query}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["loadStatus"] == "LOADED":
                break
            time.sleep(2)
        assert [(e["name"], e["loadStatus"]) for e in entries] == [("reingest", "LOADED")]
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C
        dev.wait(timeout=60)
        assert not list(root.glob(".tmp_dagster_home_*"))  # its temporary instance went too
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)

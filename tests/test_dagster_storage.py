"""Dagster's event log in the pipeline's Postgres (``reingest_assets.dagster_storage``): a range
run's check evaluations, held back and written in batches, are the rows and records Dagster
writes one by one, failed checks included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    materialize,
)
from dagster._core.events import DagsterEvent
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.base import PartitionKeyFilter
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.checks import document_chunks_v2_validation
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.validation import CHECKS
from reingest_assets.stack import STORAGE, dagster_storage_url
from support.pipeline import Corpus, record

ASSETS = [normalized_documents, document_chunks_v2, document_chunks_v2_validation]
DAYS = ["2026-11-02", "2026-11-03", "2026-11-04"]
KEYS = [f"{day}|pubmed" for day in DAYS]


@pytest.fixture
def instance(pg_url: str, tmp_path: Path) -> Iterator[DagsterInstance]:
    """An instance whose storage is the pipeline's Postgres, as the CLI writes it."""
    home = tmp_path / "dagster"
    home.mkdir()
    url = " " + json.dumps(dagster_storage_url(pg_url))
    (home / "dagster.yaml").write_text(STORAGE.format(url=url))
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture
def corpus(corpus: Corpus) -> Corpus:
    for i, day in enumerate(DAYS):
        for pmid in range(i * 100 + 1, i * 100 + 6):
            corpus.put_record(record(pmid, sentences=3 + pmid % 7), day=day)
    return corpus


def run_range(reingest: ReingestResource, instance: DagsterInstance) -> Any:
    return materialize(
        ASSETS,
        resources={"reingest": reingest},
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: KEYS[0], ASSET_PARTITION_RANGE_END_TAG: KEYS[-1]},
    )


def check_statuses(instance: DagsterInstance, run_id: str) -> dict[tuple[str, str], str]:
    """What the UI reads: each check's latest execution per partition, for this run."""
    statuses = {}
    for name in CHECKS:
        key = AssetCheckKey(document_chunks_v2.key, name)
        for partition in KEYS:
            records = instance.event_log_storage.get_asset_check_execution_history(
                key, limit=1, partition_filter=PartitionKeyFilter(key=partition)
            )
            if records and records[0].run_id == run_id:
                statuses[name, partition] = records[0].status.value
    return statuses


def stored_evaluations(pg_url: str, run_id: str) -> list[tuple[Any, ...]]:
    """Each execution row of the run joined with the event row it names: they must agree."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            """
            SELECT x.check_name, x.partition, x.execution_status, e.dagster_event_type,
                   x.evaluation_event = e.event
            FROM asset_check_executions x JOIN event_logs e ON e.id = x.evaluation_event_storage_id
            WHERE x.run_id = %s ORDER BY 1, 2
            """,
            (run_id,),
        ).fetchall()


@pytest.mark.parametrize("batch_size", ["0", "1000"])
def test_a_range_runs_materializations_and_check_evaluations_are_stored_per_partition(
    reingest: ReingestResource,
    corpus: Corpus,
    instance: DagsterInstance,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    batch_size: str,
) -> None:
    """Batched (1000) or one by one as Dagster does (0): the same rows and records."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    result = run_range(reingest, instance)
    assert result.success
    run_id = result.run_id
    succeeded = AssetCheckExecutionRecordStatus.SUCCEEDED.value
    assert check_statuses(instance, run_id) == {
        (name, key): succeeded for name in CHECKS for key in KEYS
    }
    assert stored_evaluations(pg_url, run_id) == [
        (name, key, succeeded, "ASSET_CHECK_EVALUATION", True)
        for name in sorted(CHECKS)
        for key in KEYS
    ]
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    # Each partition's materialization, with its own figures next to the run's.
    materialized = {
        r.partition_key: r.asset_materialization.metadata
        for r in instance.fetch_materializations(document_chunks_v2.key, limit=10).records
        if r.run_id == run_id and r.asset_materialization is not None
    }
    assert {
        k: (m["docs_written"].value, m["run_docs_written"].value) for k, m in materialized.items()
    } == {key: (5, 15) for key in KEYS}
    assert len(records) == len(CHECKS) * len(KEYS)
    assert "Exception while storing" not in capfd.readouterr().err  # no one-by-one fallback


def test_failed_checks_of_a_checks_only_run_are_stored_before_the_step_fails(
    reingest: ReingestResource,
    corpus: Corpus,
    instance: DagsterInstance,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    assert run_range(reingest, instance).success
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM reingest.document_chunk_v2 WHERE parent_uid = 'pubmed:102'")
    result = materialize(
        ASSETS,
        selection=AssetSelection.checks_for_assets(document_chunks_v2),
        resources={"reingest": reingest},
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: KEYS[0], ASSET_PARTITION_RANGE_END_TAG: KEYS[-1]},
        raise_on_error=False,
    )
    assert not result.success  # a blocking ERROR check failed
    statuses = check_statuses(instance, result.run_id)
    failed = AssetCheckExecutionRecordStatus.FAILED.value
    assert statuses.pop(("completeness", KEYS[1])) == failed
    assert set(statuses.values()) == {AssetCheckExecutionRecordStatus.SUCCEEDED.value}
    assert len(statuses) == len(CHECKS) * len(KEYS) - 1


def test_an_evaluation_nothing_planned_is_read_back_before_the_batch_is_written(
    instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held back, an evaluation is still what the next read sees; with no planned execution row
    (Dagster inserts one then) it gets its own."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    evaluation = AssetCheckEvaluation(
        asset_key=document_chunks_v2.key,
        check_name="completeness",
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        partition=KEYS[0],
    )
    event = DagsterEvent(
        DagsterEventType.ASSET_CHECK_EVALUATION.value,
        "reingest_job",
        event_specific_data=evaluation,
    )
    instance.event_log_storage.store_event(
        EventLogEntry(None, "DEBUG", "", "run-1", time.time(), dagster_event=event)
    )
    [execution] = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(document_chunks_v2.key, "completeness"),
        limit=5,
        partition_filter=PartitionKeyFilter(key=KEYS[0]),
    )
    assert (execution.run_id, execution.status) == ("run-1", AssetCheckExecutionRecordStatus.FAILED)
    assert execution.event is not None and execution.event.dagster_event == event

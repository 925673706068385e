"""The repair sensor against a real Dagster instance: failures become one run per partition for
the failed documents only; a fixed source lands and resolves its failure; a poison document
stops after the attempt limit."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    RunRequest,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.jobs import repair_job
from reingest_assets.sensors import repair_sensor
from support.modes import failures, ledger, make_resource
from support.pipeline import Corpus, record

KEY = "2026-11-03|pubmed"


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def reingest(pg_url: str, tmp_path: Path) -> ReingestResource:
    return make_resource(pg_url, tmp_path, max_attempts=3)


def definitions(reingest: ReingestResource) -> Definitions:
    return Definitions(
        assets=[normalized_documents, document_chunks_v2],
        jobs=[repair_job],
        sensors=[repair_sensor],
        resources={"reingest": reingest},
    )


def tick(instance: DagsterInstance, reingest: ReingestResource) -> list[RunRequest]:
    with build_sensor_context(
        instance=instance,
        resources={"reingest": reingest},
        repository_def=definitions(reingest).get_repository_def(),
    ) as context:
        return list(repair_sensor.evaluate_tick(context).run_requests or [])


def launch(instance: DagsterInstance, reingest: ReingestResource, request: RunRequest) -> Any:
    """What the daemon does with a request: run repair_job for its partition and config."""
    job = definitions(reingest).resolve_job_def("repair_job")
    return job.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
    )


def full_run(instance: DagsterInstance, reingest: ReingestResource, *, force: bool = False) -> None:
    config = {"config": {"force": force}}
    assert materialize(
        [normalized_documents, document_chunks_v2],
        partition_key=KEY,
        resources={"reingest": reingest},
        instance=instance,
        run_config={"ops": {"normalized_documents": config, "document_chunks_v2": config}},
        tags={"reingest/mode": "full"},
    ).success


def test_a_fixed_source_is_repaired_and_its_failure_resolved(
    instance: DagsterInstance, reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 11):
        corpus.put_record(record(pmid))
    corpus.put(42, b'{"pmid": "42", "title": "truncated')
    full_run(instance, reingest)
    assert "pubmed:42" not in ledger(pg_url)
    # Bad data with unchanged content: retrying cannot help, the sensor waits for a fix.
    assert tick(instance, reingest) == []

    corpus.put_record(record(42))  # the source is fixed: new content hash, same day
    (request,) = tick(instance, reingest)
    assert request.partition_key == KEY
    for op in ("normalized_documents", "document_chunks_v2"):
        assert request.run_config["ops"][op]["config"]["uids"] == ["pubmed:42"]
    assert tick(instance, reingest)[0].run_key == request.run_key  # never launched twice

    result = launch(instance, reingest, request)
    assert result.success
    assert ledger(pg_url)["pubmed:42"] == ("2026-11-03", result.run_id)
    ((uid, kind, _, permanent, resolved_by),) = failures(pg_url)
    assert (uid, kind, permanent, resolved_by) == ("pubmed:42", "data", False, result.run_id)
    # O(k): the repair run touched the failed document only.
    docs_in = {
        e.asset_key.path[-1]: e.event_specific_data.materialization.metadata["docs_in"].value
        for e in result.get_asset_materialization_events()
    }
    assert docs_in == {"normalized_documents": 1, "document_chunks_v2": 1}
    assert tick(instance, reingest) == []


def test_a_document_fixed_on_a_later_day_is_repaired_in_its_new_partition(
    instance: DagsterInstance, reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    corpus.put(42, gzip.compress(json.dumps({"title": "no pmid"}).encode()))
    corpus.put_record(record(1))
    full_run(instance, reingest)
    corpus.put_record(record(42), day="2026-11-05")
    (request,) = tick(instance, reingest)
    assert request.partition_key == "2026-11-05|pubmed"
    assert launch(instance, reingest, request).success
    assert ledger(pg_url)["pubmed:42"][0] == "2026-11-05"


def failure_attempts(pg_url: str) -> list[tuple[Any, ...]]:
    """``(uid, attempts, repair_attempts, permanent)`` of every failure row, by uid."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT uid, attempts, repair_attempts, permanent"
            " FROM reingest.ingestion_failures ORDER BY uid"
        ).fetchall()


def missing_object(corpus: Corpus, pmid: int) -> None:
    """A fetch that fails the same transient way every time: the registered object is missing
    (a directory stands where it should be), and nobody uploads it."""
    path = corpus.objects.root / "reingest" / "raw" / "pubmed" / f"{pmid}.json.gz"
    path.unlink()
    path.mkdir()


def test_a_poison_document_stops_after_the_attempt_limit(
    instance: DagsterInstance, reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    corpus.put_record(record(1))
    corpus.put_record(record(2))
    missing_object(corpus, 2)
    full_run(instance, reingest)  # the first run: no repair yet
    run_keys = []
    for _repair in (1, 2, 3):  # REINGEST_MAX_ATTEMPTS = 3 repairs
        (request,) = tick(instance, reingest)
        run_keys.append(request.run_key)
        assert launch(instance, reingest, request).success  # the run goes on; the doc fails
    assert len(set(run_keys)) == 3  # each attempt is a new request
    ((uid, kind, attempts, permanent, resolved),) = failures(pg_url)
    assert (uid, kind, attempts, permanent, resolved) == ("pubmed:2", "transient", 4, True, None)
    assert failure_attempts(pg_url) == [("pubmed:2", 4, 3, True)]
    assert tick(instance, reingest) == []  # permanent: never retried again


def test_forced_runs_do_not_spend_repair_attempts(
    instance: DagsterInstance, reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    corpus.put_record(record(1))
    corpus.put(2, b'{"pmid": "2", "title": "truncated')  # bad data
    corpus.put_record(record(3))
    missing_object(corpus, 3)  # transient
    full_run(instance, reingest)
    for _ in range(2):  # an operator re-runs the partition with --force, twice
        full_run(instance, reingest, force=True)
    assert failure_attempts(pg_url) == [("pubmed:2", 3, 0, False), ("pubmed:3", 3, 0, False)]
    # The repair budget is whole: the transient failure still gets its repairs.
    (request,) = tick(instance, reingest)
    assert request.run_config["ops"]["normalized_documents"]["config"]["uids"] == ["pubmed:3"]
    assert launch(instance, reingest, request).success
    assert failure_attempts(pg_url)[1] == ("pubmed:3", 4, 1, False)

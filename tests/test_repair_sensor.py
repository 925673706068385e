"""The repair sensor against a real Dagster instance: failures become one run per partition for
the failed documents only; a fixed source lands and resolves its failure; a poison document
stops after the attempt limit (repairs only: forced runs do not count); damage the validation
checks found in the store is repaired for exactly the damaged documents."""

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
from psycopg import sql

from reingest_assets.assets import document_chunks_v2, normalized_documents, raw_documents
from reingest_assets.checks import document_chunks_v2_validation
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.jobs import repair_job, validate_job
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
        assets=[raw_documents, normalized_documents, document_chunks_v2],
        asset_checks=[document_chunks_v2_validation],
        jobs=[repair_job, validate_job],
        sensors=[repair_sensor],
        resources={"reingest": reingest},
    )


def tick(instance: DagsterInstance, reingest: ReingestResource) -> list[RunRequest]:
    return tick_with_cursor(instance, reingest, None)[0]


def tick_with_cursor(
    instance: DagsterInstance, reingest: ReingestResource, cursor: str | None
) -> tuple[list[RunRequest], str | None]:
    """One sensor tick as the daemon runs it: its run requests and the cursor it leaves."""
    with build_sensor_context(
        instance=instance,
        resources={"reingest": reingest},
        repository_def=definitions(reingest).get_repository_def(),
        cursor=cursor,
    ) as context:
        result = repair_sensor.evaluate_tick(context)
        return list(result.run_requests or []), result.cursor


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


def validate(instance: DagsterInstance, reingest: ReingestResource) -> dict[str, bool]:
    """``validate_job`` over the partition, as ``reingest validate`` runs it: check -> passed."""
    result = (
        definitions(reingest)
        .resolve_job_def("validate_job")
        # A checks-only job takes its partition as a tag (as the UI's "Execute checks" does).
        .execute_in_process(
            instance=instance, tags={"dagster/partition": KEY}, raise_on_error=False
        )
    )
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def database_snapshot(pg_url: str) -> list[tuple[Any, ...]]:
    """Every table and column of the database, and a digest of every row of every table."""
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name, string_agg(column_name || ' ' || data_type, ','"
            " ORDER BY ordinal_position) FROM information_schema.columns"
            " WHERE table_schema IN ('public', 'reingest') GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        digest = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {}.{} t"
        return [
            (
                *table,
                conn.execute(sql.SQL(digest).format(*map(sql.Identifier, table[:2]))).fetchone(),
            )
            for table in tables
        ]


def test_damage_found_by_validation_is_repaired_for_exactly_those_documents(
    instance: DagsterInstance, reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 13):
        corpus.put_record(record(pmid, sentences=30 if pmid == 3 else 6))
    full_run(instance, reingest)
    before = ledger(pg_url)
    assert validate(instance, reingest)["completeness"]
    # Behind the pipeline's back: one chunk deleted, one blanked, one extra (orphan) chunk.
    with psycopg.connect(pg_url) as conn:
        table = "reingest.document_chunk_v2"
        conn.execute(
            f"DELETE FROM {table} WHERE uuid = (SELECT uuid FROM {table}"
            " WHERE parent_uid = 'pubmed:3' ORDER BY meta->>'chunk_index' DESC LIMIT 1)"
        )
        conn.execute(f"UPDATE {table} SET text = '' WHERE parent_uid = 'pubmed:5'")
        conn.execute(
            f"INSERT INTO {table} SELECT gen_random_uuid(), parent_uid, source, title, text,"
            " section, published_at, year, tokens, n_sentences, quality_total, meta, vector"
            f" FROM {table} WHERE parent_uid = 'pubmed:7'"
        )
    checks = validate(instance, reingest)
    assert not checks["completeness"] and not checks["token_bounds"]

    untouched = database_snapshot(pg_url)
    (request,), cursor = tick_with_cursor(instance, reingest, None)
    assert database_snapshot(pg_url) == untouched  # a tick reads, never writes
    assert request.partition_key == KEY
    assert request.run_config["ops"]["document_chunks_v2"]["config"] == {"verify": True}
    assert tick_with_cursor(instance, reingest, cursor)[0] == []  # each finding acted on once

    result = launch(instance, reingest, request)
    assert result.success
    after = ledger(pg_url)
    rewritten = {uid for uid, (_, run_id) in after.items() if run_id == result.run_id}
    assert rewritten == {"pubmed:3", "pubmed:5", "pubmed:7"}
    assert {uid: after[uid] for uid in after if uid not in rewritten} == {
        uid: before[uid] for uid in before if uid not in rewritten
    }
    assert all(validate(instance, reingest).values())
    assert tick_with_cursor(instance, reingest, cursor)[0] == []  # passing checks: nothing to do

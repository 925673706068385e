"""Rollback: a partition's or a run's chunks and ledger rows go; everything else stays, and a
re-run brings the partition back."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, Definitions, materialize

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.jobs import rollback_job
from support.modes import ledger, make_corpus, make_resource
from support.pipeline import record, store_snapshot


def run(reingest: ReingestResource, instance: DagsterInstance, key: str) -> str:
    result = materialize(
        [normalized_documents, document_chunks_v2],
        partition_key=key,
        resources={"reingest": reingest},
        instance=instance,
    )
    assert result.success
    return result.run_id


def rollback(reingest: ReingestResource, instance: DagsterInstance, **config: str) -> dict:
    job = Definitions(jobs=[rollback_job], resources={"reingest": reingest}).resolve_job_def(
        "rollback_job"
    )
    result = job.execute_in_process(
        instance=instance, run_config={"ops": {"rollback_op": {"config": config}}}
    )
    assert result.success
    return result.output_for_node("rollback_op")


def test_rollback_of_a_partition_and_of_a_run(pg_url: str, tmp_path: Path) -> None:
    corpus = make_corpus(pg_url, tmp_path)
    reingest = make_resource(pg_url, tmp_path)
    instance = DagsterInstance.ephemeral()
    for pmid in range(1, 6):
        corpus.put_record(record(pmid, sentences=30), day="2026-11-02")
    for pmid in range(11, 16):
        corpus.put_record(record(pmid, sentences=30), day="2026-11-03")
    run(reingest, instance, "2026-11-02|pubmed")
    run_b = run(reingest, instance, "2026-11-03|pubmed")
    full = store_snapshot(pg_url)
    day2 = {r for r in full if r[1] in {f"pubmed:{i}" for i in range(1, 6)}}

    report = rollback(reingest, instance, partition="2026-11-02|pubmed")
    assert report["docs_removed"] == 5 and report["chunks_deleted"] == len(day2)
    assert report["partitions"] == {"2026-11-02|pubmed": 5}
    assert set(store_snapshot(pg_url)) == set(full) - day2
    assert set(ledger(pg_url)) == {f"pubmed:{i}" for i in range(11, 16)}

    # pubmed:11 changes: a new run rewrites it only; rolling that run back removes just it.
    corpus.put_record(record(11, sentences=3), day="2026-11-03")
    run_c = run(reingest, instance, "2026-11-03|pubmed")
    assert ledger(pg_url)["pubmed:11"][1] == run_c
    report = rollback(reingest, instance, run_id=run_c)
    assert report["docs_removed"] == 1
    assert {uid for uid, (_, run_id) in ledger(pg_url).items()} == {
        f"pubmed:{i}" for i in range(12, 16)
    }
    assert all(run_id == run_b for _, run_id in ledger(pg_url).values())
    assert not any(r[1] == "pubmed:11" for r in store_snapshot(pg_url))

    # The rolled-back partition comes back with a re-run (its documents are no longer skipped).
    run(reingest, instance, "2026-11-02|pubmed")
    assert day2 <= set(store_snapshot(pg_url))

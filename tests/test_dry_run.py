"""Dry run: the plan of a partition (documents to add, update, skip, delete; chunks to write and
delete) is logged, and nothing is written: no chunks, ledger rows, failures or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from dagster import DagsterInstance, materialize

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.metadata import plain
from support.modes import failures, ledger, make_corpus, make_resource
from support.pipeline import record, store_snapshot

KEY = "2026-11-03|pubmed"


def dry_run(reingest: ReingestResource, instance: DagsterInstance) -> dict[str, Any]:
    result = materialize(
        [normalized_documents, document_chunks_v2],
        selection=[document_chunks_v2],
        partition_key=KEY,
        resources={"reingest": reingest},
        instance=instance,
        run_config={"ops": {"document_chunks_v2": {"config": {"dry_run": True}}}},
    )
    assert result.success
    assert result.get_asset_materialization_events() == []  # nothing marked as up to date
    (obs,) = [
        e.event_specific_data.asset_observation for e in result.get_asset_observation_events()
    ]
    assert obs.partition == KEY
    return {k: plain(v) for k, v in obs.metadata.items()}


def test_dry_run_plans_adds_updates_skips_and_deletes_without_writing(
    pg_url: str, tmp_path: Path
) -> None:
    corpus = make_corpus(pg_url, tmp_path)
    reingest = make_resource(pg_url, tmp_path)
    instance = DagsterInstance.ephemeral()
    for pmid in range(1, 21):
        corpus.put_record(record(pmid, sentences=40 if pmid == 5 else 4))

    plan = dry_run(reingest, instance)
    assert (plan["docs_add"], plan["docs_update"], plan["docs_skip"]) == (20, 0, 0)
    assert store_snapshot(pg_url) == [] and ledger(pg_url) == {}
    assert not list((tmp_path / "objects").rglob("*.parquet"))

    assert materialize(
        [normalized_documents, document_chunks_v2],
        partition_key=KEY,
        resources={"reingest": reingest},
        instance=instance,
    ).success
    written = store_snapshot(pg_url)
    chunks_of_5 = sum(1 for row in written if row[1] == "pubmed:5")
    corpus.put_record(record(5, sentences=2))  # shrinks to one chunk
    corpus.put_record(record(21))
    corpus.put_record(record(22))
    corpus.put(23, b'{"pmid": "23", "title": "truncated')
    corpus.registry.conn.execute("DELETE FROM documents WHERE uid = 'pubmed:9'")
    ledger_before = ledger(pg_url)

    plan = dry_run(reingest, instance)
    assert plan["docs_in"] == 22
    assert (plan["docs_add"], plan["docs_update"], plan["docs_skip"]) == (2, 1, 18)
    assert (plan["docs_delete"], plan["docs_fail"]) == (1, 1)
    chunks_of_9 = sum(1 for row in written if row[1] == "pubmed:9")
    assert plan["chunks_write"] == 1 + 1 + 1  # pubmed:5 (shrunk), 21 and 22
    assert plan["chunks_delete"] == (chunks_of_5 - 1) + chunks_of_9
    assert plan["samples"]["add"] == ["pubmed:21", "pubmed:22"]
    assert plan["samples"]["fail"] == ["pubmed:23"]
    # Nothing written: the store, the ledger and the failure table are as they were.
    assert store_snapshot(pg_url) == written
    assert ledger(pg_url) == ledger_before
    assert failures(pg_url) == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM documents").fetchone() == (22,)

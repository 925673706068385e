"""The Dagster asset graph, materialized for real over partitions."""

from __future__ import annotations

from dagster import DagsterInstance, materialize
from dagster._core.definitions.observe import observe  # not re-exported at the top level
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from reingest_assets.assets import document_chunks_v2, normalized_documents, raw_documents
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.definitions import defs
from support.pipeline import Corpus, record, store_snapshot


def test_definitions_load_with_the_partitioned_chain() -> None:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_documents", "normalized_documents", "document_chunks_v2"} <= keys
    job = defs.resolve_job_def("reingest_job")
    assert job.partitions_def is not None
    assert "2026-11-03|pubmed" in job.partitions_def.get_partition_keys()


def test_materialize_one_partition_records_metadata(
    reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 31):
        corpus.put_record(record(pmid))
    result = materialize(
        [normalized_documents, document_chunks_v2],
        partition_key="2026-11-03|pubmed",
        resources={"reingest": reingest},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    meta = {
        m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
        for m in (
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        )
    }
    assert meta["normalized_documents"]["docs_written"] == 30
    assert meta["document_chunks_v2"]["docs_written"] == 30
    assert meta["document_chunks_v2"]["chunks_written"] == len(store_snapshot(pg_url))
    assert meta["document_chunks_v2"]["docs_per_minute"] > 0


def test_single_run_over_a_date_range_walks_every_partition(
    reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    days = ["2026-11-02", "2026-11-03", "2026-11-04"]
    for i, day in enumerate(days):
        for pmid in range(i * 100, i * 100 + 5):
            corpus.put_record(record(pmid + 1), day=day)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [normalized_documents, document_chunks_v2],
        resources={"reingest": reingest},
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{days[0]}|pubmed",
            ASSET_PARTITION_RANGE_END_TAG: f"{days[-1]}|pubmed",
        },
    )
    assert result.success
    materialized = {
        e.event_specific_data.materialization.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == "document_chunks_v2"
    }
    assert materialized == {f"{d}|pubmed" for d in days}
    assert len({r[1] for r in store_snapshot(pg_url)}) == 15


def test_raw_documents_observation_versions_change_with_content(
    reingest: ReingestResource, corpus: Corpus
) -> None:
    corpus.put_record(record(1))
    instance = DagsterInstance.ephemeral()

    def versions() -> dict[str, str]:
        result = observe([raw_documents], resources={"reingest": reingest}, instance=instance)
        assert result.success
        observations = (
            e.event_specific_data.asset_observation for e in result.get_asset_observation_events()
        )
        return {o.partition: o.tags["dagster/data_version"] for o in observations}

    before = versions()
    corpus.put_record(record(1, sentences=2))
    after = versions()
    assert before["2026-11-03|pubmed"] != after["2026-11-03|pubmed"]
    assert before["2026-11-04|pubmed"] == after["2026-11-04|pubmed"]

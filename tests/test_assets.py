"""The Dagster asset graph, materialized for real over partitions."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, TableMetadataValue, materialize
from dagster._core.definitions.observe import observe  # not re-exported at the top level
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from reingest_assets.assets import document_chunks_v2, normalized_documents, raw_documents
from reingest_assets.checks import document_chunks_v2_validation
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
        m.asset_key.path[-1]: {
            k: v if isinstance(v, TableMetadataValue) else v.value for k, v in m.metadata.items()
        }
        for m in (
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        )
    }
    assert meta["normalized_documents"]["docs_written"] == 30
    assert meta["document_chunks_v2"]["docs_written"] == 30
    assert meta["document_chunks_v2"]["chunks_written"] == len(store_snapshot(pg_url))
    assert meta["document_chunks_v2"]["docs_per_minute"] > 0
    # Figures by stage show as tables in the UI, not JSON blobs.
    stages = meta["document_chunks_v2"]["stage_seconds"]
    assert isinstance(stages, TableMetadataValue)
    assert [c.name for c in stages.schema.columns] == ["stage", "seconds"]
    assert "store" in {r.data["stage"] for r in stages.records}
    assert isinstance(meta["document_chunks_v2"]["failures_by_stage"], TableMetadataValue)


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


def test_a_range_run_puts_each_partitions_figures_on_its_materialization_and_checks_what_it_wrote(
    reingest: ReingestResource, corpus: Corpus, tmp_path: Path
) -> None:
    """Set-based over the range: per-partition figures on each partition's materialization,
    the run's totals as run_*; a partition with nothing new keeps no normalized object and the
    checks evaluate only the partitions the run wrote to."""
    days = ["2026-11-02", "2026-11-03", "2026-11-04"]  # the middle day stays empty
    for pmid in range(1, 4):
        corpus.put_record(record(pmid), day=days[0])
    for pmid in range(10, 15):
        corpus.put_record(record(pmid), day=days[2])
    instance = DagsterInstance.ephemeral()
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: f"{days[0]}|pubmed",
        ASSET_PARTITION_RANGE_END_TAG: f"{days[-1]}|pubmed",
    }

    def run() -> tuple[dict[str, dict[str, object]], set[str]]:
        result = materialize(
            [normalized_documents, document_chunks_v2, document_chunks_v2_validation],
            resources={"reingest": reingest},
            instance=instance,
            tags=tags,
        )
        assert result.success
        figures = {
            m.partition: {k: v.value for k, v in m.metadata.items()}
            for m in (
                e.event_specific_data.materialization
                for e in result.get_asset_materialization_events()
                if e.asset_key.path[-1] == "document_chunks_v2"
            )
        }
        checked = {
            e.event_specific_data.partition
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        return figures, checked

    figures, checked = run()
    assert {k: f["docs_written"] for k, f in figures.items()} == {
        f"{days[0]}|pubmed": 3,
        f"{days[1]}|pubmed": 0,
        f"{days[2]}|pubmed": 5,
    }
    assert all(f["run_docs_written"] == 8 and f["partitions"] == 3 for f in figures.values())
    assert checked == {f"{days[0]}|pubmed", f"{days[2]}|pubmed"}

    figures, checked = run()  # nothing changed
    assert {f["docs_in"] for f in figures.values()} == {0}  # skipped before normalizing
    assert all(f["run_docs_written"] == 0 for f in figures.values())
    assert checked == set()
    assert not list((tmp_path / "objects").rglob("*.parquet"))

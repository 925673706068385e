"""The asset graph: raw_documents (observed) → normalized_documents → document_chunks_v2.

Assets write to their stores themselves and return ``MaterializeResult``: an IO manager cannot
store one output for the many partitions of a run over a range. Each asset works set-based over
``context.partition_keys`` (one registry walk, workers busy across partitions) and puts each
partition's own figures on that partition's materialization.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    BackfillPolicy,
    Config,
    DataVersion,
    DataVersionsByPartition,
    MaterializeResult,
    MetadataValue,
    asset,
    observable_source_asset,
)
from pydantic import Field

from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.planning import PartitionPlan, plan_partition
from reingest_assets.engine.runner import (
    Partition,
    Pipeline,
    StageReport,
    chunk_partitions,
    exclusively,
    heap_frozen,
    normalize_partitions,
)
from reingest_assets.metadata import figures_table, samples_table
from reingest_assets.partitions import LOAD_SETTINGS, PARTITIONS

GROUP = "reingest"
# A backfill is split into runs of at most this many partitions, each placed by the run
# launcher; within a run the assets work set-based over its partitions.
BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=LOAD_SETTINGS.partitions_per_run)
# The steps that write (registry failures, normalized objects; chunks and ledger) take a slot of
# this Dagster concurrency pool: its limit (dagster.yaml, `concurrency: pools: default_limit`)
# caps how many run steps write to the stores at once, whatever the runs.
STORE_WRITES_POOL = "reingest_store_writes"
# Run tag naming the mode a run was started in (full, repair, validate, ...): repair runs
# count repair attempts.
MODE_TAG = "reingest/mode"


class ReingestRunConfig(Config):
    force: bool = Field(default=False, description="rewrite documents even when unchanged")
    uids: list[str] = Field(
        default_factory=list, description="only these documents (repair runs); empty: all"
    )
    verify: bool = Field(
        default=False,
        description="also rewrite unchanged documents whose stored chunks are not what the "
        "ledger says (missing, orphan or altered: what validation reports), and delete their "
        "orphan chunks; repair runs of failed checks set it",
    )


class ChunkRunConfig(ReingestRunConfig):
    dry_run: bool = Field(
        default=False,
        description="plan only: log what each partition would add, update, skip and delete; "
        "write nothing and record no materialization",
    )


@observable_source_asset(partitions_def=PARTITIONS, group_name=GROUP)
def raw_documents(context: Any, reingest: ReingestResource) -> DataVersionsByPartition:
    """What the registry holds per partition: the data version changes whenever a document is
    added, removed or its content hash changes, so downstream partitions show as stale."""
    summaries = reingest.adapters.registry.partition_summaries(
        reingest.sources, reingest.start_date
    )
    return DataVersionsByPartition(
        {
            key: DataVersion("{}:{}".format(*summaries.get(key, (0, "empty"))))
            for key in PARTITIONS.get_partition_keys()
        }
    )


def _run_metadata(reports: list[StageReport]) -> dict[str, Any]:
    """A range run's totals, under ``run_*`` names: every partition's materialization carries
    them next to its own figures (``_metadata``), which per-partition plots then show."""
    total = StageReport(",".join(r.partition for r in reports))
    for r in reports:
        for name in (
            "docs_in",
            "docs_written",
            "docs_skipped",
            "docs_failed",
            "docs_deleted",
            "chunks_written",
            "chunks_deleted",
            "seconds",
        ):
            setattr(total, name, getattr(total, name) + getattr(r, name))
        for stage, s in r.stage_seconds.items():
            total.stage_seconds[stage] = total.stage_seconds.get(stage, 0.0) + s
        for stage, n in r.failures_by_stage.items():
            total.failures_by_stage[stage] = total.failures_by_stage.get(stage, 0) + n
    metadata = _metadata(total)
    return {"partitions": len(reports), **{f"run_{k}": v for k, v in metadata.items()}}


def _metadata(r: StageReport) -> dict[str, Any]:
    return {
        "docs_in": r.docs_in,
        "docs_written": r.docs_written,
        "docs_skipped": r.docs_skipped,
        "docs_failed": r.docs_failed,
        "docs_deleted": r.docs_deleted,
        "chunks_written": r.chunks_written,
        "chunks_deleted": r.chunks_deleted,
        "docs_per_minute": MetadataValue.float(round(r.docs_per_minute, 1)),
        "duration_s": MetadataValue.float(round(r.seconds, 3)),
        "stage_seconds": figures_table(
            {k: round(v, 3) for k, v in r.stage_seconds.items()}, "stage", "seconds"
        ),
        "failures_by_stage": figures_table(dict(r.failures_by_stage), "stage", "failures"),
    }


@contextmanager
def _pipeline(
    context: AssetExecutionContext, reingest: ReingestResource, *, writes: bool
) -> Iterator[Pipeline]:
    """The step's pipeline; a step that writes applies pending schema changes first."""
    with heap_frozen():
        if writes:
            applied = reingest.migrate()
            if applied:
                context.log.info(f"migrations applied: {', '.join(applied)}")
        pipeline = reingest.pipeline(
            context.run.run_id,
            context.log.info,
            repair=context.run.tags.get(MODE_TAG) == "repair",
        )
        try:
            yield pipeline
        finally:
            pipeline.finish()


def _run_stage(
    context: AssetExecutionContext,
    config: ReingestRunConfig,
    reingest: ReingestResource,
    stage: Callable[..., list[StageReport]],
) -> dict[str, Any]:
    """Run an engine stage over the run's partitions, set-based on one pipeline. Each
    partition's figures go on its own materialization (stored in one batch with the others);
    the run's totals, on all of them, as ``run_*``. One log line for the run."""
    parts = [Partition.from_key(k) for k in context.partition_keys]
    with _pipeline(context, reingest, writes=True) as pipeline:
        reports = exclusively(
            pipeline,
            stage,
            parts,
            uids=config.uids or None,
            force=config.force,
            verify=config.verify,
        )
    if len(reports) == 1:
        return _metadata(reports[0])
    _add_partition_metadata(context, {r.partition: _metadata(r) for r in reports})
    metadata = _run_metadata(reports)
    context.log.info(
        f"{context.asset_key.to_user_string()}: {len(reports)} partitions, "
        + ", ".join(f"{k.removeprefix('run_')} {metadata[k]}" for k in RUN_LOG_FIGURES)
    )
    return metadata


RUN_LOG_FIGURES = ("run_docs_in", "run_docs_written", "run_docs_skipped", "run_docs_failed")


def _add_partition_metadata(
    context: AssetExecutionContext, by_partition: dict[str, dict[str, Any]]
) -> None:
    """``context.add_asset_metadata(metadata, partition_key=key)`` for each of the run's own
    partitions, in one pass. Dagster checks every call's key against the run's range by
    building the list of all its keys again: quadratic in the partitions, ~2 ms a call over a
    year of daily partitions, twice per run. The same accumulator is filled."""
    step = context.get_step_execution_context()
    accumulator = step._metadata_accumulator
    for key, metadata in by_partition.items():
        accumulator = accumulator.with_additional_asset_metadata(
            asset_key=context.asset_key, partition_key=key, metadata=metadata
        )
    step._metadata_accumulator = accumulator


@asset(
    partitions_def=PARTITIONS,
    deps=[raw_documents],
    backfill_policy=BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"parquet"},
    pool=STORE_WRITES_POOL,
)
def normalized_documents(
    context: AssetExecutionContext, config: ReingestRunConfig, reingest: ReingestResource
) -> MaterializeResult:
    """New or changed documents of each partition, fetched, parsed and normalized into one
    Parquet object per partition. Bad records land in ingestion_failures; the run goes on."""
    return MaterializeResult(metadata=_run_stage(context, config, reingest, normalize_partitions))


@asset(
    partitions_def=PARTITIONS,
    # raw_documents too: this step reads the registry itself (documents removed from it lose
    # their chunks), and Dagster marks an asset stale only when a direct dependency has a new
    # data version, not when a parent is stale. Without the edge an observed registry change
    # showed normalized_documents stale and document_chunks_v2 fresh.
    deps=[normalized_documents, raw_documents],
    backfill_policy=BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"postgres"},
    pool=STORE_WRITES_POOL,
    # A dry run yields no output: recording a materialization would mark the partitions
    # up to date (and run the checks) with nothing written.
    output_required=False,
)
def document_chunks_v2(
    context: AssetExecutionContext, config: ChunkRunConfig, reingest: ReingestResource
) -> Iterator[MaterializeResult]:
    """Chunks of each partition's documents in DocumentChunk_v2, with deterministic UUIDs:
    unchanged documents are skipped, shrunk documents lose their stale tail, failures are
    recorded and the run goes on. With ``dry_run`` the plan of each partition is logged as an
    observation of this asset instead, and nothing is written."""
    if config.dry_run:
        with _pipeline(context, reingest, writes=False) as pipeline:
            for k in context.partition_keys:
                _log_plan(
                    context,
                    plan_partition(
                        pipeline,
                        Partition.from_key(k),
                        uids=config.uids or None,
                        force=config.force,
                        verify=config.verify,
                    ),
                )
        return
    yield MaterializeResult(metadata=_run_stage(context, config, reingest, chunk_partitions))


def _log_plan(context: AssetExecutionContext, plan: PartitionPlan) -> None:
    summary = plan.as_dict()
    samples = summary.pop("samples")
    failures = summary.pop("failures_by_stage")
    context.log_event(
        AssetObservation(
            asset_key=context.asset_key,
            partition=plan.partition,
            metadata={
                "dry_run": True,
                **summary,
                "failures_by_stage": figures_table(failures, "stage", "failures"),
                "samples": samples_table(samples, "uid"),
            },
            tags={"reingest/mode": "dry-run"},
        )
    )
    context.log.info(f"dry run {plan.partition}: {plan.as_dict()}")

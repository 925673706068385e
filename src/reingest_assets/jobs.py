"""Jobs: re-ingestion (with its validation), repair, validation alone, dry run, raw_documents
observation, rollback, and the Weaviate alias cutover."""

from collections.abc import Callable
from typing import Any

from dagster import (
    AssetObservation,
    AssetSelection,
    Config,
    Failure,
    OpExecutionContext,
    define_asset_job,
    job,
    op,
)
from pydantic import Field

from reingest_assets.assets import document_chunks_v2, normalized_documents, raw_documents
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.cutover import CutoverReport, cutover
from reingest_assets.engine.rollback import rollback
from reingest_assets.engine.runner import Partition, Pipeline
from reingest_assets.resources.stores.weaviate import (
    WeaviateChunkStore,
    WeaviateStoreError,
    point_alias,
    require_alias_support,
)

CHAIN = AssetSelection.assets(normalized_documents, document_chunks_v2)

reingest_job = define_asset_job(
    "reingest_job",
    selection=CHAIN,
    description="Normalize and chunk the selected partitions into DocumentChunk_v2, then "
    "validate them (blocking asset checks).",
)

repair_job = define_asset_job(
    "repair_job",
    selection=CHAIN.without_checks(),
    description="Re-run the chain for the failed documents of one partition (run config "
    "``uids``); launched by repair_sensor. No validation: a repair of k documents costs O(k).",
    tags={"reingest/mode": "repair"},
)

validate_job = define_asset_job(
    "validate_job",
    selection=AssetSelection.checks_for_assets(document_chunks_v2),
    description="The validation checks of DocumentChunk_v2 alone, for the selected partitions. "
    "Writes nothing.",
    tags={"reingest/mode": "validate"},
)

plan_job = define_asset_job(
    "plan_job",
    selection=AssetSelection.assets(document_chunks_v2).without_checks(),
    config={"ops": {"document_chunks_v2": {"config": {"dry_run": True}}}},
    description="Dry run: what materializing the selected partitions would add, update, skip "
    "and delete, as observations of document_chunks_v2. Writes nothing.",
    tags={"reingest/mode": "dry-run"},
)

observe_raw_documents_job = define_asset_job(
    "observe_raw_documents_job",
    selection=AssetSelection.assets(raw_documents.key),
    description="Observe raw_documents: new data versions mark downstream partitions stale.",
)


class RollbackConfig(Config):
    partition: str = Field(default="", description="partition key to remove, YYYY-MM-DD|source")
    run_id: str = Field(default="", description="run whose writes to remove")
    alias_target: str = Field(
        default="",
        description="Weaviate alias mode: the collection to point the alias back at",
    )


def _alias_store(pipeline: Pipeline) -> WeaviateChunkStore:
    store = pipeline.store
    if not isinstance(store, WeaviateChunkStore) or store.alias is None:
        raise WeaviateStoreError(
            "alias cutover and rollback need the Weaviate store with an alias: set "
            "REINGEST_STORE=weaviate and REINGEST_WEAVIATE_ALIAS"
        )
    require_alias_support(store.client)
    return store


@op
def rollback_op(
    context: OpExecutionContext, config: RollbackConfig, reingest: ReingestResource
) -> dict[str, Any]:
    """Delete the chunks and ledger rows a partition or a run wrote; in Weaviate alias mode,
    point the alias back at ``alias_target`` (alone: readers go back, nothing is deleted)."""
    if not config.partition and not config.run_id and not config.alias_target:
        raise ValueError("rollback needs a partition, a run_id or an alias_target")
    pipeline = reingest.pipeline(context.run.run_id, context.log.info)
    try:
        report: dict[str, Any] = {}
        if config.partition or config.run_id:
            removed = rollback(
                pipeline.registry,
                pipeline.store,
                partition=Partition.from_key(config.partition) if config.partition else None,
                run_id=config.run_id or None,
                batch_size=pipeline.batch_size,
            )
            context.log.info(f"rollback: {removed.as_dict()}")
            for key, docs in removed.partitions.items():
                context.log_event(
                    AssetObservation(
                        asset_key=document_chunks_v2.key,
                        partition=key,
                        metadata={"rolled_back_docs": docs, "rolled_back_run": config.run_id},
                        tags={"reingest/mode": "rollback"},
                    )
                )
            report = removed.as_dict()
        if config.alias_target:
            store = _alias_store(pipeline)
            previous = point_alias(store.client, store.alias or "", config.alias_target)
            context.log.info(f"alias {store.alias}: {previous} -> {config.alias_target}")
            report["alias_previous"] = previous
        return {**report, "alias_target": config.alias_target or None}
    finally:
        pipeline.finish()


@job(tags={"reingest/mode": "rollback"})
def rollback_job() -> None:
    """Remove what a partition or a run wrote, from the store and the ledger."""
    rollback_op()


def run_cutover(
    reingest: ReingestResource, run_id: str, log: Callable[[str], None]
) -> tuple[str, CutoverReport]:
    """Validate every non-empty partition of the configured sources in the alias mode's
    collection and, when all pass, point the alias at it; returns (alias, report)."""
    pipeline = reingest.pipeline(run_id, log)
    try:
        store = _alias_store(pipeline)
        keys = pipeline.registry.partition_summaries(reingest.sources, reingest.start_date)
        report = cutover(
            pipeline.registry,
            store,
            pipeline.objects,
            [Partition.from_key(key) for key in sorted(keys)],
            promote=store.promote,
            chunker=pipeline.chunker,
            sample_size=reingest.validation_sample,
            max_failure_rate=reingest.max_failure_rate,
            batch_size=pipeline.batch_size,
            log=log,
        )
        return store.alias or "", report
    finally:
        pipeline.finish()


@op
def cutover_op(context: OpExecutionContext, reingest: ReingestResource) -> dict[str, Any]:
    """Validate the whole collection; only when every partition passes move the alias to it."""
    alias, report = run_cutover(reingest, context.run.run_id, context.log.info)
    if not report.promoted:
        raise Failure(
            description=f"alias {alias} not moved: partitions failed validation",
            metadata={"failed_partitions": report.failed_partitions},
        )
    context.log.info(f"alias {alias}: {report.previous} -> {report.target}")
    return {"alias": alias, **report.as_dict()}


@job(tags={"reingest/mode": "cutover"})
def cutover_job() -> None:
    """Weaviate alias mode: validate the new collection, then point the alias at it."""
    cutover_op()

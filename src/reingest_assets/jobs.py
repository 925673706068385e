"""Jobs: re-ingestion (with its validation), repair, validation alone, dry run, raw_documents
observation, and rollback."""

from typing import Any

from dagster import (
    AssetObservation,
    AssetSelection,
    Config,
    OpExecutionContext,
    define_asset_job,
    job,
    op,
)
from pydantic import Field

from reingest_assets.assets import (
    PARTITIONS,
    document_chunks_v2,
    normalized_documents,
    raw_documents,
)
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.rollback import rollback
from reingest_assets.engine.runner import Partition

CHAIN = AssetSelection.assets(normalized_documents, document_chunks_v2)

reingest_job = define_asset_job(
    "reingest_job",
    selection=CHAIN,
    partitions_def=PARTITIONS,
    description="Normalize and chunk the selected partitions into DocumentChunk_v2, then "
    "validate them (blocking asset checks).",
)

repair_job = define_asset_job(
    "repair_job",
    selection=CHAIN.without_checks(),
    partitions_def=PARTITIONS,
    description="Re-run the chain for the failed documents of one partition (run config "
    "``uids``); launched by repair_sensor. No validation: a repair of k documents costs O(k).",
    tags={"reingest/mode": "repair"},
)

validate_job = define_asset_job(
    "validate_job",
    selection=AssetSelection.checks_for_assets(document_chunks_v2),
    partitions_def=PARTITIONS,
    description="The validation checks of DocumentChunk_v2 alone, for the selected partitions. "
    "Writes nothing.",
    tags={"reingest/mode": "validate"},
)

plan_job = define_asset_job(
    "plan_job",
    selection=AssetSelection.assets(document_chunks_v2).without_checks(),
    partitions_def=PARTITIONS,
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


@op
def rollback_op(
    context: OpExecutionContext, config: RollbackConfig, reingest: ReingestResource
) -> dict[str, Any]:
    """Delete the chunks and ledger rows a partition or a run wrote; in Weaviate alias mode,
    point the alias back at ``alias_target``."""
    if not config.partition and not config.run_id:
        raise ValueError("rollback needs a partition or a run_id")
    pipeline = reingest.pipeline(context.run.run_id, context.log.info)
    try:
        report = rollback(
            pipeline.registry,
            pipeline.store,
            partition=Partition.from_key(config.partition) if config.partition else None,
            run_id=config.run_id or None,
            batch_size=pipeline.batch_size,
        )
        context.log.info(f"rollback: {report.as_dict()}")
        for key, docs in report.partitions.items():
            context.log_event(
                AssetObservation(
                    asset_key=document_chunks_v2.key,
                    partition=key,
                    metadata={"rolled_back_docs": docs, "rolled_back_run": config.run_id},
                    tags={"reingest/mode": "rollback"},
                )
            )
        if config.alias_target:
            from reingest_assets.resources.stores.weaviate import (
                WeaviateChunkStore,
                point_alias,
            )

            store = pipeline.store
            if not isinstance(store, WeaviateChunkStore) or store.alias is None:
                raise ValueError("alias_target needs the Weaviate store with an alias configured")
            previous = point_alias(store.client, store.alias, config.alias_target)
            context.log.info(f"alias {store.alias}: {previous} -> {config.alias_target}")
        return {**report.as_dict(), "alias_target": config.alias_target or None}
    finally:
        pipeline.close()


@job(tags={"reingest/mode": "rollback"})
def rollback_job() -> None:
    """Remove what a partition or a run wrote, from the store and the ledger."""
    rollback_op()

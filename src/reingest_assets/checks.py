"""The validation report of DocumentChunk_v2: partitioned asset checks, one result per partition.

Design. The six checks (``engine.validation.CHECKS``) are ``AssetCheckSpec``s with the asset's
partitions definition, computed by one ``@multi_asset_check`` because they share one streaming
pass over the partition. A Dagster user sees them on the asset's Checks tab, each with a result
per partition (metadata: counts and a sample of offending uids / chunk UUIDs).

* Runs of ``reingest_job`` (and backfills) execute them after ``document_chunks_v2``, over
  the documents the run wrote (O(written)), set-based over the run's partitions: the ids of
  every chunk it wrote, the content of a random sample of about
  ``REINGEST_VALIDATION_CONTENT_SAMPLE`` documents spread over the partitions (at least one
  each). A run over a range covers many partitions in one step, where ``AssetCheckResult``
  can carry only one partition; so the check yields an ``AssetCheckEvaluation`` per partition
  the run wrote to or recorded failures in (``can_subset=True``: no per-check output is
  required). A partition the run left unchanged gets none: its checks show as skipped for
  that run, its earlier results stand for its unchanged data.
* Every check is ``blocking``: a failed ERROR check fails the step, so assets downstream of
  ``document_chunks_v2`` do not run on a broken partition. ``failure_rate`` is a WARN: many bad
  source records are a source problem, while what was written is still sound.
* ``validate_job`` runs the checks alone (the UI's "Execute checks", or ``reingest validate``);
  it reads the registry, the ledger, the store and the raw objects and writes nothing.
* Repair runs (``repair_job``) leave them out: a repair of k documents stays O(k).
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetCheckSpec,
    multi_asset_check,
)

from reingest_assets.assets import document_chunks_v2
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.runner import Partition, Pipeline, heap_frozen
from reingest_assets.engine.validation import (
    CHECKS,
    CheckOutcome,
    PartitionValidation,
    validate_partition,
    validate_run,
)
from reingest_assets.metadata import samples_table
from reingest_assets.partitions import PARTITIONS

CHECK_SPECS = [
    AssetCheckSpec(
        name,
        asset=document_chunks_v2,
        description=description,
        blocking=True,
        partitions_def=PARTITIONS,
        metadata={"severity": severity},
    )
    for name, (severity, description) in CHECKS.items()
]


def _evaluation(partition: str, outcome: CheckOutcome) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        asset_key=document_chunks_v2.key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR
        if outcome.severity == "error"
        else AssetCheckSeverity.WARN,
        description=outcome.summary,
        blocking=True,
        partition=partition,
        metadata={
            **outcome.counts,
            "offenders": samples_table(outcome.samples, "id"),
        },
    )


@multi_asset_check(
    specs=CHECK_SPECS,
    can_subset=True,
    name="document_chunks_v2_validation",
    description="Validation report of DocumentChunk_v2, per partition.",
)
def document_chunks_v2_validation(
    context: AssetCheckExecutionContext, reingest: ReingestResource
) -> Iterator[AssetCheckEvaluation]:
    selected = context.selected_asset_check_keys
    # A run that materializes the asset checks what it wrote; a checks-only run (validate_job,
    # "Execute checks") checks every document of the partition.
    materializing = (
        document_chunks_v2.key
        in context.op_execution_context.job_def.asset_layer.selected_asset_keys
    )
    with heap_frozen():
        pipeline = reingest.pipeline(context.run.run_id, context.log.info)
        try:
            if materializing:
                reports = _validate_run(context, reingest, pipeline)
            else:
                reports = (
                    validate_partition(
                        pipeline.registry,
                        pipeline.store,
                        pipeline.objects,
                        Partition.from_key(key),
                        chunker=pipeline.chunker,
                        sample_size=reingest.validation_sample,
                        content_sample=reingest.validation_content_sample,
                        max_failure_rate=reingest.max_failure_rate,
                        batch_size=pipeline.batch_size,
                    )
                    for key in context.partition_keys
                )
            checked = failed = 0
            for report in reports:
                checked += 1
                if not report.passed:
                    failed += 1
                    context.log.warning(f"validation {report.partition}: FAILED")
                for outcome in report.checks:
                    if AssetCheckKey(document_chunks_v2.key, outcome.name) in selected:
                        yield _evaluation(report.partition, outcome)
            context.log.info(
                f"validation: {checked} of {len(context.partition_keys)} partitions checked, "
                f"{failed} failed"
                + (" (the others: nothing written by this run)" if materializing else "")
            )
        finally:
            pipeline.finish()


def _validate_run(
    context: AssetCheckExecutionContext, reingest: ReingestResource, pipeline: Pipeline
) -> Iterator[PartitionValidation]:
    """The partitions this run wrote to, source by source, set-based over each."""
    days: dict[str, list[str]] = {}
    for key in context.partition_keys:
        part = Partition.from_key(key)
        days.setdefault(part.source, []).append(part.ingest_date)
    for source, dates in days.items():
        yield from validate_run(
            pipeline.registry,
            pipeline.store,
            pipeline.objects,
            source,
            dates,
            context.run.run_id,
            chunker=pipeline.chunker,
            sample_size=reingest.validation_sample,
            content_sample=reingest.validation_content_sample,
            max_failure_rate=reingest.max_failure_rate,
            batch_size=pipeline.batch_size,
        )

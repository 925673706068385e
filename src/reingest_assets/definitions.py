"""The one ``Definitions`` of the reingest code location."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from reingest_assets.assets import document_chunks_v2, normalized_documents, raw_documents
from reingest_assets.checks import document_chunks_v2_validation
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.jobs import (
    cutover_job,
    observe_raw_documents_job,
    plan_job,
    reingest_job,
    repair_job,
    rollback_job,
    validate_job,
)
from reingest_assets.partitions import LOAD_SETTINGS
from reingest_assets.schedules import observe_raw_documents_schedule, reingest_job_schedule
from reingest_assets.sensors import repair_sensor

defs = Definitions(
    assets=[raw_documents, normalized_documents, document_chunks_v2],
    asset_checks=[document_chunks_v2_validation],
    jobs=[
        reingest_job,
        repair_job,
        validate_job,
        plan_job,
        observe_raw_documents_job,
        rollback_job,
        cutover_job,
    ],
    schedules=[reingest_job_schedule, observe_raw_documents_schedule],
    sensors=[repair_sensor],
    resources={"reingest": ReingestResource.from_settings(LOAD_SETTINGS)},
    # A run's steps follow each other (normalize, chunk, checks) and the engine has its own
    # worker pool: a process per step only loaded the code location again for each, seconds of
    # every launched run (a backfill is many runs).
    executor=in_process_executor,
)

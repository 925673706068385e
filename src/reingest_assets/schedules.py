"""Schedules: incremental mode.

* ``reingest_job_schedule``: daily, one run per source for the latest ingest date (the day that
  just ended). Documents updated later carry the date of their ``updated_at``, so they land in
  that later day's partition and its daily run; unchanged documents are skipped by the engine.
* ``observe_raw_documents_schedule``: observes ``raw_documents`` (hourly by default,
  ``REINGEST_OBSERVE_CRON``). Each observation gives every partition a data version (count and
  digest of uids and content hashes), so the UI marks a downstream partition stale as soon as a
  document of an already materialized day is added, removed or changed.
"""

from dagster import DefaultScheduleStatus, ScheduleDefinition, build_schedule_from_partitioned_job

from reingest_assets.jobs import observe_raw_documents_job, reingest_job
from reingest_assets.partitions import LOAD_SETTINGS

_STATUS = (
    DefaultScheduleStatus.RUNNING
    if LOAD_SETTINGS.schedules_running
    else DefaultScheduleStatus.STOPPED
)

reingest_job_schedule = build_schedule_from_partitioned_job(
    reingest_job,
    hour_of_day=0,
    minute_of_hour=30,
    default_status=_STATUS,
    description="Incremental: the latest ingest date of every source, daily.",
)

observe_raw_documents_schedule = ScheduleDefinition(
    name="observe_raw_documents_schedule",
    job=observe_raw_documents_job,
    cron_schedule=LOAD_SETTINGS.observe_cron,
    default_status=_STATUS,
    description="Observe raw_documents so stale partitions show in the UI.",
)

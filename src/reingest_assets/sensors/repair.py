"""The repair sensor: open ingestion failures become one run per partition, for those documents.

Each tick reads the repairable failures (transient ones, and data ones whose source was fixed:
the registry's content hash changed) and groups them by the document's current partition. Every
group becomes a ``RunRequest`` of ``repair_job`` for that partition, whose run config restricts
both assets to the group's uids, so repairing k documents costs O(k). The ``run_key`` is a digest
of the group's (failure id, repair attempts) pairs: the same failures at the same attempt are
never launched twice, while a failed repair (repair attempts + 1) is retried on a later tick
until the failure turns permanent (``REINGEST_MAX_ATTEMPTS`` repairs) and drops out of the
query. A successful
repair resolves the failures (the ledger write does) and they drop out too.
"""

import hashlib
from collections import defaultdict

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.jobs import repair_job
from reingest_assets.partitions import LOAD_SETTINGS, PARTITIONS
from reingest_assets.resources.registry import RepairableFailure

# Failures read per tick: a bound on one tick's work; the rest waits for the next tick.
MAX_FAILURES_PER_TICK = 10_000


def repair_run_key(partition_key: str, failures: list[RepairableFailure]) -> str:
    pairs = ",".join(f"{f.id}:{f.repair_attempts}" for f in sorted(failures, key=lambda f: f.id))
    return f"repair:{partition_key}:{hashlib.sha256(pairs.encode()).hexdigest()[:16]}"


def repair_requests(failures: list[RepairableFailure]) -> list[RunRequest]:
    """One run request per partition that exists (a document updated today waits for its
    day's partition, which the daily schedule runs)."""
    groups: dict[str, list[RepairableFailure]] = defaultdict(list)
    for failure in failures:
        groups[failure.partition_key].append(failure)
    requests = []
    for key, group in sorted(groups.items()):
        if not PARTITIONS.has_partition_key(key):
            continue
        config = {"uids": sorted({f.uid for f in group})}
        requests.append(
            RunRequest(
                run_key=repair_run_key(key, group),
                partition_key=key,
                run_config={
                    "ops": {
                        "normalized_documents": {"config": config},
                        "document_chunks_v2": {"config": config},
                    }
                },
                tags={"reingest/mode": "repair", "reingest/repair_docs": str(len(group))},
            )
        )
    return requests


@sensor(
    job=repair_job,
    minimum_interval_seconds=LOAD_SETTINGS.repair_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING
    if LOAD_SETTINGS.repair_sensor_running
    else DefaultSensorStatus.STOPPED,
    description="Re-run failed documents (transient, or data whose source was fixed), one run "
    "per partition, until they succeed or turn permanent.",
)
def repair_sensor(context: SensorEvaluationContext, reingest: ReingestResource) -> SensorResult:
    failures = reingest.adapters.registry.repairable_failures(limit=MAX_FAILURES_PER_TICK)
    requests = repair_requests(failures)
    if not requests:
        return SensorResult(skip_reason=SkipReason("no repairable failures"))
    context.log.info(f"repair: {len(failures)} failure(s) in {len(requests)} partition(s)")
    return SensorResult(run_requests=requests)

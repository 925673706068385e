"""The repair sensor: open ingestion failures and failed validation checks become repair runs.

Failures. Each tick reads the repairable failures (transient ones, and data ones whose source
was fixed: the registry's content hash changed) and groups them by the document's current
partition. Every group becomes a ``RunRequest`` of ``repair_job`` for that partition, whose run
config restricts both assets to the group's uids, so repairing k documents costs O(k). The
``run_key`` is a digest of the group's (failure id, repair attempts) pairs: the same failures at
the same attempt are never launched twice, while a failed repair (repair attempts + 1) is
retried on a later tick until the failure turns permanent (``REINGEST_MAX_ATTEMPTS`` repairs)
and drops out of the query. A successful repair resolves the failures (the ledger write does)
and they drop out too.

Failed checks. Damage the ERROR checks of ``document_chunks_v2`` found in a partition (missing,
orphan or altered chunks) becomes a ``repair_job`` run of that partition with ``verify``: it
rewrites exactly the documents whose stored chunks are not what the ledger says, deletes orphan
chunks, and retries the partition's repairable failures on the way (they are not in the ledger,
so the run writes them anyway). The sensor's cursor is the storage id of the latest check event
it has seen: each failed evaluation is acted on once. Repair runs run no checks, so a repair
never triggers another; the next validation (``reingest validate``, ``validate_job``) shows the
result. ``failure_rate`` (WARN) is left out: failed source records are the failures' business.

A tick only reads (the registry and Dagster's event log); it writes no row and no schema.
"""

import hashlib
from collections import defaultdict
from collections.abc import Sequence

from dagster import (
    AssetCheckKey,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from reingest_assets.assets import MODE_TAG, document_chunks_v2
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.validation import CHECKS
from reingest_assets.jobs import repair_job
from reingest_assets.partitions import LOAD_SETTINGS, PARTITIONS
from reingest_assets.resources.registry import RepairableFailure

# Failures read per tick: a bound on one tick's work; the rest waits for the next tick.
MAX_FAILURES_PER_TICK = 10_000
DAMAGE_CHECKS = [
    AssetCheckKey(document_chunks_v2.key, name)
    for name, (severity, _) in CHECKS.items()
    if severity == "error"
]


def repair_run_key(partition_key: str, failures: list[RepairableFailure]) -> str:
    pairs = ",".join(f"{f.id}:{f.repair_attempts}" for f in sorted(failures, key=lambda f: f.id))
    return f"repair:{partition_key}:{hashlib.sha256(pairs.encode()).hexdigest()[:16]}"


def _request(key: str, run_key: str, config: dict[str, object], cause: str) -> RunRequest:
    return RunRequest(
        run_key=run_key,
        partition_key=key,
        run_config={
            "ops": {
                "normalized_documents": {"config": config},
                "document_chunks_v2": {"config": config},
            }
        },
        tags={MODE_TAG: "repair", "reingest/repair": cause},
    )


def repair_requests(
    failures: list[RepairableFailure], damaged: dict[str, int] | None = None
) -> list[RunRequest]:
    """One run request per partition that exists (a document updated today waits for its
    day's partition, which the daily schedule runs): a verifying run of the whole partition
    where checks failed (``damaged``: partition key → storage id of the failed evaluation),
    else a run of the failed documents only."""
    damaged = damaged or {}
    groups: dict[str, list[RepairableFailure]] = defaultdict(list)
    for failure in failures:
        groups[failure.partition_key].append(failure)
    requests = []
    for key in sorted(set(groups) | set(damaged)):
        if not PARTITIONS.has_partition_key(key):
            continue
        if key in damaged:
            requests.append(
                _request(key, f"verify:{key}:{damaged[key]}", {"verify": True}, "checks")
            )
            continue
        group = groups[key]
        requests.append(
            _request(
                key,
                repair_run_key(key, group),
                {"uids": sorted({f.uid for f in group})},
                f"{len(group)} failure(s)",
            )
        )
    return requests


def failed_checks(
    instance: DagsterInstance, after: int | None
) -> tuple[dict[str, int], int | None]:
    """Partitions whose latest ERROR check evaluation since storage id ``after`` failed, each
    with that evaluation's storage id; and the latest check event seen (the next cursor)."""
    infos = instance.event_log_storage.get_asset_check_partition_info(
        DAMAGE_CHECKS, after_storage_id=after
    )
    damaged: dict[str, int] = {}
    for info in infos:
        if (
            info.partition_key is not None
            and info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED
        ):
            damaged[info.partition_key] = max(
                damaged.get(info.partition_key, 0), info.latest_check_event_storage_id
            )
    latest = max((i.latest_check_event_storage_id for i in infos), default=after)
    return damaged, latest


def _cursor(value: str | None) -> int | None:
    return int(value) if value else None


def _summary(requests: Sequence[RunRequest]) -> str:
    return ", ".join(f"{r.partition_key} ({r.tags['reingest/repair']})" for r in requests)


@sensor(
    job=repair_job,
    minimum_interval_seconds=LOAD_SETTINGS.repair_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING
    if LOAD_SETTINGS.repair_sensor_running
    else DefaultSensorStatus.STOPPED,
    description="Re-run failed documents (transient, or data whose source was fixed), one run "
    "per partition, until they succeed or turn permanent; and repair what failed validation "
    "checks found in the store (missing, orphan, altered chunks).",
)
def repair_sensor(context: SensorEvaluationContext, reingest: ReingestResource) -> SensorResult:
    failures = reingest.adapters.registry.repairable_failures(limit=MAX_FAILURES_PER_TICK)
    damaged, cursor = failed_checks(context.instance, _cursor(context.cursor))
    requests = repair_requests(failures, damaged)
    next_cursor = str(cursor) if cursor is not None else None
    if not requests:
        return SensorResult(skip_reason=SkipReason("nothing to repair"), cursor=next_cursor)
    context.log.info(f"repair: {_summary(requests)}")
    return SensorResult(run_requests=requests, cursor=next_cursor)

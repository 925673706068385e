"""``reingest``: the operator's command line over the same engine and Dagster job the UI drives."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from reingest_assets.settings import Settings
from reingest_assets.stack import Stack, partition_dates, prepare_stack, run_reingest_job


def _print_json(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True))


def _summarize(results: list[Any], seconds: float) -> dict[str, Any]:
    """Add up the runs' materialization metadata into one summary."""
    totals: dict[str, dict[str, float]] = {}
    for result in results:
        seen: set[str] = set()
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            stage = mat.asset_key.path[-1]
            if stage in seen:  # every partition of a run carries the run's totals: count once
                continue
            seen.add(stage)
            stage_totals = totals.setdefault(stage, {})
            for key, value in mat.metadata.items():
                if isinstance(value.value, int | float):
                    stage_totals[key] = stage_totals.get(key, 0.0) + float(value.value)
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
        "runs": len(results),
        "runs_succeeded": sum(1 for r in results if r.success),
    }


def cmd_full(args: argparse.Namespace) -> int:
    stack = prepare_stack()
    summary = _full(
        stack, args.source or list(stack.settings.sources), args.since, args.until, force=args.force
    )
    _report(summary, args.json)
    return 0 if summary["runs"] == summary["runs_succeeded"] else 1


def _full(
    stack: Stack, sources: list[str], since: str | None, until: str | None, *, force: bool
) -> dict[str, Any]:
    dates = partition_dates(stack.settings, since, until)
    config = {"force": force}
    run_config = {
        "ops": {name: {"config": config} for name in ("normalized_documents", "document_chunks_v2")}
    }
    started = time.perf_counter()
    results = run_reingest_job(stack, sources=sources, dates=dates, run_config=run_config)
    return _summarize(results, time.perf_counter() - started)


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(
            f"{key:<{width}}  {value:,}" if isinstance(value, int) else f"{key:<{width}}  {value}"
        )


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a PubMed-like corpus into the local object store and registry, then run full."""
    from reingest_assets.resources.local_store import LocalObjectStore
    from reingest_assets.resources.registry import Registry
    from reingest_assets.synthetic import generate_corpus

    stack = prepare_stack()
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
    objects = LocalObjectStore(settings.objects_dir, bucket=settings.bucket)
    registry = Registry(stack.database_url)
    registry.migrate()
    t = time.perf_counter()

    def rows() -> Any:
        for rec in generate_corpus(
            args.docs,
            sources=settings.sources,
            start_date=start,
            days=days,
            seed=args.seed,
            malformed_rate=0.01,
        ):
            uri = f"s3://{settings.bucket}/{rec.key}"
            objects.put(uri, rec.data)
            stamp = datetime.fromisoformat(rec.ingest_date).replace(hour=12, tzinfo=UTC)
            yield (
                rec.uid,
                rec.source,
                rec.source_id,
                rec.title,
                rec.published_at,
                uri,
                rec.content_hash,
                stamp,
                stamp,
            )

    registered = registry.upsert_documents(rows())
    registry.close()
    if not args.json:
        print(
            f"demo corpus: {registered:,} documents over {days} days and "
            f"{len(settings.sources)} source(s) in {time.perf_counter() - t:.1f}s "
            f"(REINGEST_HOME={settings.home})"
        )
    summary = _full(stack, list(settings.sources), start.isoformat(), end.isoformat(), force=False)
    _report(summary, args.json)
    return 0 if summary["runs"] == summary["runs_succeeded"] else 1


def cmd_dev(args: argparse.Namespace) -> int:
    """The Dagster webserver and daemon on the local stack (embedded Postgres by default)."""
    prepare_stack()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reingest",
        description="Re-ingest PubMed documents into DocumentChunk_v2 (Dagster code location).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate a corpus on the embedded stack and run full mode")
    demo.add_argument("--docs", type=int, default=5000, help="documents to generate (5000)")
    demo.add_argument("--days", type=int, default=7, help="ingest days to spread them over (7)")
    demo.add_argument("--seed", type=int, default=0, help="corpus seed (0)")
    demo.add_argument("--json", action="store_true", help="print one JSON summary")
    demo.set_defaults(func=cmd_demo)

    full = sub.add_parser("full", help="materialize all (or the selected) partitions")
    full.add_argument("--source", action="append", help="only this source (repeatable)")
    full.add_argument("--since", help="first ingest date, YYYY-MM-DD")
    full.add_argument("--until", help="last ingest date, YYYY-MM-DD")
    full.add_argument("--force", action="store_true", help="rewrite unchanged documents too")
    full.add_argument("--json", action="store_true", help="print one JSON summary")
    full.set_defaults(func=cmd_full)

    dev = sub.add_parser("dev", help="start the Dagster webserver and daemon on the local stack")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    Settings()  # fail early on malformed settings
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

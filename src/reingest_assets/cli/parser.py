"""The command line's arguments. Imports nothing but argparse: ``reingest --help`` stays quick."""

from __future__ import annotations

import argparse
from typing import Any


class UsageError(Exception):
    """An argument or setting the command cannot work with; the message names what to change
    (exit status 2, no traceback)."""


def _add_range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", help="only this source (repeatable)")
    parser.add_argument("--since", help="first ingest date, YYYY-MM-DD")
    parser.add_argument("--until", help="last ingest date, YYYY-MM-DD")


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        choices=("pgvector", "weaviate"),
        help="chunk store to write (sets REINGEST_STORE for this command)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reingest",
        description="Re-ingest PubMed documents into DocumentChunk_v2 (Dagster code location).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug output: Dagster's event log, every warning, tracebacks",
    )

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    demo = add("demo", help="generate a corpus on the embedded stack and run full mode")
    demo.add_argument("--docs", type=int, default=5000, help="documents to generate (5000)")
    demo.add_argument("--days", type=int, default=7, help="ingest days to spread them over (7)")
    demo.add_argument(
        "--since",
        help="first ingest day, YYYY-MM-DD (default: the last --days days, up to yesterday)",
    )
    demo.add_argument("--seed", type=int, default=0, help="corpus seed (0)")
    demo.add_argument("--json", action="store_true", help="print one JSON summary")
    _add_store(demo)

    full = add("full", help="materialize all (or the selected) partitions")
    _add_range(full)
    full.add_argument("--force", action="store_true", help="rewrite unchanged documents too")
    full.add_argument(
        "--dry-run",
        action="store_true",
        help="plan only: per partition, documents to add/update/skip/delete and chunks to "
        "write/delete; writes nothing",
    )
    full.add_argument(
        "--backfill",
        action="store_true",
        help="submit a backfill to the Dagster instance (runs launched by its daemon: `reingest "
        "dev` or your deployment) and follow it to its end, instead of running in-process",
    )
    full.add_argument("--json", action="store_true", help="print one JSON summary")
    _add_store(full)

    repair = add(
        "repair",
        help="rewrite the documents whose stored chunks validation finds missing, orphan or "
        "altered, and retry repairable failures (what the repair sensor does); sound "
        "documents are not touched",
    )
    _add_range(repair)
    repair.add_argument("--json", action="store_true", help="print one JSON summary")

    validate = add("validate", help="run the validation checks alone over the selected partitions")
    _add_range(validate)
    validate.add_argument("--json", action="store_true", help="print one JSON report")

    status = add("status", help="per-partition state: materialized, failed, stale, open failures")
    _add_range(status)
    status.add_argument("--all", action="store_true", help="list empty partitions too")
    status.add_argument("--json", action="store_true", help="print JSON")

    rollback = add("rollback", help="remove what a partition or a run wrote (store and ledger)")
    target = rollback.add_mutually_exclusive_group()
    target.add_argument("--partition", help="partition key, YYYY-MM-DD|source")
    target.add_argument("--run", help="Dagster run id")
    rollback.add_argument(
        "--alias-target",
        help="Weaviate alias mode: point the alias back at this collection (alone: only the "
        "alias moves, nothing is deleted)",
    )
    rollback.add_argument("--json", action="store_true", help="print one JSON report")

    cutover = add(
        "cutover",
        help="Weaviate alias mode: validate every partition, then point the alias at the "
        "collection written",
    )
    cutover.add_argument("--json", action="store_true", help="print one JSON report")

    bench = add(
        "bench",
        help="benchmark full and incremental mode end to end on a fresh embedded stack",
    )
    bench.add_argument("--docs", type=int, default=100_000, help="documents (100000)")
    bench.add_argument(
        "--days", type=int, default=1, help="partitions to spread them over (1: one partition)"
    )
    bench.add_argument("--seed", type=int, default=0, help="corpus seed (0)")
    bench.add_argument(
        "--runs",
        type=int,
        default=0,
        help="scale-out instead: K runs at once over disjoint date ranges, each its own process "
        "(against one run with K x --workers workers)",
    )
    bench.add_argument(
        "--workers", type=int, default=1, help="with --runs: chunker processes per run (1)"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    bench_fetch = add(
        "bench-fetch",
        help="benchmark S3 GETs (obstore vs boto3 get_object) against a stand-in server",
    )
    bench_fetch.add_argument("--gets", type=int, default=20_000, help="GETs per path (20000)")
    bench_fetch.add_argument(
        "--latency-ms", type=float, default=20.0, help="server latency per request (20)"
    )
    bench_fetch.add_argument("--in-flight", type=int, default=64, help="GETs in flight (64)")
    bench_fetch.add_argument("--size", type=int, default=3000, help="object bytes (3000)")
    bench_fetch.add_argument(
        "--path", choices=("both", "obstore", "boto3"), default="both", help="what to run (both)"
    )
    bench_fetch.add_argument("--json", action="store_true", help="print one JSON object")

    migrate = add(
        "migrate", help="apply pending schema changes (registry tables, chunk store schema)"
    )
    migrate.add_argument("--json", action="store_true", help="print JSON")

    runs = add("runs", help="recent runs: id, job, mode, range, outcome and figures")
    runs.add_argument("--limit", type=int, default=20, help="how many, newest first (20)")
    runs.add_argument("--json", action="store_true", help="print JSON")

    sql = add(
        "sql",
        help="psql on the pipeline's database (the embedded one is kept running meanwhile)",
    )
    sql.add_argument("-c", "--command", dest="sql", help="run this SQL and exit")

    dev = add("dev", help="start the Dagster webserver and daemon on the local stack")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000)
    return parser

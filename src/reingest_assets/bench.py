"""``reingest bench``: full mode, then an incremental run over the unchanged corpus, end to end
on the embedded stack (local object store, embedded Postgres, pgvector, no embedding model),
through the same Dagster job the UI launches.

Reports documents per minute, chunks per second, peak resident memory of the process tree and
time per stage. Run it on an otherwise idle machine: it measures the machine, not only the code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psutil

from reingest_assets.domain.tokenizer import tokenizer_name
from reingest_assets.stack import run_totals


class PeakMemory:
    """Samples the resident memory of this process and its children (the worker pool), and
    separately of one database server (``db_dir``: its data directory), every ``interval``
    seconds.

    The server is measured as proportional set size: its backends map the same shared buffers,
    so their RSS added up counts those pages once per backend (it read ~3 GB for a server whose
    real footprint was a fraction of that). Only the server whose data directory is ``db_dir``
    counts, not every ``postgres`` process on the machine.

    Finding the processes scans all of /proc, so it is done every ``rescan`` seconds only (pool
    workers and server backends live for a run); reading a known process's memory is cheap. A
    sampler that rescanned every time cost the measured process over a tenth of a core.
    """

    def __init__(
        self, interval: float = 0.2, rescan: float = 2.0, db_dir: Path | None = None
    ) -> None:
        self.interval = interval
        self.rescan = rescan
        self.db_dir = str(db_dir.resolve()) if db_dir else None
        self.peak_tree = 0
        self.peak_db = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        scanned = 0.0
        tree: list[psutil.Process] = []
        db: list[psutil.Process] = []
        while not self._stop.is_set():
            if time.monotonic() - scanned >= self.rescan:
                tree = [me, *me.children(recursive=True)]
                db = self._server_processes()
                scanned = time.monotonic()
            self.peak_tree = max(self.peak_tree, _memory(tree, lambda p: p.memory_info().rss))
            self.peak_db = max(self.peak_db, _memory(db, lambda p: p.memory_full_info().pss))
            self._stop.wait(self.interval)

    def _server_processes(self) -> list[psutil.Process]:
        if self.db_dir is None:
            return []
        for p in psutil.process_iter(["name", "cmdline"]):
            if p.info["name"] == "postgres" and self.db_dir in (p.info["cmdline"] or []):
                try:
                    return [p, *p.children()]
                except psutil.Error:
                    return []
        return []


def _memory(processes: list[psutil.Process], measure: Callable[[psutil.Process], int]) -> int:
    total = 0
    for p in processes:
        try:
            total += measure(p)
        except psutil.Error:
            continue
    return total


@dataclass
class BenchResult:
    docs: int
    partitions: int
    chunks: int
    full: dict[str, Any]
    noop: dict[str, Any]
    peak_rss_mb: float
    db_peak_pss_mb: float
    generate_seconds: float
    pgvector_fulltext: bool
    tokenizer: str

    @property
    def partition_overhead_ms(self) -> float:
        """What a partition costs when nothing in it changed: the unchanged run's wall time per
        partition (it includes the run's own fixed cost and the per-document skip, both small
        next to it over many partitions; read it against a one-partition bench)."""
        return round(self.noop["seconds"] * 1000 / max(self.partitions, 1), 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "docs": self.docs,
            "partitions": self.partitions,
            "partition_overhead_ms": self.partition_overhead_ms,
            "chunks": self.chunks,
            "full_docs_per_minute": self.full["docs_per_minute"],
            "full_chunks_per_second": round(self.chunks / self.full["seconds"], 1),
            "noop_docs_per_minute": self.noop["docs_per_minute"],
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "db_peak_pss_mb": round(self.db_peak_pss_mb, 1),
            "generate_seconds": round(self.generate_seconds, 1),
            "pgvector_fulltext": self.pgvector_fulltext,
            "tokenizer": self.tokenizer,
            "full": self.full,
            "noop": self.noop,
            "cpus": os.cpu_count(),
        }


def run_benchmark(
    docs: int, *, days: int = 1, seed: int = 0, home: Path | None = None
) -> BenchResult:
    """Generate ``docs`` documents over ``days`` partitions into a fresh REINGEST_HOME, then run
    full mode and a no-op incremental run, measuring both."""
    owned = home is None
    home = home or Path(tempfile.mkdtemp(prefix="reingest-bench-"))
    first_day = date.today() - timedelta(days=days)
    os.environ["REINGEST_HOME"] = str(home)
    os.environ["REINGEST_START_DATE"] = first_day.isoformat()
    os.environ.pop("REINGEST_DATABASE_URL", None)
    try:
        from reingest_assets.runs import QUIET, summarize
        from reingest_assets.settings import Settings
        from reingest_assets.stack import (
            load_synthetic_corpus,
            partition_dates,
            prepare_stack,
            run_partitioned_job,
        )

        stack = prepare_stack(Settings())
        started = time.perf_counter()
        load_synthetic_corpus(stack, docs, first_day=first_day, days=days, seed=seed)
        generate_seconds = time.perf_counter() - started
        dates = partition_dates(stack.settings, None, None)
        quiet = QUIET
        _load_once()

        def run() -> dict[str, Any]:
            t = time.perf_counter()
            results = run_partitioned_job(
                stack,
                "reingest_job",
                sources=list(stack.settings.sources),
                dates=dates,
                run_config=quiet,
                tags={"reingest/mode": "full"},
            )
            summary = summarize(results, time.perf_counter() - t)
            summary["stage_seconds"] = _stage_seconds(results)
            summary["step_seconds"] = _step_seconds(results)
            return summary

        with PeakMemory(db_dir=stack.settings.pg_dir) as memory:
            full = run()
            noop = run()
        return BenchResult(
            docs=docs,
            partitions=len(dates) * len(stack.settings.sources),
            chunks=full["chunks_written"],
            full=full,
            noop=noop,
            peak_rss_mb=memory.peak_tree / 2**20,
            db_peak_pss_mb=memory.peak_db / 2**20,
            generate_seconds=generate_seconds,
            pgvector_fulltext=stack.settings.pgvector_fulltext,
            tokenizer=tokenizer_name(),
        )
    finally:
        if owned:
            shutil.rmtree(home, ignore_errors=True)


def _load_once() -> None:
    """What a deployment does once, not per run: load the code location and create Dagster's
    storage tables in the fresh database. Done before the clock starts."""
    from dagster import DagsterInstance

    from reingest_assets.definitions import defs

    defs.resolve_job_def("reingest_job")
    with DagsterInstance.get() as instance:
        instance.get_runs(limit=1)


def _step_seconds(results: list[Any]) -> dict[str, float]:
    """Wall seconds per Dagster step (the two assets and the validation checks)."""
    totals: dict[str, float] = {}
    for result in results:
        for event in result.all_events:
            if event.event_type_value == "STEP_SUCCESS":
                seconds = event.event_specific_data.duration_ms / 1000
                totals[event.step_key] = round(totals.get(event.step_key, 0.0) + seconds, 3)
    return totals


def _stage_seconds(results: list[Any]) -> dict[str, float]:
    """Seconds per stage, added up over the runs' per-asset materialization metadata."""
    seconds: dict[str, float] = {}
    for asset_totals in run_totals(results).values():
        for stage, spent in asset_totals.get("stage_seconds", {}).items():
            seconds[stage] = round(seconds.get(stage, 0.0) + spent, 3)
    return seconds


def run_scaleout(
    docs: int, *, days: int, runs: int, workers: int = 1, seed: int = 0
) -> dict[str, Any]:
    """What splitting into runs costs: ``runs`` runs at once over disjoint date ranges, each
    its own process with ``workers`` chunker processes, sharing Postgres and the object store
    as that many machines would, against one run with ``runs * workers`` workers over the same
    range (the same CPU either way); and one run's throughput with 1 and 2 workers. Every
    measurement is a forced full run (``force``: every document normalized, chunked and
    written again) over one corpus, on a fresh embedded stack."""
    home = Path(tempfile.mkdtemp(prefix="reingest-scaleout-"))
    first_day = date.today() - timedelta(days=days)
    os.environ["REINGEST_HOME"] = str(home)
    os.environ["REINGEST_START_DATE"] = first_day.isoformat()
    os.environ.pop("REINGEST_DATABASE_URL", None)
    try:
        from reingest_assets.settings import Settings
        from reingest_assets.stack import load_synthetic_corpus, partition_dates, prepare_stack

        stack = prepare_stack(Settings())
        load_synthetic_corpus(stack, docs, first_day=first_day, days=days, seed=seed)
        dates = partition_dates(stack.settings, None, None)
        _load_once()
        _forced_runs([dates], workers=1)  # the first load, not measured
        split = [dates[len(dates) * i // runs : len(dates) * (i + 1) // runs] for i in range(runs)]
        k_runs = _forced_runs(split, workers=workers)
        one_run = _forced_runs([dates], workers=runs * workers)
        result = {
            "docs": docs,
            "partitions": len(dates),
            "runs": runs,
            "workers_per_run": workers,
            "k_runs_docs_per_minute": round(docs / k_runs * 60, 1),
            "one_run_docs_per_minute": round(docs / one_run * 60, 1),
            "efficiency": round(one_run / k_runs, 3),
        }
        for w in (1, 2):
            seconds = one_run if w == runs * workers else _forced_runs([dates], workers=w)
            result[f"one_run_{w}_workers_docs_per_minute"] = round(docs / seconds * 60, 1)
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _forced_runs(ranges: list[list[str]], *, workers: int) -> float:
    """Wall seconds for one forced full run per date range, all at once, each in its own
    process (as a run launcher would start them)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    os.environ["REINGEST_WORKERS"] = str(workers)
    processes = [context.Process(target=_forced_run, args=(r,)) for r in ranges if r]
    started = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    if any(process.exitcode for process in processes):
        raise RuntimeError("a scale-out bench run failed (its output is above)")
    return time.perf_counter() - started


def _forced_run(dates: list[str]) -> None:
    from reingest_assets.runs import QUIET
    from reingest_assets.settings import Settings
    from reingest_assets.stack import prepare_stack, run_partitioned_job

    stack = prepare_stack(Settings())
    force = {"config": {"force": True}}
    results = run_partitioned_job(
        stack,
        "reingest_job",
        sources=list(stack.settings.sources),
        dates=dates,
        run_config={
            **QUIET,
            "ops": {"normalized_documents": force, "document_chunks_v2": force},
        },
        tags={"reingest/mode": "full"},
        raise_on_error=False,
    )
    if not all(r.success for r in results):
        raise SystemExit(1)

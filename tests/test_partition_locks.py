"""One writer per partition: two runs over the same partitions at once write each document
once, the later one waiting for the partitions the other holds and saying whose they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from reingest_assets.resources.partition_locks import PartitionLocks
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.pipeline import Corpus, record

LOCKED_RUN = Path(__file__).parent / "support" / "locked_run.py"
DAYS = ["2026-11-02", "2026-11-03", "2026-11-04"]


def test_a_partition_lock_has_one_holder_named_by_its_run(pg_url: str) -> None:
    first, second = PartitionLocks(pg_url, "run-a"), PartitionLocks(pg_url, "run-b")
    try:
        assert first.try_lock("2026-11-03|pubmed")
        assert not second.try_lock("2026-11-03|pubmed")
        assert second.try_lock("2026-11-04|pubmed")
        assert second.holder("2026-11-03|pubmed") == "run-a"
        first.close()  # a run that goes away lets go of its partitions
        deadline = time.monotonic() + 10  # once the server has ended its session
        while not second.try_lock("2026-11-03|pubmed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        first.close()
        second.close()


def test_two_overlapping_runs_write_each_document_once(
    pg_url: str, corpus: Corpus, tmp_path: Path
) -> None:
    for i, day in enumerate(DAYS):
        for pmid in range(i * 100 + 1, i * 100 + 41):
            corpus.put_record(record(pmid), day=day)
    store = PgVectorChunkStore(pg_url)
    store.ensure_schema()
    store.close()
    release = tmp_path / "release-run-a"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def start(run_id: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(LOCKED_RUN), pg_url, str(tmp_path / "objects"), run_id, *DAYS],
            stdout=subprocess.PIPE,
            text=True,
            env={**env, **extra},
        )

    def read_until(proc: subprocess.Popen[str], marker: str) -> str:
        assert proc.stdout is not None
        seen = ""
        while marker not in seen:
            line = proc.stdout.readline()
            assert line, f"exited before {marker!r}: {seen}"
            seen += line
        return seen

    first = start("run-a", HOLD_UNTIL=str(release))
    try:
        read_until(first, "first-fetch")  # run-a holds every partition now
        second = start("run-b")
        try:
            waiting = read_until(second, "waiting")
            assert f"{DAYS[0]}|pubmed: run run-a is writing it; waiting" in waiting
            release.touch()
            out_first, _ = first.communicate(timeout=240)
            out_second, _ = second.communicate(timeout=240)
        finally:
            second.kill()
    finally:
        release.touch()
        first.kill()
    assert first.returncode == 0 and second.returncode == 0
    written = [
        json.loads(out.strip().splitlines()[-1])["docs_written"] for out in (out_first, out_second)
    ]
    assert written == [40 * len(DAYS), 0]  # the corpus, once: run-b found it written

"""``reingest bench --json`` end to end on a tiny corpus: the report names its tokenizer, what a
partition costs and its database server's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_json_names_the_tokenizer(tmp_path: Path) -> None:
    env = {**os.environ, "REINGEST_TOKENIZER": "tiktoken", "REINGEST_HOME": str(tmp_path)}
    command = ["bench", "--docs", "40", "--days", "2", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "reingest_assets.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tokenizer"].startswith("tiktoken ")
    assert report["docs"] == 40 and report["full"]["docs_written"] == 40
    assert report["partitions"] == 2 and report["partition_overhead_ms"] > 0
    # The bench's own database server was found and measured.
    assert report["db_peak_pss_mb"] > 0

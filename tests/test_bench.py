"""``reingest bench --json`` end to end on a tiny corpus: the report names its tokenizer."""

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
    done = subprocess.run(
        [sys.executable, "-m", "reingest_assets.cli", "bench", "--docs", "40", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tokenizer"].startswith("tiktoken ")
    assert report["docs"] == 40 and report["full"]["docs_written"] == 40

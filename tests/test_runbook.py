"""docs/runbook.md runs as written: every ``sh`` block, in order, in one shell, on the demo its
step 0 builds (a fresh REINGEST_HOME, on the test's Postgres), except the blocks marked "not
run by the test". Each command must exit 0, and the steps that select the demo's days must find
data there (the runbook's dates once selected nothing)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "runbook.md"
BLOCK = re.compile(r"(?:<!-- (?P<note>[^>]*) -->\n)?```sh\n(?P<body>.*?)```", re.S)
# The runbook's one placeholder, filled as an operator would: the newest reingest_job run's id.
RUN_ID = (
    '"$(reingest runs --json | python -c \'import json, sys; print(next(r["run_id"] for r in '
    'json.load(sys.stdin)["runs"] if r["job"] == "reingest_job"))\')"'
)


def runbook_blocks() -> list[str]:
    blocks = [
        m["body"]
        for m in BLOCK.finditer(RUNBOOK.read_text())
        if not (m["note"] or "").startswith("not run by the test")
    ]
    assert len(blocks) >= 6
    return blocks


def test_the_runbook_runs_on_the_demo(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    script = ["set -euo pipefail", 'reingest() { python -m reingest_assets.cli "$@"; }']
    for i, body in enumerate(runbook_blocks()):
        body = body.replace("/tmp/reingest-try", str(home)).replace("<run id>", RUN_ID)
        script += [f"echo '### block {i}'", f"echo '### block {i}' >&2", body]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REINGEST_", "DAGSTER_"))}
    env.update(
        # The test's Postgres (as step 1 points at real stores) rather than an embedded server
        # started and stopped by each command: quicker, and the same commands.
        REINGEST_DATABASE_URL=pg_url,
        REINGEST_WORKERS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    sections = re.finditer(r"### block (\d+)\n(.*?)(?=### block|\Z)", proc.stdout, re.S)
    out = {m[1]: m[2] for m in sections}
    text = "\n".join(out.values())
    # Step 0: the demo filled the days the examples select.
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        assert f"{day}|pubmed" in out["0"]
    # The dry run planned documents of those days; the SQL step found failure rows there.
    assert re.search(r"2026-11-03\|pubmed\s+0\s+0\s+[1-9]", text), text[-3000:]
    assert re.search(r"\(([1-9]\d*) rows?\)", text)
    # Rollback removed documents, by partition and by run.
    assert "2026-11-03|pubmed: " in text and "document(s) removed" in text
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failed_partitions"] == [] and "2026-11-03|pubmed" in report["partitions"]
    # Quiet: no traceback, no Dagster debug log, no warning (progress lines may show).
    noise = re.compile(r"Traceback|DEBUG|Warning:|STEP_")
    assert not [line for line in proc.stderr.splitlines() if noise.search(line)], proc.stderr

"""The command line starts quickly and quietly: ``--help`` loads neither Dagster nor the stores'
clients and writes nothing to stderr; importing weaviate-client leaves the process's warning
filters as they were and prints no Authlib notice."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("dagster", "weaviate", "psycopg", "boto3", "pyarrow", "rich")


def python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_help_imports_nothing_heavy_and_writes_nothing_to_stderr() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reingest_assets.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert "rollback" in proc.stdout

    proc = python(
        "import sys\n"
        "from reingest_assets.cli import main\n"
        "for argv in (['--help'], ['full', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_importing_weaviate_keeps_the_warning_filters_and_stderr_clean() -> None:
    proc = python(
        "import warnings\n"
        "before = list(warnings.filters)\n"
        "import reingest_assets.resources.stores.weaviate\n"
        "import reingest_assets.resources.weaviate_connection\n"
        "assert warnings.filters == before, warnings.filters[:3]\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""

"""The command line starts quickly and quietly: ``--help`` loads neither Dagster nor the stores'
clients and writes nothing to stderr; ``status`` loads neither the engine nor a client of a store
the settings do not name; importing weaviate-client leaves the process's warning filters as they
were and prints no Authlib notice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from reingest_assets.resources.registry.postgres import PostgresRegistry

HEAVY = ("dagster", "weaviate", "psycopg", "boto3", "pyarrow", "rich")


# What `reingest status` on the local object store and pgvector has no use for.
NOT_FOR_STATUS = (
    "reingest_assets.engine.runner",
    "pyarrow",
    "boto3",
    "botocore",
    "dagster_aws",
    "obstore",
    "weaviate",
    "httpx",
)


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}, **env}
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


def test_status_imports_neither_the_engine_nor_unused_store_clients(
    pg_url: str, tmp_path: Path
) -> None:
    registry = PostgresRegistry(pg_url)
    registry.migrate()
    registry.close()
    proc = python(
        "import sys\n"
        "from reingest_assets.cli import main\n"
        "assert main(['status', '--json']) == 0\n"
        f"print(sorted(m for m in {NOT_FOR_STATUS!r} if m in sys.modules))\n",
        REINGEST_HOME=str(tmp_path / "home"),
        REINGEST_DATABASE_URL=pg_url,
        REINGEST_STORE="pgvector",
        REINGEST_OBJECT_STORE="local",
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

"""Settings from ``REINGEST_*`` environment variables; every default serves the embedded stack.

One setting switches each production part: ``REINGEST_DATABASE_URL`` (any Postgres),
``REINGEST_OBJECT_STORE=s3`` (S3 through dagster-aws), ``REINGEST_STORE=weaviate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"REINGEST_{name}", default)


def _env_list(name: str, default: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in _env(name, default).split(",") if s.strip())


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(_env("HOME", ".reingest")).resolve())
    # Empty: start (or reuse) the embedded Postgres under ``home/pg``.
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", ""))
    object_store: str = field(default_factory=lambda: _env("OBJECT_STORE", "local"))  # local|s3
    bucket: str = field(default_factory=lambda: _env("BUCKET", "reingest"))
    s3_endpoint_url: str = field(default_factory=lambda: _env("S3_ENDPOINT_URL", ""))
    s3_region: str = field(default_factory=lambda: _env("S3_REGION", "us-east-1"))
    store: str = field(default_factory=lambda: _env("STORE", "pgvector"))  # pgvector|weaviate
    sources: tuple[str, ...] = field(default_factory=lambda: _env_list("SOURCES", "pubmed"))
    start_date: str = field(default_factory=lambda: _env("START_DATE", "2026-11-01"))
    batch_size: int = field(default_factory=lambda: int(_env("BATCH_SIZE", "2000")))
    workers: int = field(default_factory=lambda: int(_env("WORKERS", str(os.cpu_count() or 2))))
    max_attempts: int = field(default_factory=lambda: int(_env("MAX_ATTEMPTS", "3")))
    # The repair sensor: seconds between ticks, and whether it starts running (else the UI or
    # ``dagster sensor start`` turns it on).
    repair_interval_seconds: int = field(
        default_factory=lambda: int(_env("REPAIR_INTERVAL", "300"))
    )
    repair_sensor_running: bool = field(
        default_factory=lambda: _env("REPAIR_SENSOR", "stopped") == "running"
    )
    # The daily schedule and the raw_documents observation schedule start running or stopped.
    schedules_running: bool = field(
        default_factory=lambda: _env("SCHEDULES", "stopped") == "running"
    )
    observe_cron: str = field(default_factory=lambda: _env("OBSERVE_CRON", "0 * * * *"))
    # Validation: unresolved failures over a partition's documents above this fail the check.
    max_failure_rate: float = field(default_factory=lambda: float(_env("MAX_FAILURE_RATE", "0.01")))
    validation_sample: int = field(default_factory=lambda: int(_env("VALIDATION_SAMPLE", "20")))

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def objects_dir(self) -> Path:
        return self.home / "objects"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

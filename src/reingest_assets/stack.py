"""The local stack the CLI runs on: database URL, Dagster home and instance, all under
``REINGEST_HOME``. The embedded Postgres starts only when no external database is configured."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from reingest_assets.domain.partition import partition_key
from reingest_assets.resources.embedded_pg import embedded_postgres_url
from reingest_assets.settings import Settings

if TYPE_CHECKING:
    from reingest_assets.resources.object_store import ObjectStore
    from reingest_assets.resources.registry.postgres import PostgresRegistry
    from reingest_assets.synthetic import SyntheticRecord

EVENT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class Stack:
    settings: Settings
    database_url: str

    @property
    def embedded(self) -> bool:
        return not self.settings.database_url


def prepare_stack(settings: Settings | None = None) -> Stack:
    """Make the environment Dagster and the engine read: REINGEST_DATABASE_URL (the embedded
    server's URL when none is configured) and DAGSTER_HOME with the project's dagster.yaml."""
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    url = settings.database_url or embedded_postgres_url(settings.pg_dir)
    os.environ["REINGEST_DATABASE_URL"] = url
    os.environ["REINGEST_DAGSTER_STORAGE_URL"] = dagster_storage_url(url)
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    template = resources.files("reingest_assets").joinpath("dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(template + _storage_section(settings, url))
    os.environ["DAGSTER_HOME"] = str(home)
    # A run over many partitions materializes each one: stored as one batch (one insert and
    # one index transaction per asset), not an event each. Runs launched by `reingest dev`'s
    # daemon inherit it; a deployment sets it on its run workers (docs/scaling.md).
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))
    os.environ.setdefault("REINGEST_HOME", str(settings.home))
    return Stack(settings, url)


# Dagster's storage in the pipeline's database, added to the packaged dagster.yaml. The event
# log keeps its connection open (reingest_assets.dagster_storage): a run over many partitions
# stores several events per partition, and dagster-postgres would connect for each.
STORAGE = """
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config:
    postgres_url:{url}
event_log_storage:
  module: reingest_assets.dagster_storage
  class: PooledPostgresEventLogStorage
  config:
    postgres_url:{url}
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config:
    postgres_url:{url}
"""


def _storage_section(settings: Settings, url: str) -> str:
    """Dagster's storage in the pipeline's database. The embedded server's URL (a socket
    path, no password) is written out, so Dagster's own CLI reaches this instance while the
    server runs (``DAGSTER_HOME=$REINGEST_HOME/dagster dagster job launch ...``); a configured
    database's URL holds a secret and stays in the environment."""
    if settings.database_url:
        source = "\n      env: REINGEST_DAGSTER_STORAGE_URL"
    else:
        source = " " + json.dumps(dagster_storage_url(url))
    return STORAGE.format(url=source)


def dagster_storage_url(url: str) -> str:
    """dagster-postgres speaks psycopg2 (its NOTIFY uses client-side parameters); SQLAlchemy 2.1
    would pick psycopg 3 for a bare ``postgresql://`` URL, so name the driver."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg2://{rest}"
    return url


def partition_dates(settings: Settings, since: str | None, until: str | None) -> list[str]:
    """Daily partition dates within [since, until], clipped to the partitions that exist
    (from the start date to yesterday: a day's partition opens when the day is over)."""
    first = max(
        date.fromisoformat(since or settings.start_date), date.fromisoformat(settings.start_date)
    )
    last = date.today() - timedelta(days=1)
    if until:
        last = min(last, date.fromisoformat(until))
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def run_partitioned_job(
    stack: Stack,
    job_name: str,
    *,
    sources: list[str],
    dates: list[str],
    run_config: dict[str, Any] | None = None,
    logger_defs: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
) -> list[Any]:
    """A partitioned job from the CLI, as a single-run backfill runs it: one in-process run per
    source over the date range, recorded in the Dagster instance. ``logger_defs`` replace the
    job's loggers (the CLI's progress display)."""
    from dagster import DagsterInstance
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from reingest_assets.definitions import defs

    job = defs.resolve_job_def(job_name)
    if logger_defs:
        job = job.with_logger_defs(logger_defs)
    results = []
    with DagsterInstance.get() as instance:
        for source in sources if dates else []:
            results.append(
                job.execute_in_process(
                    instance=instance,
                    run_config=run_config,
                    raise_on_error=raise_on_error,
                    tags={
                        ASSET_PARTITION_RANGE_START_TAG: partition_key(dates[0], source),
                        ASSET_PARTITION_RANGE_END_TAG: partition_key(dates[-1], source),
                        **(tags or {}),
                    },
                )
            )
    return results


def run_totals(results: list[Any]) -> dict[str, dict[str, Any]]:
    """Per asset, the runs' materialization metadata added up: numbers summed, and mappings of
    numbers (stage seconds) summed key by key. Every partition of a range run carries the
    run's totals as ``run_*`` (next to its own figures), so each run counts once, read here
    without the prefix; a one-partition run's figures are its totals."""
    from reingest_assets.metadata import plain

    totals: dict[str, dict[str, Any]] = {}
    for result in results:
        seen: set[str] = set()
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            asset = mat.asset_key.path[-1]
            if asset in seen:
                continue
            seen.add(asset)
            asset_totals = totals.setdefault(asset, {})
            ranged = any(key.startswith("run_") for key in mat.metadata)
            for key, entry in mat.metadata.items():
                if ranged and not key.startswith("run_"):
                    continue
                name = key.removeprefix("run_")
                value = plain(entry)
                if isinstance(value, int | float):
                    asset_totals[name] = asset_totals.get(name, 0.0) + float(value)
                elif isinstance(value, dict) and all(
                    isinstance(v, int | float) for v in value.values()
                ):
                    summed = asset_totals.setdefault(name, {})
                    for k, v in value.items():
                        summed[k] = summed.get(k, 0.0) + v
    return totals


def load_synthetic_corpus(
    stack: Stack,
    docs: int,
    *,
    first_day: date,
    days: int,
    seed: int = 0,
    malformed_rate: float = 0.0,
) -> int:
    """Write a synthetic PubMed-like corpus into the local object store and register it, as the
    existing service would (``updated_at`` at noon of each ingest day). Streams: memory stays
    flat whatever ``docs``. Returns the number of documents registered."""
    from reingest_assets.resources.local_store import LocalObjectStore
    from reingest_assets.resources.registry.postgres import PostgresRegistry
    from reingest_assets.synthetic import generate_corpus

    settings = stack.settings
    records = generate_corpus(
        docs,
        sources=settings.sources,
        start_date=first_day,
        days=days,
        seed=seed,
        malformed_rate=malformed_rate,
    )
    return register_records(
        PostgresRegistry(stack.database_url),
        LocalObjectStore(settings.objects_dir, bucket=settings.bucket),
        settings.bucket,
        records,
    )


def register_records(
    registry: PostgresRegistry,
    objects: ObjectStore,
    bucket: str,
    records: Iterable[SyntheticRecord],
) -> int:
    """Put each record's object into ``bucket`` and register it, as the existing service
    would (``updated_at`` at noon of its ingest day); closes the registry. Streams."""
    registry.migrate()

    def rows() -> Iterator[tuple[Any, ...]]:
        for rec in records:
            uri = f"s3://{bucket}/{rec.key}"
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

    try:
        return registry.upsert_documents(rows())
    finally:
        registry.close()

"""Settings from ``REINGEST_*`` environment variables; every default serves the embedded stack.

One setting switches each production part: ``REINGEST_DATABASE_URL`` (any Postgres),
``REINGEST_OBJECT_STORE=s3`` (S3 through dagster-aws), ``REINGEST_STORE=weaviate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Literal, cast, get_args

from reingest_assets.domain.limits import DocumentLimits, setting
from reingest_assets.resources.stores import COLLECTION

# Variables whose values are secrets: the Dagster resources read them through ``EnvVar`` (the UI
# shows the name, never the value), so settings only record which of them are set.
ObjectStoreKind = Literal["local", "s3"]
StoreKind = Literal["pgvector", "weaviate"]
EmbedderKind = Literal["none", "openai", "sentence-transformers"]
Vectorizer = Literal["text2vec-openai", "text2vec-transformers", "none"]

SECRETS = (
    "REINGEST_DATABASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "REINGEST_WEAVIATE_API_KEY",
    "REINGEST_OPENAI_API_KEY",
    "REINGEST_EMBEDDER_API_KEY",
)


class SettingsError(ValueError):
    """A ``REINGEST_*`` variable holds a value the pipeline cannot use; the message names it."""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"REINGEST_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(
            f"REINGEST_{name}={raw!r} is not a positive whole number: "
            f"set it to one (default {default}) or unset it"
        )
    return value


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _env(name, default)
    if raw not in choices:
        raise SettingsError(
            f"REINGEST_{name}={raw!r} is not one of {', '.join(choices)}: "
            f"set one of them (default {default}) or unset it"
        )
    return raw


def _env_list(name: str, default: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in _env(name, default).split(",") if s.strip())


def _env_rate(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise SettingsError(
            f"REINGEST_{name}={raw!r} is not a fraction between 0 and 1: "
            f"set one (default {default}) or unset it"
        )
    return value


def _env_limits() -> DocumentLimits:
    """Each per-document limit from ``REINGEST_<NAME>``, its default when unset."""
    return DocumentLimits(
        **{
            f.name: _env_int(setting(f.name).removeprefix("REINGEST_"), f.default)
            for f in fields(DocumentLimits)
            if isinstance(f.default, int)
        }
    )


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(_env("HOME", ".reingest")).resolve())
    # Empty: start (or reuse) the embedded Postgres under ``home/pg``.
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", ""))
    object_store: ObjectStoreKind = field(
        default_factory=lambda: cast(
            ObjectStoreKind, _env_choice("OBJECT_STORE", "local", get_args(ObjectStoreKind))
        )
    )
    bucket: str = field(default_factory=lambda: _env("BUCKET", "reingest"))
    s3_endpoint_url: str = field(default_factory=lambda: _env("S3_ENDPOINT_URL", ""))
    s3_region: str = field(default_factory=lambda: _env("S3_REGION", "us-east-1"))
    # pgvector: a GIN full-text index on the chunk text, like Weaviate's searchable text. Off by
    # default: nothing here queries it, and it costs as much database CPU as writing the chunks.
    pgvector_fulltext: bool = field(
        default_factory=lambda: _env_choice("PGVECTOR_FULLTEXT", "off", ("on", "off")) == "on"
    )
    store: StoreKind = field(
        default_factory=lambda: cast(
            StoreKind, _env_choice("STORE", "pgvector", get_args(StoreKind))
        )
    )
    sources: tuple[str, ...] = field(default_factory=lambda: _env_list("SOURCES", "pubmed"))
    start_date: str = field(default_factory=lambda: _env("START_DATE", "2026-11-01"))
    batch_size: int = field(default_factory=lambda: _env_int("BATCH_SIZE", 2000))
    workers: int = field(default_factory=lambda: _env_int("WORKERS", os.cpu_count() or 2))
    max_attempts: int = field(default_factory=lambda: _env_int("MAX_ATTEMPTS", 3))
    # A backfill's runs cover at most this many partitions each (multi-run backfill policy), so
    # the run launcher can spread a history over processes or machines (docs/scaling.md).
    partitions_per_run: int = field(default_factory=lambda: _env_int("PARTITIONS_PER_RUN", 31))
    # The repair sensor: seconds between ticks, and whether it starts running (else the UI or
    # ``dagster sensor start`` turns it on).
    repair_interval_seconds: int = field(default_factory=lambda: _env_int("REPAIR_INTERVAL", 300))
    repair_sensor_running: bool = field(
        default_factory=lambda: _env("REPAIR_SENSOR", "stopped") == "running"
    )
    # The daily schedule and the raw_documents observation schedule start running or stopped.
    schedules_running: bool = field(
        default_factory=lambda: _env("SCHEDULES", "stopped") == "running"
    )
    observe_cron: str = field(default_factory=lambda: _env("OBSERVE_CRON", "0 * * * *"))
    # Validation: unresolved failures over a partition's documents above this fail the check.
    max_failure_rate: float = field(default_factory=lambda: _env_rate("MAX_FAILURE_RATE", 0.01))
    validation_sample: int = field(default_factory=lambda: _env_int("VALIDATION_SAMPLE", 20))
    # Documents per partition whose chunks a materializing run's checks read in full (the ids
    # of every chunk it wrote are always checked); validate_job reads every chunk.
    validation_content_sample: int = field(
        default_factory=lambda: _env_int("VALIDATION_CONTENT_SAMPLE", 1000)
    )
    # Self-provided vectors: the pipeline embeds each chunk (pgvector's vector column, or
    # Weaviate with REINGEST_WEAVIATE_VECTORIZER=none). The API key is read as a secret
    # (REINGEST_EMBEDDER_API_KEY) by the Dagster resource, never kept here.
    embedder: EmbedderKind = field(
        default_factory=lambda: cast(
            EmbedderKind, _env_choice("EMBEDDER", "none", get_args(EmbedderKind))
        )
    )
    embedder_url: str = field(
        default_factory=lambda: _env("EMBEDDER_URL", "https://api.openai.com/v1")
    )
    # Empty: the kind's default model (text-embedding-3-small, all-MiniLM-L6-v2).
    embedder_model: str = field(default_factory=lambda: _env("EMBEDDER_MODEL", ""))
    embedder_dimensions: int = field(default_factory=lambda: _env_int("EMBEDDER_DIMENSIONS", 1536))
    # Weaviate (REINGEST_STORE=weaviate): self-hosted endpoints, or a Weaviate Cloud URL.
    weaviate_http_host: str = field(default_factory=lambda: _env("WEAVIATE_HTTP_HOST", "localhost"))
    weaviate_http_port: int = field(default_factory=lambda: _env_int("WEAVIATE_HTTP_PORT", 8080))
    weaviate_grpc_host: str = field(default_factory=lambda: _env("WEAVIATE_GRPC_HOST", "localhost"))
    weaviate_grpc_port: int = field(default_factory=lambda: _env_int("WEAVIATE_GRPC_PORT", 50051))
    weaviate_cloud_url: str = field(default_factory=lambda: _env("WEAVIATE_CLOUD_URL", ""))
    weaviate_vectorizer: Vectorizer = field(
        default_factory=lambda: cast(
            Vectorizer, _env_choice("WEAVIATE_VECTORIZER", "text2vec-openai", get_args(Vectorizer))
        )
    )
    weaviate_alias: str = field(default_factory=lambda: _env("WEAVIATE_ALIAS", ""))
    weaviate_collection: str = field(
        default_factory=lambda: _env("WEAVIATE_COLLECTION", COLLECTION)
    )
    # Which of SECRETS are set (non-empty); their values stay in the environment.
    secrets_set: frozenset[str] = field(
        default_factory=lambda: frozenset(n for n in SECRETS if os.environ.get(n))
    )

    # Per-document budgets of size and time (docs/configuration.md, "Per-document limits").
    document_limits: DocumentLimits = field(default_factory=_env_limits)

    def __post_init__(self) -> None:
        try:
            date.fromisoformat(self.start_date)
        except ValueError:
            raise SettingsError(
                f"REINGEST_START_DATE={self.start_date!r} is not a date: set it as YYYY-MM-DD"
            ) from None
        if not self.sources:
            raise SettingsError("REINGEST_SOURCES is empty: set a comma-separated list of sources")
        vectorizer = self.weaviate_vectorizer
        if self.store == "weaviate" and self.embedder != "none" and vectorizer != "none":
            raise SettingsError(
                f"REINGEST_EMBEDDER={self.embedder} with REINGEST_WEAVIATE_VECTORIZER="
                f"{vectorizer}: Weaviate would get vectors from two models; set "
                "REINGEST_WEAVIATE_VECTORIZER=none to store the pipeline's vectors, or "
                "REINGEST_EMBEDDER=none to let Weaviate vectorize"
            )

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def objects_dir(self) -> Path:
        return self.home / "objects"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

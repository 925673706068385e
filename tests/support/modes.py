"""Helpers for the mode tests (repair, checks, dry run, rollback): resources over a test database
and a corpus in a local object store, and readers for what the store and the ledger hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from reingest_assets.dagster_resources import (
    ChunkStoreResource,
    ObjectStoreResource,
    PostgresResource,
    ReingestResource,
)
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.pipeline import Corpus


def make_resource(pg_url: str, root: Path, **kwargs: Any) -> ReingestResource:
    return ReingestResource(
        postgres=PostgresResource(url=pg_url),
        object_store=ObjectStoreResource(kind="local", local_root=str(root / "objects")),
        chunk_store=ChunkStoreResource(kind="pgvector"),
        batch_size=kwargs.pop("batch_size", 25),
        workers=kwargs.pop("workers", 1),
        **kwargs,
    )


def make_corpus(pg_url: str, root: Path) -> Corpus:
    """A corpus in a migrated database (registry tables and the pgvector table, as
    ``reingest migrate`` leaves them)."""
    registry = PostgresRegistry(pg_url)
    registry.migrate()
    store = PgVectorChunkStore(pg_url)
    store.ensure_schema()
    store.close()
    return Corpus(registry, LocalObjectStore(root / "objects"))


def ledger(pg_url: str) -> dict[str, tuple[str, str]]:
    """``{uid: (ingest_date, run_id)}`` of every ledger row."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT uid, ingest_date::text, run_id FROM reingest.ledger").fetchall()
    return {uid: (day, run) for uid, day, run in rows}


def failures(pg_url: str) -> list[tuple[Any, ...]]:
    """``(uid, kind, attempts, permanent, resolved_run_id)`` of every failure row, by id."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT uid, kind, attempts, permanent, resolved_run_id"
            " FROM reingest.ingestion_failures ORDER BY id"
        ).fetchall()

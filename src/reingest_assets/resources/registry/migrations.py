"""The pipeline's schema in Postgres: numbered SQL scripts in ``sql/``, applied in order,
each once, recorded in ``reingest.schema_migrations``."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import psycopg

MIGRATIONS_LOCK = 0x7265696E  # "rein": serializes concurrent migrators


def apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending numbered migrations in order, in one transaction, under an advisory lock
    so two runs starting at once apply each exactly once. Returns the ones applied."""
    scripts = sorted(
        (p.name, p.read_text())
        for p in resources.files("reingest_assets.resources.registry.sql").iterdir()
        if p.name.endswith(".sql")
    )
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS reingest")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS reingest.schema_migrations ("
            " name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = dict(
            conn.execute("SELECT name, checksum FROM reingest.schema_migrations").fetchall()
        )
        for name, sql in scripts:
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise RuntimeError(
                        f"migration {name} was changed after it was applied; add a new "
                        "numbered migration instead of editing an applied one"
                    )
                continue
            conn.execute(sql.encode())
            conn.execute(
                "INSERT INTO reingest.schema_migrations (name, checksum) VALUES (%s, %s)",
                (name, checksum),
            )
            applied.append(name)
    return applied

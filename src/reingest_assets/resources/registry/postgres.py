"""The registry in Postgres: the existing ``documents`` table (input), and the pipeline's own
ledger and ``ingestion_failures`` tables (schema ``reingest``, see ``migrations.py``). One class
implements every protocol of ``resources.registry`` on one connection, because writing a
ledger row and resolving that document's failures is one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg.sql import SQL, Composed, Identifier, Placeholder

from reingest_assets.domain.failures import Failure
from reingest_assets.domain.partition import partition_key
from reingest_assets.resources.pg import PgClient, retried, text_array
from reingest_assets.resources.registry import (
    LedgerEntry,
    PartitionCounts,
    RegistryRow,
    RepairableFailure,
    WrittenDocument,
)
from reingest_assets.resources.registry.migrations import apply_migrations

# domain.skip in SQL, over a failure f and a document d: this very content failed as bad data.
KNOWN_BAD_SQL = "f.kind = 'data' AND f.content_hash IS NOT DISTINCT FROM d.content_hash"
# domain.skip.is_unchanged over a document d and its ledger row l (LEFT JOINed on target, uid),
# with the run's chunker version and embedder as %(cv)s and %(eid)s.
UNCHANGED_SQL = f"""(
    COALESCE(l.content_hash = d.content_hash
             AND l.chunker_version = %(cv)s AND l.embedder_id = %(eid)s, false)
    OR EXISTS (SELECT 1 FROM reingest.ingestion_failures f
               WHERE f.uid = d.uid AND f.resolved_at IS NULL AND {KNOWN_BAD_SQL}))"""


def _day_bounds(ingest_date: str) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(ingest_date), datetime.min.time(), UTC)
    return start, start + timedelta(days=1)


class PostgresRegistry(PgClient):
    """The registry database: one connection, every call retried across server restarts."""

    @retried
    def migrate(self) -> list[str]:
        """Apply pending schema migrations; returns the ones applied."""
        return apply_migrations(self.conn)

    # -- input: the documents of a partition --------------------------------------------------

    def iter_partition(
        self,
        source: str,
        ingest_date: str,
        *,
        target: str,
        chunker_version: str,
        embedder_id: str,
        batch_size: int,
        uids: Sequence[str] | None = None,
        last_date: str | None = None,
    ) -> Iterator[list[RegistryRow]]:
        """Each page one query on documents_source_updated_uid_idx, joined with the ledger (the
        skip check is set-based, never per document)."""
        start, _ = _day_bounds(ingest_date)
        _, end = _day_bounds(last_date or ingest_date)
        last: tuple[datetime, str] = (start - timedelta(microseconds=1), "")
        uid_filter = "AND d.uid = ANY(%(uids)s::text[])" if uids is not None else ""
        sql = f"""
            SELECT d.uid, d.source, d.source_id, d.s3_raw_uri, d.content_hash, d.updated_at,
                   {UNCHANGED_SQL}
            FROM documents d
            LEFT JOIN reingest.ledger l ON l.target = %(target)s AND l.uid = d.uid
            WHERE d.source = %(source)s
              AND d.updated_at >= %(start)s AND d.updated_at < %(end)s
              AND (d.updated_at, d.uid) > (%(last_ts)s, %(last_uid)s)
              {uid_filter}
            ORDER BY d.updated_at, d.uid
            LIMIT %(limit)s
        """
        params: dict[str, Any] = {
            "cv": chunker_version,
            "eid": embedder_id,
            "target": target,
            "source": source,
            "start": start,
            "end": end,
            "limit": batch_size,
            "uids": text_array(uids) if uids is not None else None,
        }
        while True:
            params["last_ts"], params["last_uid"] = last
            rows = [RegistryRow(*r) for r in self._fetch_all(sql, params)]
            if not rows:
                return
            yield rows
            last = (rows[-1].updated_at, rows[-1].uid)
            if len(rows) < batch_size:
                return

    def upsert_documents(self, rows: Iterable[tuple[Any, ...]]) -> int:
        """COPY into a temporary table, then one upsert. Streams; not retried (the rows are
        an iterator: a retry could not send them again)."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS documents_in (LIKE documents) ON COMMIT DROP"
            )
            n = 0
            with cur.copy("COPY documents_in FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
            cur.execute(
                """
                INSERT INTO documents SELECT * FROM documents_in
                ON CONFLICT (uid) DO UPDATE SET
                    source = EXCLUDED.source, source_id = EXCLUDED.source_id,
                    title = EXCLUDED.title, published_at = EXCLUDED.published_at,
                    s3_raw_uri = EXCLUDED.s3_raw_uri, content_hash = EXCLUDED.content_hash,
                    updated_at = EXCLUDED.updated_at
                WHERE documents.content_hash IS DISTINCT FROM EXCLUDED.content_hash
                """
            )
        return n

    @retried
    def _fetch_all(self, query: str | Composed, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """One page of a keyset walk: each page is retried, the walk resumes where it was."""
        return self.conn.execute(
            query.encode() if isinstance(query, str) else query, params
        ).fetchall()

    @retried
    def partition_summary(self, source: str, ingest_date: str) -> tuple[int, str | None]:
        start, end = _day_bounds(ingest_date)
        row = self.conn.execute(
            """
            SELECT count(*),
                   md5(string_agg(uid || ':' || coalesce(content_hash, ''), ',' ORDER BY uid))
            FROM documents
            WHERE source = %s AND updated_at >= %s AND updated_at < %s
            """,
            (source, start, end),
        ).fetchone()
        assert row is not None
        count, digest = row
        return int(count), digest

    @retried
    def partition_summaries(self, sources: Sequence[str], since: str) -> dict[str, tuple[int, str]]:
        """One grouped scan."""
        rows = self.conn.execute(
            """
            SELECT (updated_at AT TIME ZONE 'UTC')::date::text AS day, source, count(*),
                   md5(string_agg(uid || ':' || coalesce(content_hash, ''), ',' ORDER BY uid))
            FROM documents
            WHERE source = ANY(%s) AND updated_at >= %s
            GROUP BY 1, 2
            """,
            (list(sources), _day_bounds(since)[0]),
        ).fetchall()
        return {
            partition_key(day, source): (int(n), str(digest)) for day, source, n, digest in rows
        }

    # -- the ledger ---------------------------------------------------------------------------

    @retried
    def ledger_lookup(self, target: str, uids: Sequence[str]) -> dict[str, LedgerEntry]:
        rows = self.conn.execute(
            "SELECT uid, source, ingest_date::text, content_hash, chunker_version, embedder_id,"
            " chunk_uuids::text[] FROM reingest.ledger WHERE target = %s AND uid = ANY(%s::text[])",
            (target, text_array(uids)),
        ).fetchall()
        return {r[0]: LedgerEntry._make(r) for r in rows}

    @retried
    def removed_documents(self, target: str, source: str, ingest_date: str) -> list[str]:
        rows = self.conn.execute(
            """
            SELECT l.uid FROM reingest.ledger l
            WHERE l.target = %s AND l.source = %s AND l.ingest_date = %s
              AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.uid = l.uid)
            """,
            (target, source, ingest_date),
        ).fetchall()
        return [r[0] for r in rows]

    @retried
    def removed_documents_by_date(
        self, target: str, source: str, first_date: str, last_date: str
    ) -> dict[str, list[str]]:
        """One query for the range."""
        rows = self.conn.execute(
            """
            SELECT l.ingest_date::text, l.uid FROM reingest.ledger l
            WHERE l.target = %s AND l.source = %s AND l.ingest_date BETWEEN %s AND %s
              AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.uid = l.uid)
            """,
            (target, source, first_date, last_date),
        ).fetchall()
        removed: dict[str, list[str]] = {}
        for day, uid in rows:
            removed.setdefault(day, []).append(uid)
        return removed

    @retried
    def run_touched_dates(self, target: str, source: str, run_id: str) -> dict[str, int]:
        rows = self.conn.execute(
            """
            SELECT ingest_date::text, count(*) FROM reingest.ledger
            WHERE run_id = %(run)s AND target = %(target)s AND source = %(source)s GROUP BY 1
            UNION ALL
            SELECT DISTINCT ingest_date::text, 0 FROM reingest.ingestion_failures
            WHERE run_id = %(run)s AND source = %(source)s
            """,
            {"run": run_id, "target": target, "source": source},
        ).fetchall()
        touched: dict[str, int] = {}
        for day, written in rows:
            touched[day] = touched.get(day, 0) + int(written)
        return touched

    def iter_run_ledger(
        self, target: str, source: str, run_id: str, *, batch_size: int = 1000
    ) -> Iterator[list[LedgerEntry]]:
        """Keyset-paginated on ledger_run_partition_uid_idx."""
        params: dict[str, Any] = {
            "run": run_id,
            "target": target,
            "source": source,
            "limit": batch_size,
            "day": date.min,
            "uid": "",
        }
        sql = (
            "SELECT uid, source, ingest_date::text, content_hash, chunker_version,"
            " embedder_id, chunk_uuids::text[] FROM reingest.ledger"
            " WHERE run_id = %(run)s AND target = %(target)s AND source = %(source)s"
            " AND (ingest_date, uid) > (%(day)s, %(uid)s)"
            " ORDER BY ingest_date, uid LIMIT %(limit)s"
        )
        while True:
            rows = self._fetch_all(sql, params)
            if not rows:
                return
            yield [LedgerEntry._make(r) for r in rows]
            params["day"], params["uid"] = date.fromisoformat(rows[-1][2]), rows[-1][0]
            if len(rows) < batch_size:
                return

    @retried
    def failure_counts_by_date(
        self, source: str, first_date: str, last_date: str
    ) -> dict[str, dict[str, int]]:
        rows = self.conn.execute(
            """
            SELECT ingest_date::text, CASE WHEN permanent THEN 'permanent' ELSE 'open' END,
                   count(*)
            FROM reingest.ingestion_failures
            WHERE source = %s AND ingest_date BETWEEN %s AND %s AND resolved_at IS NULL
            GROUP BY 1, 2
            """,
            (source, first_date, last_date),
        ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for day, kind, n in rows:
            counts.setdefault(day, {})[kind] = int(n)
        return counts

    @retried
    def forget(self, target: str, uids: Sequence[str]) -> None:
        self.conn.execute(
            "DELETE FROM reingest.ledger WHERE target = %s AND uid = ANY(%s::text[])",
            (target, text_array(uids)),
        )

    @retried
    def record_written(
        self,
        target: str,
        entries: Sequence[WrittenDocument],
        *,
        chunker_version: str,
        embedder_id: str,
        run_id: str,
    ) -> None:
        """COPY into a temporary table, then the upsert and the failures' resolution in the
        same transaction."""
        if not entries:
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ledger_in (uid text, source text,"
                " ingest_date date, content_hash text, chunk_uuids uuid[]) ON COMMIT DELETE ROWS"
            )
            with cur.copy(
                "COPY ledger_in (uid, source, ingest_date, content_hash, chunk_uuids) FROM STDIN"
            ) as copy:
                for uid, source, ingest_date, content_hash, uuids in entries:
                    # uuids as an array literal: psycopg's list dumper costs more than the row
                    uuid_array = "{" + ",".join(uuids) + "}"
                    copy.write_row((uid, source, ingest_date, content_hash, uuid_array))
            cur.execute(
                """
                INSERT INTO reingest.ledger AS l (target, uid, source, ingest_date, content_hash,
                    chunker_version, embedder_id, chunk_uuids, run_id, written_at)
                SELECT %(target)s, uid, source, ingest_date, content_hash, %(cv)s, %(eid)s,
                       chunk_uuids, %(run)s, now()
                FROM ledger_in
                ON CONFLICT (target, uid) DO UPDATE SET
                    source = EXCLUDED.source, ingest_date = EXCLUDED.ingest_date,
                    content_hash = EXCLUDED.content_hash,
                    chunker_version = EXCLUDED.chunker_version,
                    embedder_id = EXCLUDED.embedder_id, chunk_uuids = EXCLUDED.chunk_uuids,
                    run_id = EXCLUDED.run_id, written_at = EXCLUDED.written_at
                """,
                {"target": target, "cv": chunker_version, "eid": embedder_id, "run": run_id},
            )
            cur.execute(
                """
                UPDATE reingest.ingestion_failures f
                SET resolved_at = now(), resolved_run_id = %s
                FROM ledger_in i
                WHERE f.uid = i.uid AND f.resolved_at IS NULL
                """,
                (run_id,),
            )

    # -- failures -----------------------------------------------------------------------------

    @retried
    def record_failures(
        self, failures: Sequence[Failure], *, run_id: str, max_attempts: int, repair: bool = False
    ) -> int:
        """One upsert on ingestion_failures_open_uid_idx (one open failure per document)."""
        rows = [
            {
                "uid": f.uid,
                "source": f.source,
                "ingest_date": f.ingest_date,
                "stage": f.stage,
                "kind": f.kind,
                "error_class": f.error_class,
                "message": f.message,
                "content_hash": f.content_hash,
                "run_id": run_id,
                "repairs": int(repair),
                "max": max_attempts,
            }
            for f in failures
        ]
        if not rows:
            return 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO reingest.ingestion_failures AS f (uid, source, ingest_date, stage, kind,
                    error_class, message, content_hash, run_id, repair_attempts, permanent)
                VALUES (%(uid)s, %(source)s, %(ingest_date)s, %(stage)s, %(kind)s,
                        %(error_class)s, %(message)s, %(content_hash)s, %(run_id)s,
                        %(repairs)s, %(repairs)s >= %(max)s)
                ON CONFLICT (uid) WHERE resolved_at IS NULL DO UPDATE SET
                    stage = EXCLUDED.stage, kind = EXCLUDED.kind,
                    error_class = EXCLUDED.error_class, message = EXCLUDED.message,
                    content_hash = EXCLUDED.content_hash, run_id = EXCLUDED.run_id,
                    attempts = f.attempts + 1, last_seen = now(),
                    repair_attempts = f.repair_attempts + %(repairs)s,
                    permanent = f.permanent OR f.repair_attempts + %(repairs)s >= %(max)s
                """,
                rows,
            )
        return len(rows)

    @retried
    def failure_counts(self, source: str, ingest_date: str) -> dict[str, int]:
        rows = self.conn.execute(
            """
            SELECT CASE WHEN permanent THEN 'permanent' ELSE 'open' END, count(*)
            FROM reingest.ingestion_failures
            WHERE source = %s AND ingest_date = %s AND resolved_at IS NULL
            GROUP BY 1
            """,
            (source, ingest_date),
        ).fetchall()
        return {k: int(v) for k, v in rows}

    # -- repair, validation, rollback, status -------------------------------------------------

    @retried
    def repairable_failures(self, *, limit: int = 10_000) -> list[RepairableFailure]:
        rows = self.conn.execute(
            f"""
            SELECT f.id, f.uid, d.source, (d.updated_at AT TIME ZONE 'UTC')::date::text,
                   f.kind, f.repair_attempts
            FROM reingest.ingestion_failures f
            JOIN documents d ON d.uid = f.uid
            WHERE f.resolved_at IS NULL AND NOT f.permanent AND NOT ({KNOWN_BAD_SQL})
            ORDER BY 3, 4, f.uid
            LIMIT %s
            """,
            (limit,),
        ).fetchall()
        return [RepairableFailure(*r) for r in rows]

    @retried
    def unresolved_failure_uids(self, uids: Sequence[str]) -> set[str]:
        rows = self.conn.execute(
            "SELECT uid FROM reingest.ingestion_failures"
            " WHERE resolved_at IS NULL AND uid = ANY(%s::text[])",
            (text_array(uids),),
        ).fetchall()
        return {r[0] for r in rows}

    def iter_ledger(
        self,
        target: str,
        *,
        source: str | None = None,
        ingest_date: str | None = None,
        run_id: str | None = None,
        batch_size: int = 1000,
    ) -> Iterator[list[LedgerEntry]]:
        # Only the filters given, so each shape gets a plan on its index (ledger_partition_uid_idx,
        # ledger_run_partition_uid_idx); "(x IS NULL OR col = x)" would defeat them.
        filters = {"target": target, "source": source, "ingest_date": ingest_date, "run_id": run_id}
        given = {column: value for column, value in filters.items() if value is not None}
        where = SQL(" AND ").join(
            SQL("{} = {}").format(Identifier(column), Placeholder(column)) for column in given
        )
        query = SQL(
            "SELECT uid, source, ingest_date::text, content_hash, chunker_version, embedder_id,"
            " chunk_uuids::text[] FROM reingest.ledger WHERE {} AND uid > %(last)s"
            " ORDER BY uid LIMIT %(limit)s"
        ).format(where)
        params: dict[str, Any] = {**given, "limit": batch_size, "last": ""}
        while True:
            rows = self._fetch_all(query, params)
            if not rows:
                return
            yield [LedgerEntry._make(r) for r in rows]
            params["last"] = rows[-1][0]
            if len(rows) < batch_size:
                return

    @retried
    def partition_status(
        self,
        target: str,
        sources: Sequence[str],
        since: str,
        until: str,
        *,
        chunker_version: str,
        embedder_id: str,
    ) -> dict[str, PartitionCounts]:
        """Three grouped scans, whatever the partition count."""
        start, _ = _day_bounds(since)
        _, end = _day_bounds(until)
        counts: dict[str, PartitionCounts] = {}

        def at(day: str, source: str) -> PartitionCounts:
            return counts.setdefault(partition_key(day, source), PartitionCounts())

        for day, source, n, pending in self.conn.execute(
            f"""
            SELECT (d.updated_at AT TIME ZONE 'UTC')::date::text, d.source, count(*),
                   count(*) FILTER (WHERE NOT {UNCHANGED_SQL})
            FROM documents d
            LEFT JOIN reingest.ledger l ON l.target = %(target)s AND l.uid = d.uid
            WHERE d.source = ANY(%(sources)s) AND d.updated_at >= %(start)s
              AND d.updated_at < %(end)s
            GROUP BY 1, 2
            """,
            {
                "cv": chunker_version,
                "eid": embedder_id,
                "target": target,
                "sources": list(sources),
                "start": start,
                "end": end,
            },
        ).fetchall():
            entry = at(day, source)
            entry.documents, entry.pending = int(n), int(pending)
        for day, source, n, chunks in self.conn.execute(
            """
            SELECT ingest_date::text, source, count(*), sum(cardinality(chunk_uuids))
            FROM reingest.ledger
            WHERE target = %s AND source = ANY(%s) AND ingest_date >= %s AND ingest_date < %s
            GROUP BY 1, 2
            """,
            (target, list(sources), start.date(), end.date()),
        ).fetchall():
            entry = at(day, source)
            entry.ledger_documents, entry.ledger_chunks = int(n), int(chunks or 0)
        for day, source, open_, permanent in self.conn.execute(
            """
            SELECT ingest_date::text, source, count(*) FILTER (WHERE NOT permanent),
                   count(*) FILTER (WHERE permanent)
            FROM reingest.ingestion_failures
            WHERE resolved_at IS NULL AND source = ANY(%s)
              AND ingest_date >= %s AND ingest_date < %s
            GROUP BY 1, 2
            """,
            (list(sources), start.date(), end.date()),
        ).fetchall():
            entry = at(day, source)
            entry.open_failures, entry.permanent_failures = int(open_), int(permanent)
        return counts

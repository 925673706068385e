"""DocumentChunk_v2 in Postgres with pgvector: the local (embedded) chunk store.

Same properties as the Weaviate collection, a nullable vector column (filled only when an
embedder is configured) and, when turned on, a full-text index over the text (Weaviate's
searchable text). The index is the setting's: turned off, an existing one is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import sql

from reingest_assets.domain.document import Chunk
from reingest_assets.resources.pg import PgClient, retried, text_array
from reingest_assets.resources.stores import StoredChunk

COLUMNS = (
    "uuid",
    "parent_uid",
    "source",
    "title",
    "text",
    "section",
    "published_at",
    "year",
    "tokens",
    "n_sentences",
    "quality_total",
    "meta",
    "vector",
)


def encode_rows(chunks: Sequence[Chunk]) -> bytes:
    """The chunks as lines of COPY's text format, in COLUMNS order, with no vector: what
    ``upsert_encoded`` sends. Pure, so worker processes run it."""
    lines = []
    for c in chunks:
        fields = (
            c.uuid,
            _copy_text(c.parent_uid),
            _copy_text(c.source),
            _copy_text(c.title),
            _copy_text(c.text),
            _COPY_NULL if c.section is None else _copy_text(c.section),
            _COPY_NULL if c.published_at is None else _copy_text(c.published_at),
            _COPY_NULL if c.year is None else str(c.year),
            str(c.tokens),
            str(c.n_sentences),
            repr(float(c.quality_total)),
            _copy_text(orjson.dumps(c.meta).decode()),
            _COPY_NULL,
        )
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode()


_COPY_NULL = "\\N"


def _copy_text(value: str) -> str:
    # COPY's text format: backslash, newline, carriage return and the delimiter are escaped.
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )


# A store session that wrote this many rows runs ANALYZE when it finishes. A first load leaves
# the table without statistics, and the planner then estimates "parent_uid = ANY(1,000 uids)" as
# the whole table and scans all of it, for every page of the checks that run seconds later
# (autovacuum gets there, but only minutes later). Only parent_uid, the column every lookup
# filters on: statistics of the text columns cost four times as much to gather.
ANALYZE_AFTER_ROWS = 10_000


class PgVectorChunkStore(PgClient):
    name = "pgvector"
    # The workers' encoding of chunks for upsert_encoded (see EncodingChunkStore).
    encode_chunks = staticmethod(encode_rows)

    def __init__(
        self,
        url: str,
        *,
        table: str = "document_chunk_v2",
        schema: str = "reingest",
        fulltext: bool = False,
    ):
        super().__init__(url)
        self.fulltext = fulltext
        self.table = sql.Identifier(schema, table)
        self.target = f"pgvector:{schema}.{table}"
        self._schema = schema
        self._table_name = table
        self._cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        self._fts_index = f"{table}_fts_idx"
        self._fts_deferred = False
        self._copy_first = True
        self._rows_written = 0

    @retried
    def ensure_schema(self) -> None:
        index = sql.Identifier(f"{self._table_name}_parent_uid_idx")
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.target,))
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            self.conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema))
            )
            self.conn.execute(
                sql.SQL(
                    """
                    CREATE TABLE IF NOT EXISTS {} (
                        uuid           uuid PRIMARY KEY,
                        parent_uid     text NOT NULL,
                        source         text NOT NULL,
                        title          text,
                        text           text NOT NULL,
                        section        text,
                        published_at   date,
                        year           integer,
                        tokens         integer NOT NULL,
                        n_sentences    integer NOT NULL,
                        quality_total  double precision,
                        meta           jsonb NOT NULL,
                        vector         vector
                    )
                    """
                ).format(self.table)
            )
            self.conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (parent_uid)").format(
                    index, self.table
                )
            )
            # First load into an empty collection: build the full-text index once at the end
            # (close), in bulk, at half the cost of maintaining it row by row. A run killed before
            # that leaves data without the index; the next ensure_schema builds it.
            row = self.conn.execute(
                sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(self.table)
            ).fetchone()
            self._fts_deferred = self.fulltext and bool(row and row[0])
            if self.fulltext and not self._fts_deferred:
                self._create_fts_index()
            else:
                self.conn.execute(
                    sql.SQL("DROP INDEX IF EXISTS {}").format(
                        sql.Identifier(self._schema, self._fts_index)
                    )
                )

    def _create_fts_index(self) -> None:
        # 'simple' (lowercased words, no stemming) matches Weaviate's word tokenization and
        # costs a third of 'english'; a large pending list batches later GIN maintenance.
        self.conn.execute("SET maintenance_work_mem = '256MB'")
        self.conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {} ON {} USING gin (to_tsvector('simple', text))"
                " WITH (gin_pending_list_limit = 65536)"
            ).format(sql.Identifier(self._fts_index), self.table)
        )

    @retried
    def finish(self) -> None:
        """Build what a first load deferred, and refresh statistics after a large write.
        Idempotent."""
        if self._fts_deferred:
            self._create_fts_index()
            self._fts_deferred = False
        if self._rows_written >= ANALYZE_AFTER_ROWS:
            self.conn.execute(sql.SQL("ANALYZE {} (parent_uid)").format(self.table))
            self._rows_written = 0

    def close(self) -> None:
        try:
            self.finish()
        finally:
            super().close()

    @retried
    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]] | None = None
    ) -> dict[str, str]:
        """All-or-nothing per call: either every chunk landed or it raises.

        New chunks are COPYed straight into the table (the fast path of a first load). If any
        of them already exists (a re-run, a crash, an edited document), the COPY aborts and the
        batch goes through a temp table and one INSERT .. ON CONFLICT instead, and so does
        every later batch of this store: a collection that holds data is overwritten.
        """
        if not chunks:
            return {}
        rows = [_row(c, vectors[i] if vectors is not None else None) for i, c in enumerate(chunks)]

        def write(copy: psycopg.Copy) -> None:
            for row in rows:
                copy.write_row(row)

        self._copy_upsert(write, len(rows))
        return {}

    @retried
    def upsert_encoded(self, payload: bytes) -> dict[str, str]:
        """``upsert`` of rows from ``encode_rows``, sent as they are."""
        if payload:
            self._copy_upsert(lambda copy: copy.write(payload), payload.count(b"\n"))
        return {}

    def _copy_upsert(self, write: Callable[[psycopg.Copy], None], rows: int) -> None:
        if self._copy_first:
            try:
                with (
                    self.conn.transaction(),
                    self.conn.cursor() as cur,
                    cur.copy(
                        sql.SQL("COPY {} ({}) FROM STDIN").format(self.table, self._cols)
                    ) as copy,
                ):
                    write(copy)
                self._rows_written += rows
                return
            except psycopg.errors.UniqueViolation:
                self._copy_first = False
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS chunks_in (LIKE {} INCLUDING DEFAULTS)"
                    " ON COMMIT DELETE ROWS"
                ).format(self.table)
            )
            with cur.copy(sql.SQL("COPY chunks_in ({}) FROM STDIN").format(self._cols)) as copy:
                write(copy)
            cur.execute(
                sql.SQL(
                    "INSERT INTO {t} ({cols}) SELECT {cols} FROM chunks_in"
                    " ON CONFLICT (uuid) DO UPDATE SET {updates}"
                ).format(
                    t=self.table,
                    cols=self._cols,
                    updates=sql.SQL(", ").join(
                        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                        for c in COLUMNS[1:]
                    ),
                )
            )
        self._rows_written += rows

    @retried
    def delete(self, uuids: Sequence[str]) -> int:
        if not uuids:
            return 0
        cur = self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE uuid = ANY(%s::uuid[])").format(self.table),
            (list(uuids),),
        )
        return cur.rowcount

    @retried
    def delete_parents(self, parent_uids: Sequence[str]) -> int:
        if not parent_uids:
            return 0
        cur = self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE parent_uid = ANY(%s::text[])").format(self.table),
            (text_array(parent_uids),),
        )
        return cur.rowcount

    @retried
    def count(self, parent_uids: Sequence[str] | None = None) -> int:
        if parent_uids is None:
            row = self.conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(self.table)
            ).fetchone()
        else:
            row = self.conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE parent_uid = ANY(%s::text[])").format(
                    self.table
                ),
                (text_array(parent_uids),),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def fetch(self, parent_uids: Sequence[str]) -> Iterator[StoredChunk]:
        props = COLUMNS[1:-1]
        for row in self._fetch_rows(parent_uids):
            values = dict(zip(props, row[1:], strict=True))
            if values["published_at"] is not None:
                values["published_at"] = values["published_at"].isoformat()
            yield StoredChunk(uuid=row[0], parent_uid=values["parent_uid"], properties=values)

    @retried
    def fetch_ids(self, parent_uids: Sequence[str]) -> Iterator[tuple[str, str]]:
        rows = self.conn.execute(
            sql.SQL(
                "SELECT uuid::text, parent_uid FROM {} WHERE parent_uid = ANY(%s::text[])"
            ).format(self.table),
            (text_array(parent_uids),),
        ).fetchall()
        return iter(rows)

    @retried
    def _fetch_rows(self, parent_uids: Sequence[str]) -> list[tuple[Any, ...]]:
        props = COLUMNS[1:-1]
        return self.conn.execute(
            sql.SQL("SELECT uuid::text, {} FROM {} WHERE parent_uid = ANY(%s::text[])").format(
                sql.SQL(", ").join(map(sql.Identifier, props)), self.table
            ),
            (text_array(parent_uids),),
        ).fetchall()


def _row(c: Chunk, vector: Sequence[float] | None) -> tuple[Any, ...]:
    return (
        c.uuid,
        c.parent_uid,
        c.source,
        c.title,
        c.text,
        c.section,
        c.published_at,
        c.year,
        c.tokens,
        c.n_sentences,
        c.quality_total,
        orjson.dumps(c.meta).decode(),
        "[" + ",".join(map(repr, vector)) + "]" if vector is not None else None,
    )

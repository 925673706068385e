"""The ChunkStore contract against PgVectorChunkStore on a real Postgres with pgvector."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from reingest_assets.resources.stores import ChunkStore, EncodingChunkStore
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.store_contract import StoreContract, make_chunks


class TestPgVectorContract(StoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[ChunkStore]:
        store = PgVectorChunkStore(pg_url)
        store.ensure_schema()
        try:
            yield store
        finally:
            store.close()


HOSTILE_TEXTS = [
    "tab\there, newline\nthere, carriage\rreturn",
    "back\\slash, \\N, \\t and a lone \\",
    "\\.",  # COPY's end-of-data marker, alone on a line
    'quotes " \' and json {"a": "\\u00e9"}',
    "unicode: β-cell, 10 µM, 中文, emoji 🧬, \u2028 separator",
]


def test_chunks_encoded_by_workers_store_exactly_what_upsert_stores(pg_url: str) -> None:
    store = PgVectorChunkStore(pg_url)
    store.ensure_schema()
    try:
        chunks = []
        for i, text in enumerate(HOSTILE_TEXTS):
            [chunk] = make_chunks(f"pubmed:{i}", 1, text=text)
            meta = {**chunk.meta, "src": {"pubmed": {"journal": text, "doi": None}}}
            chunks.append(replace(chunk, title=text, section=text if i % 2 else None, meta=meta))
        chunks.append(replace(make_chunks("pubmed:99", 1)[0], published_at=None, year=None))
        assert isinstance(store, EncodingChunkStore)
        payload = b"".join(PgVectorChunkStore.encode_chunks([c]) for c in chunks)
        assert store.upsert_encoded(payload) == {}
        stored = {s.uuid: s for s in store.fetch([c.parent_uid for c in chunks])}
        assert {u: s.properties for u, s in stored.items()} == {
            c.uuid: c.properties() for c in chunks
        }
        # over existing rows (the temp table path), the same
        assert store.upsert_encoded(payload) == {}
        assert store.count() == len(chunks)
    finally:
        store.close()


def test_a_large_write_leaves_the_table_with_planner_statistics(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without statistics the planner scans the whole table for every "parent_uid = ANY(...)"
    # page of the checks that follow a first load.
    monkeypatch.setattr("reingest_assets.resources.stores.pgvector.ANALYZE_AFTER_ROWS", 6)
    store = PgVectorChunkStore(pg_url)
    store.ensure_schema()
    try:

        def analyzed() -> bool:
            row = store.conn.execute(
                "SELECT reltuples >= 0 FROM pg_class"
                " WHERE oid = 'reingest.document_chunk_v2'::regclass"
            ).fetchone()
            return bool(row and row[0])

        store.upsert(make_chunks("pubmed:1", 5))
        store.finish()
        assert not analyzed()  # a small write leaves statistics to autovacuum
        store.upsert_encoded(PgVectorChunkStore.encode_chunks(make_chunks("pubmed:2", 1)))
        store.finish()
        assert analyzed()
    finally:
        store.close()

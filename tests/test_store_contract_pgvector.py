"""The ChunkStore contract against PgVectorChunkStore on a real Postgres with pgvector."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reingest_assets.resources.stores import ChunkStore
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from store_contract import StoreContract


class TestPgVectorContract(StoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[ChunkStore]:
        store = PgVectorChunkStore(pg_url)
        store.ensure_schema()
        try:
            yield store
        finally:
            store.close()

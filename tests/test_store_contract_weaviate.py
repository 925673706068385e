"""The ChunkStore contract against WeaviateChunkStore (fake server, or WEAVIATE_URL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reingest_assets.resources.stores import ChunkStore
from reingest_assets.resources.stores.weaviate import WeaviateChunkStore
from support.store_contract import StoreContract
from support.weaviate_target import WeaviateTarget


class TestWeaviateContract(StoreContract):
    @pytest.fixture
    def store(self, target: WeaviateTarget) -> Iterator[ChunkStore]:
        client = target.connect()
        name = target.unique_name()
        store = WeaviateChunkStore(
            client, collection=name, vectorizer="none", retry_base_delay=0.01
        )
        store.ensure_schema()
        try:
            yield store
        finally:
            client.collections.delete(name)
            store.close()

"""The ChunkStore contract against MemoryChunkStore, the store of the engine tests that run
without a database."""

from __future__ import annotations

import pytest

from reingest_assets.resources.stores import ChunkStore
from reingest_assets.resources.stores.memory import MemoryChunkStore
from support.store_contract import StoreContract


class TestMemoryContract(StoreContract):
    @pytest.fixture
    def store(self) -> ChunkStore:
        return MemoryChunkStore()

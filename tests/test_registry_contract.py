"""The registry contract (``support.registry_contract``) against both registries: Postgres
(embedded, a fresh database per test) and the in-memory one the engine tests use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from reingest_assets.resources.registry import Registry
from reingest_assets.resources.registry.memory import MemoryRegistry
from reingest_assets.resources.registry.postgres import PostgresRegistry
from support.registry_contract import RegistryContract


class TestPostgresRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, pg_url: str) -> Iterator[Registry]:
        registry = PostgresRegistry(pg_url)
        registry.migrate()
        try:
            yield registry
        finally:
            registry.close()

    def drop_documents(self, registry: Registry, uids: Sequence[str]) -> None:
        assert isinstance(registry, PostgresRegistry)
        registry.conn.execute("DELETE FROM documents WHERE uid = ANY(%s)", (list(uids),))


class TestMemoryRegistry(RegistryContract):
    @pytest.fixture
    def registry(self) -> Registry:
        return MemoryRegistry()

    def drop_documents(self, registry: Registry, uids: Sequence[str]) -> None:
        assert isinstance(registry, MemoryRegistry)
        for uid in uids:
            del registry.documents[uid]

"""The Dagster resources own configuration and lifecycle: typed fields from the REINGEST_*
settings (a bad value names the variable), adapters opened once per step and closed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import materialize

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.checks import document_chunks_v2_validation
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from reingest_assets.settings import Settings, SettingsError
from support.modes import make_corpus, make_resource
from support.pipeline import record


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REINGEST_WEAVIATE_HTTP_PORT", "http"),
        ("REINGEST_WEAVIATE_GRPC_PORT", "-1"),
        ("REINGEST_WEAVIATE_VECTORIZER", "text2vec-cohere"),
        ("REINGEST_EMBEDDER", "word2vec"),
    ],
)
def test_a_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        Settings()


def test_resources_carry_every_setting_and_secrets_only_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REINGEST_HOME", str(tmp_path))
    monkeypatch.setenv("REINGEST_SOURCES", "pubmed,pmc")
    monkeypatch.setenv("REINGEST_MAX_FAILURE_RATE", "0.2")
    monkeypatch.setenv("REINGEST_WEAVIATE_HTTP_PORT", "8181")
    monkeypatch.setenv("REINGEST_WEAVIATE_API_KEY", "key-value")
    resource = ReingestResource.from_settings(Settings())
    assert resource.sources == ["pubmed", "pmc"]
    assert resource.max_failure_rate == 0.2
    assert resource.chunk_store.weaviate_http_port == 8181
    assert resource.postgres.embedded_dir == str(tmp_path / "pg")
    config = str(resource._convert_to_config_dictionary())
    assert "REINGEST_WEAVIATE_API_KEY" in config and "key-value" not in config


def test_adapters_open_once_per_run_and_close_once(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = make_corpus(pg_url, tmp_path)
    for pmid in range(1, 6):
        corpus.put_record(record(pmid))
    events: list[str] = []

    def counted(cls: type[Any], what: str) -> None:
        init, close = cls.__init__, cls.close

        def counted_init(self: Any, *args: Any, **kwargs: Any) -> None:
            events.append(f"{what} open")
            init(self, *args, **kwargs)

        def counted_close(self: Any) -> None:
            events.append(f"{what} close")
            close(self)

        monkeypatch.setattr(cls, "__init__", counted_init)
        monkeypatch.setattr(cls, "close", counted_close)

    counted(PostgresRegistry, "registry")
    counted(PgVectorChunkStore, "store")
    result = materialize(
        [normalized_documents, document_chunks_v2, document_chunks_v2_validation],
        partition_key="2026-11-03|pubmed",
        resources={"reingest": make_resource(pg_url, tmp_path)},
    )
    assert result.success
    # normalize, chunk and the checks run on the same adapters, opened and closed once
    assert sorted(events) == ["registry close", "registry open", "store close", "store open"]

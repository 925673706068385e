"""Dagster resources: thin ConfigurableResources that build the adapters from settings.

Secrets (database URL, API keys) come from ``EnvVar`` so the UI shows the variable's name,
never its value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from reingest_assets.engine.runner import Pipeline
from reingest_assets.resources.embedded_pg import embedded_postgres_url
from reingest_assets.resources.embedders import Embedder
from reingest_assets.resources.object_store import ObjectStore
from reingest_assets.resources.registry import Registry
from reingest_assets.resources.stores import COLLECTION, ChunkStore


class PostgresResource(ConfigurableResource):
    """The registry database. An empty URL starts (or attaches to) the embedded Postgres."""

    url: str = Field(default="", description="postgresql:// URL; empty for the embedded server")
    embedded_dir: str = Field(default=".reingest/pg", description="embedded server's data dir")

    def resolved_url(self) -> str:
        return self.url or embedded_postgres_url(Path(self.embedded_dir))

    def registry(self) -> Registry:
        registry = Registry(self.resolved_url())
        registry.migrate()
        return registry


class ObjectStoreResource(ConfigurableResource):
    """Raw records and normalized Parquet: a local directory, or S3 through dagster-aws."""

    kind: str = Field(default="local", description="local | s3")
    bucket: str = "reingest"
    local_root: str = ".reingest/objects"
    s3: S3Resource = Field(default_factory=S3Resource)
    max_in_flight: int = 32

    def store(self) -> ObjectStore:
        if self.kind == "s3":
            import boto3

            from reingest_assets.resources.s3_store import S3ObjectStore

            s3 = self.s3
            # GETs (obstore) sign with the credentials boto3 resolves for the same settings.
            session = boto3.Session(
                profile_name=s3.profile_name,
                aws_access_key_id=s3.aws_access_key_id,
                aws_secret_access_key=s3.aws_secret_access_key,
                aws_session_token=s3.aws_session_token,
            )
            return S3ObjectStore(
                s3.get_client(),
                self.bucket,
                session=session,
                unsigned=s3.use_unsigned_session,
                max_in_flight=self.max_in_flight,
            )
        if self.kind != "local":
            raise ValueError(f"object store kind must be 'local' or 's3', not {self.kind!r}")
        from reingest_assets.resources.local_store import LocalObjectStore

        return LocalObjectStore(Path(self.local_root), bucket=self.bucket)


class ChunkStoreResource(ConfigurableResource):
    """Where DocumentChunk_v2 lives: pgvector (the registry's database) or Weaviate."""

    kind: str = Field(default="pgvector", description="pgvector | weaviate")
    pgvector_fulltext: bool = Field(
        default=False, description="pgvector: a GIN full-text index on the chunk text"
    )
    weaviate_http_host: str = "localhost"
    weaviate_http_port: int = 8080
    weaviate_http_secure: bool = False
    weaviate_grpc_host: str = "localhost"
    weaviate_grpc_port: int = 50051
    weaviate_grpc_secure: bool = False
    weaviate_cloud_url: str = ""
    weaviate_api_key: str = ""
    weaviate_vectorizer: Literal["text2vec-openai", "text2vec-transformers", "none"] = (
        "text2vec-openai"
    )
    weaviate_alias: str = ""
    weaviate_collection: str = Field(
        default=COLLECTION,
        description="physical collection written; with an alias, a versioned one "
        "(DocumentChunk_v2_<version>) that cutover points the alias at",
    )
    weaviate_openai_api_key: str = Field(
        default="", description="sent as X-OpenAI-Api-Key for the text2vec-openai vectorizer"
    )

    def store(self, postgres: PostgresResource) -> ChunkStore:
        if self.kind == "pgvector":
            from reingest_assets.resources.stores.pgvector import PgVectorChunkStore

            store: ChunkStore = PgVectorChunkStore(
                postgres.resolved_url(), fulltext=self.pgvector_fulltext
            )
        elif self.kind == "weaviate":
            store = self._weaviate_store()
        else:
            raise ValueError(
                f"chunk store kind must be 'pgvector' or 'weaviate', not {self.kind!r}"
            )
        store.ensure_schema()
        return store

    def _weaviate_store(self) -> ChunkStore:
        from reingest_assets.resources.stores.weaviate import WeaviateChunkStore
        from reingest_assets.resources.weaviate_connection import WeaviateSettings, connect

        client = connect(
            WeaviateSettings(
                http_host=self.weaviate_http_host,
                http_port=self.weaviate_http_port,
                http_secure=self.weaviate_http_secure,
                grpc_host=self.weaviate_grpc_host,
                grpc_port=self.weaviate_grpc_port,
                grpc_secure=self.weaviate_grpc_secure,
                cloud_url=self.weaviate_cloud_url or None,
                api_key=self.weaviate_api_key or None,
                headers=self._weaviate_headers(),
            )
        )
        return WeaviateChunkStore(
            client,
            collection=self.weaviate_collection,
            vectorizer=self.weaviate_vectorizer,
            alias=self.weaviate_alias or None,
        )

    def _weaviate_headers(self) -> dict[str, str]:
        # The server calls OpenAI itself with the key the client sends along.
        if self.weaviate_vectorizer == "text2vec-openai" and self.weaviate_openai_api_key:
            return {"X-OpenAI-Api-Key": self.weaviate_openai_api_key}
        return {}


class EmbedderResource(ConfigurableResource):
    """Self-provided vectors: an OpenAI-compatible endpoint or a local sentence-transformers
    model; ``none`` leaves vectors to the store (Weaviate's vectorizer) or out."""

    kind: Literal["none", "openai", "sentence-transformers"] = "none"
    url: str = "https://api.openai.com/v1"
    model: str = Field(default="", description="empty: the kind's default model")
    dimensions: int = Field(default=1536, description="openai: the vector size requested")
    api_key: str = ""

    def embedder(self) -> Embedder | None:
        from reingest_assets.resources.embedders import (
            OpenAICompatibleEmbedder,
            SentenceTransformerEmbedder,
        )

        if self.kind == "openai":
            return OpenAICompatibleEmbedder(
                self.url,
                self.model or "text-embedding-3-small",
                api_key=self.api_key or None,
                dimensions=self.dimensions,
            )
        if self.kind == "sentence-transformers":
            return SentenceTransformerEmbedder(self.model or "all-MiniLM-L6-v2")
        return None


class ReingestResource(ConfigurableResource):
    """The engine's wiring for one run: registry, object store, chunk store and batch sizes."""

    postgres: PostgresResource
    object_store: ObjectStoreResource
    chunk_store: ChunkStoreResource
    embedder: EmbedderResource = Field(default_factory=EmbedderResource)
    batch_size: int = 2000
    workers: int = 2
    max_attempts: int = Field(
        default=3, description="failed repair runs before a failure is permanent"
    )

    def pipeline(
        self, run_id: str, log: Callable[[str], None], *, repair: bool = False
    ) -> Pipeline:
        return Pipeline(
            registry=self.postgres.registry(),
            objects=self.object_store.store(),
            store=self.chunk_store.store(self.postgres),
            embedder=self.embedder.embedder(),
            run_id=run_id,
            batch_size=self.batch_size,
            workers=self.workers,
            max_attempts=self.max_attempts,
            repair=repair,
            log=log,
        )

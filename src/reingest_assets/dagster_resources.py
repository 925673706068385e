"""Dagster resources: the one owner of the pipeline's configuration and of its adapters' lifecycle.

Every value comes from a ``REINGEST_*`` setting (``settings.py`` checks it and names the variable
when it is wrong); secrets (database URL, API keys) come from ``EnvVar`` so the UI shows the
variable's name, never its value. ``ReingestResource`` opens the adapters on first use within a
step and closes them once when the step ends. Building a resource changes no schema: migrations
and store DDL run only when asked (:meth:`ReingestResource.migrate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr

from reingest_assets.domain.limits import DocumentLimits
from reingest_assets.resources.embedded_pg import embedded_postgres_url
from reingest_assets.resources.object_store import ObjectStore
from reingest_assets.resources.partition_locks import PartitionLocks
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores import COLLECTION, ChunkStore
from reingest_assets.settings import EmbedderKind, ObjectStoreKind, Settings, StoreKind, Vectorizer

if TYPE_CHECKING:
    # Imported where they are built: `reingest status` needs neither the engine, nor the
    # embedders' HTTP client, nor dagster-aws.
    from dagster_aws.s3 import S3Resource

    from reingest_assets.engine.runner import Pipeline
    from reingest_assets.resources.embedders import Embedder


class PostgresResource(ConfigurableResource):
    """The registry database. An empty URL starts (or attaches to) the embedded Postgres."""

    url: str = Field(default="", description="postgresql:// URL; empty for the embedded server")
    embedded_dir: str = Field(default=".reingest/pg", description="embedded server's data dir")

    def resolved_url(self) -> str:
        return self.url or embedded_postgres_url(Path(self.embedded_dir))


class ObjectStoreResource(ConfigurableResource):
    """Raw records and normalized Parquet: a local directory, or S3 (the boto3 client of
    dagster-aws's ``S3Resource`` for everything but GETs, obstore with the same endpoint and
    credentials for GETs)."""

    kind: ObjectStoreKind = "local"
    bucket: str = "reingest"
    local_root: str = ".reingest/objects"
    # Plain fields, not a nested S3Resource: importing dagster-aws loads its components and
    # much of Dagster besides, a second that only an S3 store should cost.
    s3_endpoint_url: str = Field(default="", description="empty: AWS S3")
    s3_region: str = "us-east-1"
    aws_access_key_id: str = Field(default="", description="empty: boto3's credential chain")
    aws_secret_access_key: str = ""
    max_in_flight: int = 32

    def s3(self) -> S3Resource:
        """dagster-aws's S3 resource for these settings. Its client does not retry: the store
        does (``resources.retry``), or every attempt of its would be six of botocore's."""
        from dagster_aws.s3 import S3Resource

        return S3Resource(
            max_attempts=0,
            endpoint_url=self.s3_endpoint_url or None,
            region_name=self.s3_region,
            aws_access_key_id=self.aws_access_key_id or None,
            aws_secret_access_key=self.aws_secret_access_key or None,
        )

    def store(self) -> ObjectStore:
        if self.kind == "s3":
            import boto3

            from reingest_assets.resources.s3_store import S3ObjectStore

            # GETs (obstore) sign with the credentials boto3 resolves for the same settings.
            session = boto3.Session(
                aws_access_key_id=self.aws_access_key_id or None,
                aws_secret_access_key=self.aws_secret_access_key or None,
            )
            return S3ObjectStore(
                self.s3().get_client(),
                self.bucket,
                session=session,
                max_in_flight=self.max_in_flight,
            )
        from reingest_assets.resources.local_store import LocalObjectStore

        return LocalObjectStore(Path(self.local_root), bucket=self.bucket)


class ChunkStoreResource(ConfigurableResource):
    """Where DocumentChunk_v2 lives: pgvector (the registry's database) or Weaviate."""

    kind: StoreKind = "pgvector"
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
    weaviate_vectorizer: Vectorizer = "text2vec-openai"
    weaviate_alias: str = ""
    weaviate_collection: str = Field(
        default=COLLECTION,
        description="physical collection written; with an alias, a versioned one "
        "(DocumentChunk_v2_<version>) that cutover points the alias at",
    )
    weaviate_openai_api_key: str = Field(
        default="", description="sent as X-OpenAI-Api-Key for the text2vec-openai vectorizer"
    )

    def store(self, database_url: str) -> ChunkStore:
        """The store, connected but unchanged: its schema is created by ``ensure_schema``."""
        if self.kind == "pgvector":
            from reingest_assets.resources.stores.pgvector import PgVectorChunkStore

            return PgVectorChunkStore(database_url, fulltext=self.pgvector_fulltext)
        return self._weaviate_store()

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

    kind: EmbedderKind = "none"
    url: str = "https://api.openai.com/v1"
    model: str = Field(default="", description="empty: the kind's default model")
    dimensions: int = Field(default=1536, description="openai: the vector size requested")
    api_key: str = ""

    def embedder(self) -> Embedder | None:
        if self.kind == "none":
            return None
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
        return SentenceTransformerEmbedder(self.model or "all-MiniLM-L6-v2")


class Adapters:
    """The adapters of one step, each opened on first use (a sensor tick that reads the registry
    connects to nothing else) and closed once by :meth:`close`."""

    def __init__(self, resource: ReingestResource) -> None:
        self._resource = resource

    @cached_property
    def database_url(self) -> str:
        return self._resource.postgres.resolved_url()

    @cached_property
    def registry(self) -> PostgresRegistry:
        return PostgresRegistry(self.database_url)

    @cached_property
    def objects(self) -> ObjectStore:
        return self._resource.object_store.store()

    @cached_property
    def store(self) -> ChunkStore:
        return self._resource.chunk_store.store(self.database_url)

    @cached_property
    def embedder(self) -> Embedder | None:
        return self._resource.embedder.embedder()

    def close(self) -> None:
        """Close what was opened; the store finishes its deferred work first."""
        opened = vars(self)
        try:
            if "store" in opened:
                self.store.close()
        finally:
            if "registry" in opened:
                self.registry.close()


class ReingestResource(ConfigurableResource):
    """The engine's wiring: registry, object store, chunk store, embedder, the sources and start
    date, batch sizes and the validation thresholds."""

    postgres: PostgresResource
    object_store: ObjectStoreResource
    chunk_store: ChunkStoreResource
    embedder: EmbedderResource = Field(default_factory=EmbedderResource)
    sources: list[str] = Field(default_factory=lambda: ["pubmed"])
    start_date: str = Field(default="2026-11-01", description="first ingest date, YYYY-MM-DD")
    batch_size: int = 2000
    workers: int = 2
    max_attempts: int = Field(
        default=3, description="failed repair runs before a failure is permanent"
    )
    validation_sample: int = Field(default=20, description="offenders listed per check")
    validation_content_sample: int = Field(
        default=1000,
        description="documents whose chunks a run's checks read, spread over its partitions",
    )
    max_failure_rate: float = Field(
        default=0.01, description="unresolved failures per document above which a check fails"
    )
    document_limits: dict[str, int] = Field(
        default_factory=dict,
        description="per-document budgets by name (docs/configuration.md); a limit not given "
        "keeps its default",
    )

    _adapters: Adapters | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReingestResource:
        def secret(name: str) -> str:
            # EnvVar only when set: Dagster refuses to resolve an unset one.
            return EnvVar(name) if name in settings.secrets_set else ""

        return cls(
            postgres=PostgresResource(
                url=secret("REINGEST_DATABASE_URL"), embedded_dir=str(settings.pg_dir)
            ),
            object_store=ObjectStoreResource(
                kind=settings.object_store,
                bucket=settings.bucket,
                local_root=str(settings.objects_dir),
                s3_endpoint_url=settings.s3_endpoint_url,
                s3_region=settings.s3_region,
                aws_access_key_id=secret("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=secret("AWS_SECRET_ACCESS_KEY"),
            ),
            chunk_store=ChunkStoreResource(
                kind=settings.store,
                pgvector_fulltext=settings.pgvector_fulltext,
                weaviate_http_host=settings.weaviate_http_host,
                weaviate_http_port=settings.weaviate_http_port,
                weaviate_grpc_host=settings.weaviate_grpc_host,
                weaviate_grpc_port=settings.weaviate_grpc_port,
                weaviate_cloud_url=settings.weaviate_cloud_url,
                weaviate_api_key=secret("REINGEST_WEAVIATE_API_KEY"),
                weaviate_vectorizer=settings.weaviate_vectorizer,
                weaviate_alias=settings.weaviate_alias,
                weaviate_collection=settings.weaviate_collection,
                weaviate_openai_api_key=secret("REINGEST_OPENAI_API_KEY"),
            ),
            embedder=EmbedderResource(
                kind=settings.embedder,
                url=settings.embedder_url,
                model=settings.embedder_model,
                dimensions=settings.embedder_dimensions,
                api_key=secret("REINGEST_EMBEDDER_API_KEY"),
            ),
            sources=list(settings.sources),
            start_date=settings.start_date,
            batch_size=settings.batch_size,
            workers=settings.workers,
            max_attempts=settings.max_attempts,
            validation_sample=settings.validation_sample,
            validation_content_sample=settings.validation_content_sample,
            max_failure_rate=settings.max_failure_rate,
            document_limits=dataclasses.asdict(settings.document_limits),
        )

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[ReingestResource]:
        self._adapters = Adapters(self)
        try:
            yield self
        finally:
            adapters, self._adapters = self._adapters, None
            adapters.close()

    @property
    def adapters(self) -> Adapters:
        if self._adapters is None:
            raise RuntimeError(
                "ReingestResource opens its adapters within a Dagster step or sensor tick "
                "(or dagster.build_resources)"
            )
        return self._adapters

    def migrate(self) -> list[str]:
        """The schema changes a writing run makes first: pending registry migrations, then the
        chunk store's schema (table, indexes / collection). Returns the migrations applied."""
        applied = self.adapters.registry.migrate()
        self.adapters.store.ensure_schema()
        return applied

    def pipeline(
        self, run_id: str, log: Callable[[str], None], *, repair: bool = False
    ) -> Pipeline:
        """The engine over this step's adapters; ``Pipeline.finish`` ends its part, the
        resource closes the adapters when the step ends."""
        from reingest_assets.engine.runner import Pipeline

        adapters = self.adapters
        return Pipeline(
            registry=adapters.registry,
            objects=adapters.objects,
            store=adapters.store,
            embedder=adapters.embedder,
            run_id=run_id,
            batch_size=self.batch_size,
            workers=self.workers,
            max_attempts=self.max_attempts,
            repair=repair,
            limits=DocumentLimits(**self.document_limits),
            log=log,
            locks=PartitionLocks(adapters.database_url, run_id),
        )

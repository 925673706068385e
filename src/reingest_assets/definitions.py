"""The one ``Definitions`` of the reingest code location."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar
from dagster_aws.s3 import S3Resource

from reingest_assets.assets import SETTINGS, document_chunks_v2, normalized_documents, raw_documents
from reingest_assets.checks import document_chunks_v2_validation
from reingest_assets.dagster_resources import (
    ChunkStoreResource,
    EmbedderResource,
    ObjectStoreResource,
    PostgresResource,
    ReingestResource,
)
from reingest_assets.jobs import (
    cutover_job,
    observe_raw_documents_job,
    plan_job,
    reingest_job,
    repair_job,
    rollback_job,
    validate_job,
)
from reingest_assets.resources.stores import COLLECTION
from reingest_assets.schedules import observe_raw_documents_schedule, reingest_job_schedule
from reingest_assets.sensors import repair_sensor
from reingest_assets.settings import Settings


def _secret(name: str) -> str | EnvVar:
    """An env var's value for Dagster without showing it: EnvVar when set, else empty."""
    return EnvVar(name) if os.environ.get(name) else ""


def build_resources(settings: Settings) -> ReingestResource:
    return ReingestResource(
        postgres=PostgresResource(
            url=_secret("REINGEST_DATABASE_URL"), embedded_dir=str(settings.pg_dir)
        ),
        object_store=ObjectStoreResource(
            kind=settings.object_store,
            bucket=settings.bucket,
            local_root=str(settings.objects_dir),
            s3=S3Resource(
                endpoint_url=settings.s3_endpoint_url or None,
                region_name=settings.s3_region,
                aws_access_key_id=_secret("AWS_ACCESS_KEY_ID") or None,
                aws_secret_access_key=_secret("AWS_SECRET_ACCESS_KEY") or None,
            ),
        ),
        chunk_store=ChunkStoreResource(
            kind=settings.store,
            pgvector_fulltext=settings.pgvector_fulltext,
            weaviate_http_host=os.environ.get("REINGEST_WEAVIATE_HTTP_HOST", "localhost"),
            weaviate_http_port=int(os.environ.get("REINGEST_WEAVIATE_HTTP_PORT", "8080")),
            weaviate_grpc_host=os.environ.get("REINGEST_WEAVIATE_GRPC_HOST", "localhost"),
            weaviate_grpc_port=int(os.environ.get("REINGEST_WEAVIATE_GRPC_PORT", "50051")),
            weaviate_cloud_url=os.environ.get("REINGEST_WEAVIATE_CLOUD_URL", ""),
            weaviate_api_key=_secret("REINGEST_WEAVIATE_API_KEY"),
            # pydantic checks the value against the allowed vectorizers when the resource loads
            weaviate_vectorizer=os.environ.get(  # type: ignore[arg-type]
                "REINGEST_WEAVIATE_VECTORIZER", "text2vec-openai"
            ),
            weaviate_alias=os.environ.get("REINGEST_WEAVIATE_ALIAS", ""),
            weaviate_collection=os.environ.get("REINGEST_WEAVIATE_COLLECTION", COLLECTION),
            weaviate_openai_api_key=_secret("REINGEST_OPENAI_API_KEY"),
        ),
        embedder=EmbedderResource(
            # Settings checked the kind against the allowed ones
            kind=settings.embedder,  # type: ignore[arg-type]
            url=settings.embedder_url,
            model=settings.embedder_model,
            dimensions=settings.embedder_dimensions,
            api_key=_secret("REINGEST_EMBEDDER_API_KEY"),
        ),
        batch_size=settings.batch_size,
        workers=settings.workers,
        max_attempts=settings.max_attempts,
    )


defs = Definitions(
    assets=[raw_documents, normalized_documents, document_chunks_v2],
    asset_checks=[document_chunks_v2_validation],
    jobs=[
        reingest_job,
        repair_job,
        validate_job,
        plan_job,
        observe_raw_documents_job,
        rollback_job,
        cutover_job,
    ],
    schedules=[reingest_job_schedule, observe_raw_documents_schedule],
    sensors=[repair_sensor],
    resources={"reingest": build_resources(SETTINGS)},
)

"""Test helpers: a small registry + object store corpus and an engine Pipeline over them."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reingest_assets.engine.runner import Partition, Pipeline
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry import DocumentRegistry
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore

DAY = "2026-11-03"
PART = Partition("pubmed", DAY)

SENTENCE = (
    "Chronic inflammation of the airway epithelium was measured in {n} patients with a "
    "validated questionnaire and spirometry at baseline and after twelve weeks."
)


def abstract(sentences: int, seed: int = 0) -> str:
    return " ".join(SENTENCE.format(n=seed * 1000 + i) for i in range(sentences))


def record(pmid: int, *, sentences: int = 6, title: str | None = None) -> dict[str, Any]:
    return {
        "pmid": str(pmid),
        "title": title or f"Airway inflammation study number {pmid}",
        "abstract": abstract(sentences, pmid),
        "authors": ["Doe J", "Roe R"],
        "journal": "Journal of Tests",
        "mesh_terms": ["Asthma", "Humans"],
        "publication_date": "2024-05-01",
    }


@dataclass
class Corpus:
    registry: DocumentRegistry
    objects: LocalObjectStore

    def put(self, pmid: int, data: bytes, *, day: str = DAY, source: str = "pubmed") -> str:
        import hashlib

        uid = f"{source}:{pmid}"
        uri = f"s3://reingest/raw/{source}/{pmid}.json.gz"
        self.objects.put(uri, data)
        stamp = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
        self.registry.upsert_documents(
            [
                (
                    uid,
                    source,
                    str(pmid),
                    None,
                    None,
                    uri,
                    hashlib.sha256(data).hexdigest(),
                    stamp,
                    stamp,
                )
            ]
        )
        return uid

    def put_record(self, rec: dict[str, Any], **kwargs: Any) -> str:
        return self.put(int(rec["pmid"]), gzip.compress(json.dumps(rec).encode()), **kwargs)


def make_pipeline(pg_url: str, root: Path, *, run_id: str = "run-1", **kwargs: Any) -> Pipeline:
    registry = PostgresRegistry(pg_url)
    registry.migrate()
    store = PgVectorChunkStore(pg_url)
    store.ensure_schema()
    return Pipeline(
        registry=registry,
        objects=LocalObjectStore(root),
        store=store,
        run_id=run_id,
        workers=kwargs.pop("workers", 1),
        batch_size=kwargs.pop("batch_size", 50),
        log=lambda _msg: None,
        **kwargs,
    )


def store_snapshot(pg_url: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT uuid::text, parent_uid, text, meta::text FROM reingest.document_chunk_v2"
            " ORDER BY uuid"
        ).fetchall()

"""Identity of documents and chunks, exactly as the original service computed it.

Chunks written by the old service and by this pipeline coincide, so a re-ingest overwrites
instead of duplicating.
"""

from __future__ import annotations

from uuid import UUID, uuid5

CHUNK_NAMESPACE = UUID("1b2c3d4e-0000-0000-0000-000000000000")


def document_uid(source: str, source_id: str) -> str:
    """``pubmed:<pmid>``: the registry's uid for a record of a source."""
    return f"{source}:{source_id}"


def chunk_uuid(parent_uid: str, chunk_id: str) -> str:
    return str(uuid5(CHUNK_NAMESPACE, f"{parent_uid}:{chunk_id}"))

"""The DocumentChunk_v2 store protocol. One file per backend: ``pgvector.py``, ``weaviate.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reingest_assets.domain.document import Chunk

COLLECTION = "DocumentChunk_v2"


@dataclass(frozen=True, slots=True)
class StoredChunk:
    uuid: str
    parent_uid: str
    properties: dict[str, Any]


class ChunkStore(Protocol):
    """Where chunks live. Writes are idempotent: an object's id is its deterministic UUID."""

    name: str
    # Identity of the physical collection (e.g. "pgvector:reingest.document_chunk_v2",
    # "weaviate:DocumentChunk_v2_20261127"): the ledger is kept per target, so switching stores
    # or collections never mistakes another store's contents for this one's.
    target: str

    def ensure_schema(self) -> None:
        """Create the collection when missing; when present, verify it matches or raise with
        the list of differences. A schema change: only migrations and writing runs call it."""

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]] | None = None
    ) -> dict[str, str]:
        """Insert or overwrite ``chunks``. Returns ``{parent_uid: error}`` for documents any of
        whose objects were not written (an empty dict means every object landed)."""

    def delete(self, uuids: Sequence[str]) -> int:
        """Delete objects by id; returns how many were deleted. Missing ids are not an error."""

    def delete_parents(self, parent_uids: Sequence[str]) -> int:
        """Delete every chunk of these documents."""

    def count(self, parent_uids: Sequence[str] | None = None) -> int:
        """Objects in the collection, or of these documents."""

    def fetch(self, parent_uids: Sequence[str]) -> Iterator[StoredChunk]:
        """Every stored chunk of these documents (validation reads them back)."""

    def fetch_ids(self, parent_uids: Sequence[str]) -> Iterator[tuple[str, str]]:
        """``(uuid, parent_uid)`` of every stored chunk of these documents: what a completeness
        check needs, without reading the chunks themselves."""

    def finish(self) -> None:
        """End a writing session: build what it deferred (indexes), refresh statistics.
        Idempotent; ``close`` calls it."""

    def close(self) -> None: ...


@runtime_checkable
class EncodingChunkStore(ChunkStore, Protocol):
    """A store whose bulk format worker processes can produce: the pipeline then has the
    workers encode each document's chunks (``encode_chunks``, a picklable module-level function)
    and the main process only forwards the bytes, instead of unpickling chunk objects and
    formatting every row itself. Used when the pipeline computes no vectors."""

    encode_chunks: Callable[[Sequence[Chunk]], bytes]

    def upsert_encoded(self, payload: bytes) -> dict[str, str]:
        """``upsert`` of chunks given as the concatenated ``encode_chunks`` of documents."""

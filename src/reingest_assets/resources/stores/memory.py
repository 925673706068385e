"""DocumentChunk_v2 as a dict: the chunk store of engine tests that need no server. Follows the
store contract (``tests/support/store_contract.py``) like the real backends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from reingest_assets.domain.document import Chunk
from reingest_assets.resources.stores import StoredChunk


class MemoryChunkStore:
    name = "memory"

    def __init__(self, collection: str = "DocumentChunk_v2") -> None:
        self.target = f"memory:{collection}"
        self.chunks: dict[str, Chunk] = {}  # by uuid
        self.vectors: dict[str, list[float]] = {}

    def ensure_schema(self) -> None:
        """Nothing to create."""

    def upsert(
        self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]] | None = None
    ) -> dict[str, str]:
        for i, chunk in enumerate(chunks):
            self.chunks[chunk.uuid] = chunk
            if vectors is not None:
                self.vectors[chunk.uuid] = list(vectors[i])
        return {}

    def delete(self, uuids: Sequence[str]) -> int:
        deleted = [u for u in set(uuids) if self.chunks.pop(u, None) is not None]
        for u in deleted:
            self.vectors.pop(u, None)
        return len(deleted)

    def delete_parents(self, parent_uids: Sequence[str]) -> int:
        return self.delete([uuid for uuid, _ in self.fetch_ids(parent_uids)])

    def count(self, parent_uids: Sequence[str] | None = None) -> int:
        if parent_uids is None:
            return len(self.chunks)
        return sum(1 for _ in self.fetch_ids(parent_uids))

    def fetch(self, parent_uids: Sequence[str]) -> Iterator[StoredChunk]:
        wanted = set(parent_uids)
        for chunk in list(self.chunks.values()):
            if chunk.parent_uid in wanted:
                yield StoredChunk(chunk.uuid, chunk.parent_uid, chunk.properties())

    def fetch_ids(self, parent_uids: Sequence[str]) -> Iterator[tuple[str, str]]:
        wanted = set(parent_uids)
        return iter(
            [(c.uuid, c.parent_uid) for c in self.chunks.values() if c.parent_uid in wanted]
        )

    def finish(self) -> None:
        """Nothing deferred."""

    def close(self) -> None:
        """Nothing to release."""

"""Behaviour every ChunkStore must have, as a class of tests bound to a ``store`` fixture.

A backend's test module subclasses :class:`StoreContract` and defines ``store``: a fresh,
schema-ensured, empty store per test::

    class TestPgVectorContract(StoreContract):
        @pytest.fixture
        def store(self, ...) -> Iterator[ChunkStore]: ...
"""

from __future__ import annotations

from reingest_assets.domain.document import Chunk
from reingest_assets.domain.ids import chunk_uuid
from reingest_assets.resources.stores import ChunkStore


def make_chunks(parent_uid: str, n: int, *, text: str = "text") -> list[Chunk]:
    """``n`` chunks of one document, shaped as the chunker makes them (nested meta, nulls)."""
    chunks = []
    for i in range(n):
        chunk_id = f"w{i}"
        chunks.append(
            Chunk(
                uuid=chunk_uuid(parent_uid, chunk_id),
                chunk_id=chunk_id,
                parent_uid=parent_uid,
                source="pubmed",
                title=f"Title of {parent_uid}",
                text=f"{text} {i} of {parent_uid}",
                section=None if i else "BACKGROUND",
                published_at="2021-03-04",
                year=2021,
                tokens=100 + i,
                n_sentences=3,
                quality_total=0.85,
                meta={
                    "chunk_id": chunk_id,
                    "chunk_index": i,
                    "chunker_version": "test-1",
                    "tokenizer": "cl100k_base",
                    "target_tokens": 325,
                    "max_tokens": 450,
                    "overlap_tokens": 50,
                    "section_index": None,
                    "src": {
                        "pubmed": {
                            "journal": "J Test",
                            "mesh_terms": ["Humans", "Mice"],
                            "quality_total": 0.85,
                            "doi": None,
                            "pmc_id": None,
                            "language": "eng",
                            "authors": ["Doe J", "Roe R"],
                        }
                    },
                },
            )
        )
    return chunks


class StoreContract:
    def test_upsert_then_fetch_returns_every_property(self, store: ChunkStore) -> None:
        chunks = make_chunks("pubmed:1", 3)
        assert store.upsert(chunks) == {}
        stored = sorted(store.fetch(["pubmed:1"]), key=lambda s: s.uuid)
        expected = sorted(chunks, key=lambda c: c.uuid)
        assert [s.uuid for s in stored] == [c.uuid for c in expected]
        assert all(s.parent_uid == "pubmed:1" for s in stored)
        assert [s.properties for s in stored] == [c.properties() for c in expected]

    def test_upsert_same_uuids_overwrites_instead_of_duplicating(self, store: ChunkStore) -> None:
        assert store.upsert(make_chunks("pubmed:1", 3)) == {}
        assert store.upsert(make_chunks("pubmed:1", 3, text="revised")) == {}
        assert store.count() == 3
        texts = sorted(s.properties["text"] for s in store.fetch(["pubmed:1"]))
        assert texts == [f"revised {i} of pubmed:1" for i in range(3)]

    def test_repeated_upsert_is_idempotent(self, store: ChunkStore) -> None:
        chunks = make_chunks("pubmed:1", 2) + make_chunks("pubmed:2", 2)
        assert store.upsert(chunks) == {}
        first = sorted(
            (s.uuid, s.properties["text"]) for s in store.fetch(["pubmed:1", "pubmed:2"])
        )
        assert store.upsert(chunks) == {}
        again = sorted(
            (s.uuid, s.properties["text"]) for s in store.fetch(["pubmed:1", "pubmed:2"])
        )
        assert first == again
        assert store.count() == 4

    def test_count_all_and_per_document(self, store: ChunkStore) -> None:
        assert store.count() == 0
        store.upsert(make_chunks("pubmed:1", 2) + make_chunks("pubmed:2", 3))
        assert store.count() == 5
        assert store.count(["pubmed:2"]) == 3
        assert store.count(["pubmed:1", "pubmed:2", "pubmed:404"]) == 5
        assert store.count(["pubmed:404"]) == 0

    def test_delete_by_uuid_counts_what_existed(self, store: ChunkStore) -> None:
        chunks = make_chunks("pubmed:1", 3)
        store.upsert(chunks)
        missing = chunk_uuid("pubmed:404", "w0")
        assert store.delete([chunks[0].uuid, chunks[1].uuid, missing]) == 2
        assert [s.uuid for s in store.fetch(["pubmed:1"])] == [chunks[2].uuid]
        assert store.delete([missing]) == 0

    def test_delete_parents_removes_only_those_documents(self, store: ChunkStore) -> None:
        store.upsert(make_chunks("pubmed:1", 2) + make_chunks("pubmed:2", 3))
        assert store.delete_parents(["pubmed:2", "pubmed:404"]) == 3
        assert store.count() == 2
        assert list(store.fetch(["pubmed:2"])) == []
        assert len(list(store.fetch(["pubmed:1"]))) == 2

    def test_parent_filter_is_exact(self, store: ChunkStore) -> None:
        # "pubmed:1" must not match "pubmed:11" or a document sharing a token with it
        store.upsert(make_chunks("pubmed:1", 1) + make_chunks("pubmed:11", 2))
        assert store.count(["pubmed:1"]) == 1
        assert store.delete_parents(["pubmed:1"]) == 1
        assert store.count(["pubmed:11"]) == 2

    def test_fetch_of_unknown_documents_is_empty(self, store: ChunkStore) -> None:
        assert list(store.fetch(["pubmed:404"])) == []
        assert list(store.fetch_ids(["pubmed:404"])) == []

    def test_fetch_ids_gives_each_chunks_uuid_and_document(self, store: ChunkStore) -> None:
        chunks = make_chunks("pubmed:1", 2) + make_chunks("pubmed:2", 3)
        store.upsert(chunks + make_chunks("pubmed:3", 1))
        assert sorted(store.fetch_ids(["pubmed:1", "pubmed:2", "pubmed:404"])) == sorted(
            (c.uuid, c.parent_uid) for c in chunks
        )

"""The engine end to end on real Postgres + pgvector and a local object store."""

from __future__ import annotations

import gc
import gzip
import json
import weakref
from pathlib import Path

from reingest_assets.domain.ids import chunk_uuid
from reingest_assets.engine.runner import (
    Pipeline,
    chunk_partition,
    heap_frozen,
    normalize_partition,
)
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.pipeline import PART, Corpus, make_pipeline, record, store_snapshot


def run(pipeline: Pipeline, **kwargs: object) -> tuple[dict[str, object], dict[str, object]]:
    norm = normalize_partition(pipeline, PART, **kwargs)  # type: ignore[arg-type]
    chunks = chunk_partition(pipeline, PART, **kwargs)  # type: ignore[arg-type]
    return norm.as_dict(), chunks.as_dict()


def test_full_run_writes_every_document_and_a_second_run_skips_them_all(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 121):
        corpus.put_record(record(pmid, sentences=3 + pmid % 40))
    norm, chunks = run(pipeline)
    assert norm["docs_in"] == 120 and norm["docs_written"] == 120 and norm["docs_failed"] == 0
    assert chunks["docs_written"] == 120
    first = store_snapshot(pg_url)
    assert len(first) == chunks["chunks_written"] > 120  # long abstracts split

    pipeline.run_id = "run-2"
    norm, chunks = run(pipeline)
    assert norm["docs_skipped"] == 120 and norm["docs_written"] == 0
    assert chunks["docs_written"] == 0 and chunks["chunks_written"] == 0
    assert store_snapshot(pg_url) == first  # idempotent: identical store


def test_forced_rerun_rewrites_without_duplicating(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 11):
        corpus.put_record(record(pmid, sentences=30))
    run(pipeline)
    first = store_snapshot(pg_url)
    _, chunks = run(pipeline, force=True)
    assert chunks["docs_written"] == 10
    assert store_snapshot(pg_url) == first


def test_chunk_uuids_follow_the_original_formula(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    corpus.put_record(record(77, sentences=2))
    run(pipeline)
    ((uuid, parent, _, meta),) = store_snapshot(pg_url)
    assert parent == "pubmed:77"
    assert uuid == chunk_uuid("pubmed:77", json.loads(meta)["chunk_id"])


def test_an_edited_document_that_shrinks_loses_its_stale_tail(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    corpus.put_record(record(5, sentences=60))
    corpus.put_record(record(6, sentences=60))
    run(pipeline)
    before = {r[0] for r in store_snapshot(pg_url) if r[1] == "pubmed:5"}
    assert len(before) > 2

    corpus.put_record(record(5, sentences=2))  # same day: same partition, new content hash
    _, chunks = run(pipeline)
    after = {r[0] for r in store_snapshot(pg_url) if r[1] == "pubmed:5"}
    assert len(after) == 1 and after < before
    assert chunks["chunks_deleted"] == len(before) - 1
    assert pipeline.store.count(["pubmed:6"]) > 2  # the other document is untouched


def test_malformed_records_are_recorded_and_the_rest_lands(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 21):
        corpus.put_record(record(pmid))
    corpus.put(101, b'{"pmid": "101", "title": "truncated')
    corpus.put(102, gzip.compress(json.dumps({"title": "no pmid", "abstract": "x."}).encode()))
    corpus.put(103, b"\xff\xfe\x00garbage")
    corpus.put(104, gzip.compress(json.dumps({"pmid": "104", "title": ["a", "list"]}).encode()))
    pipeline.objects.delete("s3://reingest/raw/pubmed/1.json.gz")  # registered, object gone
    norm, chunks = run(pipeline)
    assert norm["docs_failed"] == 5 and chunks["docs_written"] == 19
    failures = dict(
        pipeline.registry.conn.execute(
            "SELECT uid, stage FROM reingest.ingestion_failures WHERE resolved_at IS NULL"
        ).fetchall()
    )
    assert failures == {
        "pubmed:1": "fetch",
        "pubmed:101": "parse",
        "pubmed:102": "normalize",
        "pubmed:103": "parse",
        "pubmed:104": "normalize",
    }

    # The same bad content is not retried by the next run (the repair sensor waits for a fix).
    norm, _ = run(pipeline)
    assert norm["docs_failed"] == 1 and norm["docs_skipped"] == 23  # only the fetch is retried


def test_a_deleted_registry_document_leaves_the_store(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    for pmid in (1, 2, 3):
        corpus.put_record(record(pmid))
    run(pipeline)
    pipeline.registry.conn.execute("DELETE FROM documents WHERE uid = 'pubmed:2'")
    _, chunks = run(pipeline)
    assert chunks["docs_deleted"] == 1
    assert {r[1] for r in store_snapshot(pg_url)} == {"pubmed:1", "pubmed:3"}


def test_worker_processes_give_the_same_result_as_inline(pg_url: str, tmp_path: Path) -> None:
    pipeline = make_pipeline(pg_url, tmp_path / "objects", workers=2, batch_size=40)
    corpus = Corpus(pipeline.registry, pipeline.objects)  # type: ignore[arg-type]
    for pmid in range(1, 101):
        corpus.put_record(record(pmid, sentences=1 + pmid % 30))
    try:
        _, chunks = run(pipeline)
    finally:
        pipeline.close()
    assert chunks["docs_written"] == 100
    snapshot = store_snapshot(pg_url)
    assert len({r[1] for r in snapshot}) == 100


def test_first_load_builds_the_full_text_index_when_the_run_ends(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    import psycopg

    pipeline.store = PgVectorChunkStore(pg_url, fulltext=True)
    pipeline.store.ensure_schema()
    for pmid in range(1, 6):
        corpus.put_record(record(pmid))
    run(pipeline)
    pipeline.close()
    with psycopg.connect(pg_url) as conn:
        hits = conn.execute(
            "SELECT count(*) FROM reingest.document_chunk_v2"
            " WHERE to_tsvector('simple', text) @@ to_tsquery('simple', 'spirometry')"
        ).fetchone()
    assert hits is not None and hits[0] == 5
    assert fts_indexed(pg_url)


def test_the_full_text_index_follows_the_setting(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    corpus.put_record(record(1))
    run(pipeline)
    pipeline.close()
    assert not fts_indexed(pg_url)  # off by default
    for fulltext in (True, False):
        store = PgVectorChunkStore(pg_url, fulltext=fulltext)
        store.ensure_schema()
        store.close()
        assert fts_indexed(pg_url) is fulltext


def fts_indexed(pg_url: str) -> bool:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
    return "document_chunk_v2_fts_idx" in names


def test_a_run_keeps_the_old_heap_out_of_collections_and_collects_its_own_garbage() -> None:
    class Node:
        other: Node

    with heap_frozen():
        assert gc.get_freeze_count() > 0
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made during the run
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None
    assert gc.get_freeze_count() == 0  # nothing stays frozen after the run

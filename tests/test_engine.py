"""The engine end to end. The behaviour a user relies on from runs (skip, rewrite, stale tails,
failures waiting for a fix, removal, validation, dry run, rollback) runs twice: on the in-memory
registry and chunk store with no database (``[memory]``, fast), and on real Postgres + pgvector
(``[postgres]``), each with a local object store. Then what only the real stack has."""

from __future__ import annotations

import gc
import gzip
import json
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reingest_assets.domain.ids import chunk_uuid
from reingest_assets.engine.planning import plan_partition
from reingest_assets.engine.rollback import rollback
from reingest_assets.engine.runner import (
    Pipeline,
    chunk_partition,
    heap_frozen,
    normalize_partition,
)
from reingest_assets.engine.validation import validate_partition
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry.memory import MemoryRegistry
from reingest_assets.resources.stores.memory import MemoryChunkStore
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.pipeline import PART, Corpus, make_pipeline, record, store_snapshot

Chunks = list[tuple[str, str, str]]  # (uuid, parent uid, text), by uuid


@dataclass
class Backend:
    pipeline: Pipeline
    corpus: Corpus
    chunks: Callable[[], Chunks]
    open_failures: Callable[[], dict[str, str]]  # uid -> stage
    drop_documents: Callable[[list[str]], None]  # as the existing service deletes rows

    def parents(self) -> set[str]:
        return {parent for _, parent, _ in self.chunks()}

    def chunks_of(self, uid: str) -> set[str]:
        return {uuid for uuid, parent, _ in self.chunks() if parent == uid}


def memory_backend(root: Path) -> Backend:
    registry, store = MemoryRegistry(), MemoryChunkStore()
    objects = LocalObjectStore(root)
    pipeline = Pipeline(
        registry=registry,
        objects=objects,
        store=store,
        run_id="run-1",
        workers=1,
        batch_size=7,
        log=lambda _msg: None,
    )

    def drop(uids: list[str]) -> None:
        for uid in uids:
            del registry.documents[uid]

    return Backend(
        pipeline,
        Corpus(registry, objects),
        lambda: sorted((c.uuid, c.parent_uid, c.text) for c in store.chunks.values()),
        lambda: {f.uid: f.stage for f in registry.failures if not f.resolved},
        drop,
    )


def postgres_backend(pg_url: str, root: Path) -> Backend:
    pipeline = make_pipeline(pg_url, root, batch_size=7)
    assert isinstance(pipeline.objects, LocalObjectStore)

    def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def drop(uids: list[str]) -> None:
        query("DELETE FROM documents WHERE uid = ANY(%s) RETURNING uid", uids)

    return Backend(
        pipeline,
        Corpus(pipeline.registry, pipeline.objects),
        lambda: [row[:3] for row in store_snapshot(pg_url)],
        lambda: dict(
            query("SELECT uid, stage FROM reingest.ingestion_failures WHERE resolved_at IS NULL")
        ),
        drop,
    )


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        b = memory_backend(tmp_path / "objects")
    else:
        b = postgres_backend(request.getfixturevalue("pg_url"), tmp_path / "objects")
    yield b
    b.pipeline.close()


def run(
    pipeline: Pipeline, run_id: str | None = None, **kwargs: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    if run_id is not None:
        pipeline.run_id = run_id
    norm = normalize_partition(pipeline, PART, **kwargs)
    chunks = chunk_partition(pipeline, PART, **kwargs)
    return norm.as_dict(), chunks.as_dict()


def test_a_run_writes_every_document_validates_and_a_second_run_skips_them_all(
    backend: Backend,
) -> None:
    p = backend.pipeline
    for pmid in range(1, 31):
        backend.corpus.put_record(record(pmid, sentences=3 + pmid % 40))
    norm, chunks = run(p)
    assert (norm["docs_in"], norm["docs_written"], norm["docs_failed"]) == (30, 30, 0)
    first = backend.chunks()
    assert chunks["docs_written"] == 30 and chunks["chunks_written"] == len(first) > 30
    ledger = p.registry.ledger_lookup(p.store.target, [f"pubmed:{n}" for n in range(1, 31)])
    assert {u for e in ledger.values() for u in e.chunk_uuids} == {u for u, _, _ in first}
    validation = validate_partition(p.registry, p.store, p.objects, PART)
    assert validation.passed and validation.documents == 30

    norm, chunks = run(p, "run-2")
    assert norm["docs_skipped"] == 30 and norm["docs_written"] == 0
    assert chunks["docs_written"] == 0 and chunks["chunks_written"] == 0
    assert backend.chunks() == first  # idempotent: identical store


def test_forced_rerun_rewrites_without_duplicating(backend: Backend) -> None:
    for pmid in range(1, 11):
        backend.corpus.put_record(record(pmid, sentences=30))
    run(backend.pipeline)
    first = backend.chunks()
    _, chunks = run(backend.pipeline, "run-2", force=True)
    assert chunks["docs_written"] == 10
    assert backend.chunks() == first


def test_chunk_uuids_follow_the_original_formula(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    corpus.put_record(record(77, sentences=2))
    run(pipeline)
    ((uuid, parent, _, meta),) = store_snapshot(pg_url)
    assert parent == "pubmed:77"
    assert uuid == chunk_uuid("pubmed:77", json.loads(meta)["chunk_id"])


def test_an_edited_document_that_shrinks_loses_its_stale_tail(backend: Backend) -> None:
    backend.corpus.put_record(record(5, sentences=60))
    backend.corpus.put_record(record(6, sentences=60))
    run(backend.pipeline)
    before, untouched = backend.chunks_of("pubmed:5"), backend.chunks_of("pubmed:6")
    assert len(before) > 2

    backend.corpus.put_record(record(5, sentences=2))  # same day: same partition, new hash
    norm, chunks = run(backend.pipeline, "run-2")
    assert norm["docs_written"] == 1 and norm["docs_skipped"] == 1
    after = backend.chunks_of("pubmed:5")
    assert len(after) == 1 and after < before
    assert chunks["chunks_deleted"] == len(before) - 1
    assert backend.chunks_of("pubmed:6") == untouched  # the other document is untouched


def test_bad_records_are_recorded_wait_for_a_fix_and_a_fix_resolves_them(
    backend: Backend,
) -> None:
    p, corpus = backend.pipeline, backend.corpus
    for pmid in range(1, 21):
        corpus.put_record(record(pmid))
    corpus.put(101, b'{"pmid": "101", "title": "truncated')
    corpus.put(102, gzip.compress(json.dumps({"title": "no pmid", "abstract": "x."}).encode()))
    corpus.put(103, b"\xff\xfe\x00garbage")
    corpus.put(104, gzip.compress(json.dumps({"pmid": "104", "title": ["a", "list"]}).encode()))
    p.objects.delete("s3://reingest/raw/pubmed/1.json.gz")  # registered, object gone
    norm, chunks = run(p)
    assert norm["docs_failed"] == 5 and chunks["docs_written"] == 19
    assert backend.open_failures() == {
        "pubmed:1": "fetch",
        "pubmed:101": "parse",
        "pubmed:102": "normalize",
        "pubmed:103": "parse",
        "pubmed:104": "normalize",
    }
    assert [f.uid for f in p.registry.repairable_failures()] == ["pubmed:1"]

    # The same bad content is not retried by the next run (the repair sensor waits for a fix).
    norm, _ = run(p, "run-2")
    assert norm["docs_failed"] == 1 and norm["docs_skipped"] == 23  # only the fetch is retried

    corpus.put_record(record(101))  # the source fixed: new content
    corpus.put_record(record(1))  # the object uploaded
    norm, chunks = run(p, "run-3")
    assert norm["docs_failed"] == 0 and chunks["docs_written"] == 2
    assert set(backend.open_failures()) == {"pubmed:102", "pubmed:103", "pubmed:104"}


def test_a_deleted_registry_document_is_planned_then_leaves_the_store(backend: Backend) -> None:
    p = backend.pipeline
    for pmid in (1, 2, 3):
        backend.corpus.put_record(record(pmid, sentences=20))
    run(p)
    gone = backend.chunks_of("pubmed:2")
    backend.drop_documents(["pubmed:2"])
    plan = plan_partition(p, PART)
    assert (plan.docs_delete, plan.chunks_delete, plan.docs_skip) == (1, len(gone), 2)
    assert backend.chunks_of("pubmed:2") == gone  # a dry run writes nothing
    _, chunks = run(p, "run-2")
    assert chunks["docs_deleted"] == 1 and chunks["chunks_deleted"] == len(gone)
    assert backend.parents() == {"pubmed:1", "pubmed:3"}
    assert p.registry.ledger_lookup(p.store.target, ["pubmed:2"]) == {}


def test_rolling_back_a_run_removes_what_it_wrote(backend: Backend) -> None:
    p = backend.pipeline
    for pmid in (1, 2, 3):
        backend.corpus.put_record(record(pmid))
    run(p)
    backend.corpus.put_record(record(2, sentences=9))
    run(p, "run-2")
    report = rollback(p.registry, p.store, run_id="run-2")
    assert (report.docs_removed, report.partitions) == (1, {PART.key: 1})
    assert backend.parents() == {"pubmed:1", "pubmed:3"}
    assert run(p, "run-3")[1]["docs_written"] == 1  # a re-run brings it back


def test_the_engine_loads_no_database_client() -> None:
    modules = [
        "reingest_assets.engine.runner",
        "reingest_assets.engine.planning",
        "reingest_assets.engine.validation",
        "reingest_assets.engine.rollback",
        "reingest_assets.engine.cutover",
        "reingest_assets.resources.registry",
        "reingest_assets.resources.registry.memory",
        "reingest_assets.resources.stores.memory",
    ]
    code = (
        f"import sys\nfor m in {modules!r}: __import__(m)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'psycopg', 'dagster'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_worker_processes_give_the_same_result_as_inline(pg_url: str, tmp_path: Path) -> None:
    pipeline = make_pipeline(pg_url, tmp_path / "objects", workers=2, batch_size=40)
    corpus = Corpus(pipeline.registry, pipeline.objects)
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

"""The pipeline into Weaviate: the engine and the Dagster jobs writing DocumentChunk_v2 through
WeaviateChunkStore, against the fake server (tests/weaviate_server) or, with WEAVIATE_URL set, a
live Weaviate. Fault-injection and old-version tests run on the fake only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, Definitions, materialize

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.dagster_resources import (
    ChunkStoreResource,
    ObjectStoreResource,
    PostgresResource,
    ReingestResource,
)
from reingest_assets.domain.failures import ConfigurationError
from reingest_assets.engine.cutover import CutoverReport, cutover
from reingest_assets.engine.runner import Partition, Pipeline, chunk_partition, normalize_partition
from reingest_assets.jobs import cutover_job, rollback_job
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.weaviate import (
    WeaviateChunkStore,
    alias_target,
)
from reingest_assets.resources.weaviate_connection import connect
from support.modes import failures, ledger, make_corpus
from support.pipeline import PART, Corpus, record
from support.weaviate_target import WeaviateTarget
from weaviate_server import FakeWeaviate, Faults, OpenAIBehaviour

MakeStore = Callable[..., WeaviateChunkStore]


@pytest.fixture
def names(target: WeaviateTarget) -> Iterator[list[str]]:
    """Collections and aliases a test creates (append to it); all dropped afterwards."""
    created: list[str] = []
    yield created
    if target.fake is not None:  # a faulty fake (an old version) could not clean up
        target.fake.faults = Faults()
    client = target.connect()
    try:
        aliases = {a for a in created if client.alias.get(alias_name=a) is not None}
        for alias in aliases:
            client.alias.delete(alias_name=alias)
        for name in set(created) - aliases:
            if client.collections.exists(name):
                client.collections.delete(name)
    finally:
        client.close()


@pytest.fixture
def make_store(target: WeaviateTarget, names: list[str]) -> Iterator[MakeStore]:
    stores: list[WeaviateChunkStore] = []

    def make(headers: dict[str, str] | None = None, **kwargs: Any) -> WeaviateChunkStore:
        kwargs.setdefault("collection", target.unique_name())
        kwargs.setdefault("vectorizer", "none")
        kwargs.setdefault("retry_base_delay", 0.01)
        kwargs.setdefault("attempts", 2)
        names.append(kwargs["collection"])
        if kwargs.get("alias"):
            names.append(kwargs["alias"])
        client = connect(replace(target.settings, headers=headers or {}))
        store = WeaviateChunkStore(client, **kwargs)
        store.ensure_schema()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def make_pipeline(pg_url: str, root: Path, store: WeaviateChunkStore, run_id: str) -> Pipeline:
    registry = PostgresRegistry(pg_url)
    registry.migrate()
    return Pipeline(
        registry=registry,
        objects=LocalObjectStore(root / "objects"),
        store=store,
        run_id=run_id,
        workers=1,
        batch_size=20,
        log=lambda _msg: None,
    )


def run(p: Pipeline, **kwargs: Any) -> dict[str, Any]:
    """The chunk stage's report, with the normalize stage's skips (unchanged documents stop
    there)."""
    skipped = normalize_partition(p, PART, **kwargs).docs_skipped
    return {**chunk_partition(p, PART, **kwargs).as_dict(), "unchanged": skipped}


def contents(store: WeaviateChunkStore, uids: list[str]) -> list[tuple[str, str, str]]:
    """(uuid, parent_uid, text) of every stored chunk of these documents, by uuid."""
    return sorted((c.uuid, c.parent_uid, c.properties["text"]) for c in store.fetch(uids))


def ledger_chunks(pg_url: str) -> dict[str, set[str]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT uid, chunk_uuids::text[] FROM reingest.ledger").fetchall()
    return {uid: set(uuids) for uid, uuids in rows}


def put_corpus(corpus: Corpus, pmids: range) -> list[str]:
    return [corpus.put_record(record(pmid, sentences=2 + pmid % 35)) for pmid in pmids]


def test_a_full_run_lands_every_document_and_a_rerun_skips_them_all(
    pg_url: str, tmp_path: Path, make_store: MakeStore
) -> None:
    store = make_store()
    corpus = make_corpus(pg_url, tmp_path)
    uids = put_corpus(corpus, range(1, 41))
    pipeline = make_pipeline(pg_url, tmp_path, store, "run-1")

    report = run(pipeline)
    assert report["docs_written"] == 40 and report["docs_failed"] == 0
    assert store.count() == report["chunks_written"] > 40  # long abstracts split
    held = ledger_chunks(pg_url)
    stored = contents(store, uids)
    assert {u for u, _, _ in stored} == set().union(*held.values())
    for uid in uids:  # per document: exactly the ledger's chunks
        assert {u for u, parent, _ in stored if parent == uid} == held[uid]

    pipeline.run_id = "run-2"
    again = run(pipeline)
    assert again["docs_written"] == 0 and again["chunks_written"] == 0
    assert again["unchanged"] == 40
    assert contents(store, uids) == stored


def test_an_edited_document_that_shrinks_loses_its_stale_tail(
    pg_url: str, tmp_path: Path, make_store: MakeStore
) -> None:
    store = make_store()
    corpus = make_corpus(pg_url, tmp_path)
    corpus.put_record(record(5, sentences=60))
    corpus.put_record(record(6, sentences=60))
    pipeline = make_pipeline(pg_url, tmp_path, store, "run-1")
    run(pipeline)
    before = {u for u, _, _ in contents(store, ["pubmed:5"])}
    assert len(before) > 2

    corpus.put_record(record(5, sentences=2))  # same day, new content hash
    pipeline.run_id = "run-2"
    report = run(pipeline)
    after = {u for u, _, _ in contents(store, ["pubmed:5"])}
    assert len(after) == 1 and after < before
    assert report["chunks_deleted"] == len(before) - 1
    assert ledger_chunks(pg_url)["pubmed:5"] == after
    assert store.count(["pubmed:6"]) > 2  # the other document is untouched


def test_per_object_failures_become_store_failure_rows_and_a_rerun_repairs_them(
    pg_url: str, tmp_path: Path, make_store: MakeStore, fake: FakeWeaviate
) -> None:
    store = make_store()
    corpus = make_corpus(pg_url, tmp_path)
    uids = put_corpus(corpus, range(1, 21))
    broken = {"pubmed:3": "shard is read-only", "pubmed:7": "UNAVAILABLE: connection reset"}
    fake.faults.failing_parents = dict(broken)
    pipeline = make_pipeline(pg_url, tmp_path, store, "run-1")

    report = run(pipeline)
    assert report["docs_written"] == 18 and report["failures_by_stage"] == {"store": 2}
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT uid, stage, kind, message FROM reingest.ingestion_failures"
            " WHERE resolved_at IS NULL ORDER BY uid"
        ).fetchall()
    assert [(uid, stage, kind) for uid, stage, kind, _ in rows] == [
        ("pubmed:3", "store", "transient"),
        ("pubmed:7", "store", "transient"),
    ]
    assert all(broken[uid] in message for uid, _, _, message in rows)
    assert set(ledger(pg_url)) == set(uids) - set(broken)  # no ledger row without its chunks
    assert store.count(list(broken)) == 0

    # The store accepts them again: a repair run of just those documents lands them.
    fake.faults = Faults()
    pipeline.run_id = "run-2"
    repaired = run(pipeline, uids=sorted(broken))
    assert repaired["docs_written"] == 2 and repaired["docs_failed"] == 0
    assert set(ledger(pg_url)) == set(uids)
    held = ledger_chunks(pg_url)
    for uid in broken:
        assert {u for u, _, _ in contents(store, [uid])} == held[uid]
    assert [(uid, resolved_by) for uid, _, _, _, resolved_by in failures(pg_url)] == [
        ("pubmed:3", "run-2"),
        ("pubmed:7", "run-2"),
    ]


def test_text2vec_openai_without_a_key_stops_the_run_with_one_message(
    pg_url: str, tmp_path: Path, make_store: MakeStore, fake: FakeWeaviate
) -> None:
    """Before: the fake stored objects without vectors; a real server fails every object with
    "no api key found", which became one failure row per document for the repair sensor."""
    store = make_store(vectorizer="text2vec-openai")
    put_corpus(make_corpus(pg_url, tmp_path), range(1, 21))
    pipeline = make_pipeline(pg_url, tmp_path, store, "run-1")
    normalize_partition(pipeline, PART)
    with pytest.raises(ConfigurationError) as caught:
        chunk_partition(pipeline, PART)
    assert caught.value.setting == "REINGEST_OPENAI_API_KEY"
    assert "no api key found" in str(caught.value)
    assert fake.calls["BatchObjects"] == 1
    assert failures(pg_url) == [] and ledger(pg_url) == {}


def test_provider_throttling_is_retried_and_what_outlasts_it_becomes_failure_rows(
    pg_url: str, tmp_path: Path, make_store: MakeStore, fake: FakeWeaviate
) -> None:
    key = {"X-OpenAI-Api-Key": "sk-test-key-0123456789"}
    store = make_store(vectorizer="text2vec-openai", headers=key, attempts=3)
    uids = put_corpus(make_corpus(pg_url, tmp_path), range(1, 21))
    pipeline = make_pipeline(pg_url, tmp_path, store, "run-1")

    fake.openai.behaviour = OpenAIBehaviour(throttle=2)  # 429 twice, then vectors
    assert run(pipeline)["docs_written"] == 20
    assert failures(pg_url) == []

    fake.openai.behaviour = OpenAIBehaviour(throttle=1_000)  # throttled for good
    pipeline.run_id = "run-2"
    report = run(pipeline, force=True)
    assert report["docs_written"] == 0 and report["failures_by_stage"] == {"store": 20}
    assert {(uid, kind) for uid, kind, *_ in failures(pg_url)} == {
        (uid, "transient") for uid in uids
    }


class HashEmbedder:
    """Deterministic 8-dimensional vectors; ``id`` names the model like the real embedders."""

    dimensions = 8

    def __init__(self, model: str) -> None:
        self.id = f"test:{model}:{self.dimensions}"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float((hash(t) >> i) % 7) for i in range(self.dimensions)] for t in texts]


def test_self_provided_vectors_are_written_and_a_new_embedder_re_embeds_everything(
    pg_url: str, tmp_path: Path, make_store: MakeStore
) -> None:
    store = make_store()
    corpus = make_corpus(pg_url, tmp_path)
    put_corpus(corpus, range(1, 11))
    pipeline = make_pipeline(pg_url, tmp_path, store, "run-1")
    pipeline.embedder = HashEmbedder("a")
    assert run(pipeline)["docs_written"] == 10
    pipeline.run_id = "run-2"
    assert run(pipeline)["unchanged"] == 10  # same model: nothing to do

    pipeline.embedder = HashEmbedder("b")
    pipeline.run_id = "run-3"
    assert run(pipeline)["docs_written"] == 10
    with psycopg.connect(pg_url) as conn:
        ids = conn.execute("SELECT DISTINCT embedder_id FROM reingest.ledger").fetchall()
    assert ids == [("test:b:8",)]


def test_cutover_promotes_only_a_collection_whose_partitions_all_validate(
    pg_url: str, tmp_path: Path, target: WeaviateTarget, make_store: MakeStore
) -> None:
    alias = target.unique_name("DocumentChunks")
    corpus = make_corpus(pg_url, tmp_path)
    uids = put_corpus(corpus, range(1, 21))
    uids += [corpus.put_record(record(pmid), day="2026-11-04") for pmid in range(21, 26)]
    parts = [PART, Partition("pubmed", "2026-11-04")]

    def write(collection: str) -> WeaviateChunkStore:
        store = make_store(collection=collection, alias=alias)
        pipeline = make_pipeline(pg_url, tmp_path, store, f"run-{collection}")
        for part in parts:
            normalize_partition(pipeline, part)
            chunk_partition(pipeline, part)
        return store

    registry = make_registry(pg_url)
    objects = LocalObjectStore(tmp_path / "objects")

    def cut(store: WeaviateChunkStore) -> CutoverReport:
        return cutover(registry, store, objects, parts, promote=store.promote, log=lambda _m: None)

    blue = write(target.unique_name())
    first = cut(blue)
    assert first.promoted and first.previous is None
    assert blue.alias_target() == blue.collection

    # The green collection lost a document's chunks behind the ledger's back: no cutover.
    green = write(target.unique_name())
    green.delete_parents(["pubmed:4"])
    refused = cut(green)
    assert not refused.promoted and refused.failed_partitions == [PART.key]
    assert green.alias_target() == blue.collection

    # Re-written, it validates; the alias moves and names what readers saw before.
    green_pipeline = make_pipeline(pg_url, tmp_path, green, "run-fix")
    run(green_pipeline, force=True)
    second = cut(green)
    assert second.promoted and second.previous == blue.collection
    assert green.alias_target() == green.collection
    # Readers querying the alias see the green collection's objects.
    client = green.client
    through_alias = client.collections.use(alias).aggregate.over_all(total_count=True)
    assert through_alias.total_count == green.count()


def make_registry(pg_url: str) -> PostgresRegistry:
    registry = PostgresRegistry(pg_url)
    registry.migrate()
    return registry


def weaviate_resource(
    target: WeaviateTarget, pg_url: str, root: Path, *, collection: str, alias: str
) -> ReingestResource:
    settings = target.settings
    return ReingestResource(
        postgres=PostgresResource(url=pg_url),
        object_store=ObjectStoreResource(kind="local", local_root=str(root / "objects")),
        chunk_store=ChunkStoreResource(
            kind="weaviate",
            weaviate_http_host=settings.http_host,
            weaviate_http_port=settings.http_port,
            weaviate_http_secure=settings.http_secure,
            weaviate_grpc_host=settings.grpc_host or settings.http_host,
            weaviate_grpc_port=settings.grpc_port,
            weaviate_grpc_secure=settings.grpc_secure,
            weaviate_api_key=settings.api_key or "",
            weaviate_vectorizer="none",
            weaviate_collection=collection,
            weaviate_alias=alias,
        ),
        batch_size=20,
        workers=1,
    )


def execute(job: Any, reingest: ReingestResource, instance: DagsterInstance, **config: Any) -> Any:
    resolved = Definitions(jobs=[job], resources={"reingest": reingest}).resolve_job_def(job.name)
    run_config = {"ops": {f"{job.name.removesuffix('_job')}_op": {"config": config}}}
    return resolved.execute_in_process(
        instance=instance, run_config=run_config if config else None, raise_on_error=False
    )


def test_dagster_cutover_job_moves_the_alias_and_rollback_job_moves_it_back(
    pg_url: str, tmp_path: Path, target: WeaviateTarget, names: list[str]
) -> None:
    corpus = make_corpus(pg_url, tmp_path)
    put_corpus(corpus, range(1, 11))
    alias = target.unique_name("DocumentChunks")
    blue, green = target.unique_name(), target.unique_name()
    names.extend([alias, blue, green])
    instance = DagsterInstance.ephemeral()
    for collection in (blue, green):
        reingest = weaviate_resource(target, pg_url, tmp_path, collection=collection, alias=alias)
        result = materialize(
            [normalized_documents, document_chunks_v2],
            partition_key=PART.key,
            resources={"reingest": reingest},
            instance=instance,
        )
        assert result.success
        cut = execute(cutover_job, reingest, instance)
        assert cut.success
        assert cut.output_for_node("cutover_op")["target"] == f"weaviate:{collection}"

    client = target.connect()
    try:
        assert alias_target(client, alias) == green
        back = execute(rollback_job, reingest, instance, alias_target=blue)
        assert back.success
        assert back.output_for_node("rollback_op")["alias_previous"] == green
        assert alias_target(client, alias) == blue
    finally:
        client.close()


def test_alias_mode_on_a_server_without_aliases_says_which_version_it_needs(
    pg_url: str, tmp_path: Path, target: WeaviateTarget, fake: FakeWeaviate, names: list[str]
) -> None:
    fake.faults.server_version = "1.31.4"
    collection = target.unique_name()
    names.append(collection)
    reingest = weaviate_resource(target, pg_url, tmp_path, collection=collection, alias="Chunks")
    result = execute(cutover_job, reingest, DagsterInstance.ephemeral())
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = str(failure.step_failure_data.error)
    assert "1.31.4" in message and "1.32" in message


@pytest.mark.slow
def test_cli_full_into_weaviate_then_cutover_and_alias_rollback(
    pg_url: str, tmp_path: Path, target: WeaviateTarget, names: list[str]
) -> None:
    home = tmp_path / "home"
    put_corpus(make_corpus(pg_url, home), range(1, 11))
    alias = target.unique_name("DocumentChunks")
    blue, green = target.unique_name(), target.unique_name()
    names.extend([alias, blue, green])
    settings = target.settings
    env = {
        **os.environ,
        "REINGEST_HOME": str(home),
        "REINGEST_DATABASE_URL": pg_url,
        "REINGEST_WORKERS": "1",
        "REINGEST_WEAVIATE_HTTP_HOST": settings.http_host,
        "REINGEST_WEAVIATE_HTTP_PORT": str(settings.http_port),
        "REINGEST_WEAVIATE_GRPC_HOST": settings.grpc_host or settings.http_host,
        "REINGEST_WEAVIATE_GRPC_PORT": str(settings.grpc_port),
        "REINGEST_WEAVIATE_VECTORIZER": "none",
        "REINGEST_WEAVIATE_ALIAS": alias,
    }
    env.pop("DAGSTER_HOME", None)
    if target.fake is not None:
        # The client's best-effort PyPI version probe fails fast instead of leaving the machine.
        env["HTTPS_PROXY"] = "http://127.0.0.1:9"

    def cli(*args: str, collection: str) -> tuple[int, Any]:
        store = {} if "--store" in args else {"REINGEST_STORE": "weaviate"}
        proc = subprocess.run(
            [sys.executable, "-m", "reingest_assets.cli", *args, "--json"],
            env={**env, **store, "REINGEST_WEAVIATE_COLLECTION": collection},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.stdout.strip(), proc.stderr[-3000:]
        return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])

    for collection in (blue, green):
        code, full = cli("full", "--store", "weaviate", collection=collection)
        assert code == 0 and full["docs_written"] == 10
        code, cut = cli("cutover", collection=collection)
        assert code == 0 and cut["promoted"] and cut["target"] == f"weaviate:{collection}"
    assert cut["previous"] == blue

    code, back = cli("rollback", "--alias-target", blue, collection=green)
    assert code == 0 and back["alias_previous"] == green
    client = target.connect()
    try:
        assert alias_target(client, alias) == blue
    finally:
        client.close()


@pytest.mark.slow
def test_cli_full_with_text2vec_openai_and_no_key_fails_with_one_message(
    pg_url: str, tmp_path: Path, fake: FakeWeaviate, target: WeaviateTarget, names: list[str]
) -> None:
    home = tmp_path / "home"
    put_corpus(make_corpus(pg_url, home), range(1, 11))
    collection = target.unique_name()
    names.append(collection)
    settings = target.settings
    env = {
        **os.environ,
        "REINGEST_HOME": str(home),
        "REINGEST_DATABASE_URL": pg_url,
        "REINGEST_WORKERS": "1",
        "REINGEST_STORE": "weaviate",
        "REINGEST_WEAVIATE_HTTP_HOST": settings.http_host,
        "REINGEST_WEAVIATE_HTTP_PORT": str(settings.http_port),
        "REINGEST_WEAVIATE_GRPC_HOST": settings.grpc_host or settings.http_host,
        "REINGEST_WEAVIATE_GRPC_PORT": str(settings.grpc_port),
        "REINGEST_WEAVIATE_VECTORIZER": "text2vec-openai",
        "REINGEST_WEAVIATE_COLLECTION": collection,
        "HTTPS_PROXY": "http://127.0.0.1:9",  # the client's PyPI probe fails fast
    }
    env.pop("DAGSTER_HOME", None)
    env.pop("REINGEST_OPENAI_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "reingest_assets.cli", "full", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    (error,) = [run["error"] for run in report["runs"] if run["error"]]
    assert "REINGEST_OPENAI_API_KEY" in error and "no api key found" in error
    assert "Traceback" not in proc.stderr
    assert failures(pg_url) == []

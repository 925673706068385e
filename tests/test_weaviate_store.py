"""WeaviateChunkStore and connect() against the real client, talking to the fake server
(tests/weaviate_server) or, with WEAVIATE_URL set, a live Weaviate. Fault-injection tests run
on the fake only."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.exceptions import WeaviateInsertManyAllFailedError, WeaviateQueryError

from reingest_assets.domain.failures import ConfigurationError, TransientError
from reingest_assets.resources.stores.weaviate import (
    SchemaMismatchError,
    WeaviateChunkStore,
    WeaviateStoreError,
    _differences,
    _tree,
    alias_target,
    chunk_properties,
    point_alias,
    versioned_collection,
    weaviate_error_kind,
)
from reingest_assets.resources.weaviate_connection import (
    WeaviateSettings,
    WeaviateUnavailableError,
    connect,
)
from support.store_contract import make_chunks
from support.weaviate_target import LIVE_URL, WeaviateTarget, fake_settings
from weaviate_server import FakeWeaviate, Faults, OpenAIBehaviour

MakeStore = Callable[..., WeaviateChunkStore]


@pytest.fixture
def make_store(target: WeaviateTarget) -> Iterator[MakeStore]:
    """Stores on fresh, uniquely named collections; every collection and alias is dropped after."""
    clients: list[Any] = []
    names: list[str] = []

    def make(headers: dict[str, str] | None = None, **kwargs: Any) -> WeaviateChunkStore:
        client = connect(replace(target.settings, headers=headers or {}))
        clients.append(client)
        kwargs.setdefault("collection", target.unique_name())
        kwargs.setdefault("vectorizer", "none")
        kwargs.setdefault("retry_base_delay", 0.01)
        names.append(kwargs["collection"])
        if kwargs.get("alias"):
            names.append(kwargs["alias"])
        return WeaviateChunkStore(client, **kwargs)

    yield make
    if target.fake is not None:
        target.fake.faults = Faults()
    cleanup = target.connect()
    try:
        for name in names:
            if cleanup.collections.exists(name) and not _is_alias(cleanup, name):
                cleanup.collections.delete(name)
        for name in names:
            if _is_alias(cleanup, name):
                cleanup.alias.delete(alias_name=name)
    finally:
        cleanup.close()
        for client in clients:
            client.close()


def _is_alias(client: Any, name: str) -> bool:
    try:
        return client.alias.get(alias_name=name) is not None
    except Exception:  # servers without aliases
        return False


# --- schema ---------------------------------------------------------------------------------


def test_ensure_schema_creates_the_original_properties(make_store: MakeStore) -> None:
    store = make_store()
    store.ensure_schema()
    store.ensure_schema()  # present and matching: no error, nothing changes
    config = store.client.collections.use(store.collection).config.get()
    props = {p.name: p for p in config.properties}
    assert list(props) == [
        "parent_uid", "source", "title", "text", "section", "published_at",
        "year", "tokens", "n_sentences", "quality_total", "meta",
    ]  # fmt: skip
    assert props["parent_uid"].tokenization == Tokenization.FIELD
    assert props["parent_uid"].index_filterable and not props["parent_uid"].index_searchable
    assert props["text"].index_searchable and props["text"].tokenization == Tokenization.WORD
    assert props["published_at"].data_type == DataType.DATE
    assert props["quality_total"].data_type == DataType.NUMBER
    meta = {p.name: p for p in props["meta"].nested_properties or []}
    assert meta["chunk_index"].data_type == DataType.INT
    pubmed = (meta["src"].nested_properties or [])[0]
    assert pubmed.name == "pubmed"
    nested = {p.name: p.data_type for p in pubmed.nested_properties or []}
    assert nested["mesh_terms"] == DataType.TEXT_ARRAY
    assert nested["authors"] == DataType.TEXT_ARRAY
    assert nested["quality_total"] == DataType.NUMBER
    assert config.vector_config is not None
    assert config.vector_config["default"].vectorizer.vectorizer == "none"


def test_schema_mismatch_lists_every_difference(make_store: MakeStore) -> None:
    store = make_store()
    store.client.collections.create(
        store.collection,
        properties=[
            Property(name="parent_uid", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
            Property(name="source", data_type=DataType.TEXT),
            Property(name="title", data_type=DataType.TEXT),
            Property(name="text", data_type=DataType.TEXT),
            Property(name="section", data_type=DataType.TEXT),
            Property(name="published_at", data_type=DataType.TEXT),
            Property(name="year", data_type=DataType.INT),
            Property(name="tokens", data_type=DataType.INT),
            Property(name="n_sentences", data_type=DataType.INT),
            Property(name="quality_total", data_type=DataType.NUMBER),
            Property(
                name="meta",
                data_type=DataType.OBJECT,
                nested_properties=[Property(name="chunk_id", data_type=DataType.INT)],
            ),
            Property(name="legacy_score", data_type=DataType.NUMBER),
        ],
        vector_config=Configure.Vectors.self_provided(),
    )
    with pytest.raises(SchemaMismatchError) as caught:
        store.ensure_schema()
    diffs = caught.value.differences
    assert "parent_uid: tokenization word, expected field" in diffs
    assert "published_at: data type text, expected date" in diffs
    assert "meta.chunk_id: data type int, expected text" in diffs
    assert "meta.src: missing (expected object)" in diffs
    assert "legacy_score: unexpected property (number)" in diffs
    assert store.collection in str(caught.value)
    assert all(d in str(caught.value) for d in diffs)


# --- writes and reads -----------------------------------------------------------------------


def test_upsert_with_vectors_fetch_and_count(make_store: MakeStore) -> None:
    store = make_store()
    store.ensure_schema()
    chunks = make_chunks("pubmed:1", 3) + make_chunks("pubmed:2", 2)
    vectors = [[float(i), 0.5, 0.25] for i in range(len(chunks))]
    assert store.upsert(chunks, vectors) == {}
    assert store.count() == 5
    assert store.count(["pubmed:1"]) == 3
    stored = {s.uuid: s for s in store.fetch(["pubmed:1", "pubmed:2"])}
    assert set(stored) == {c.uuid for c in chunks}
    for chunk in chunks:
        assert stored[chunk.uuid].properties == chunk.properties()
    vec = store.client.collections.use(store.collection).query.fetch_object_by_id(
        chunks[1].uuid, include_vector=True
    )
    if vec is not None and vec.vector:  # the fake does not return vectors
        assert vec.vector["default"] == pytest.approx(vectors[1])


def test_reupsert_with_same_ids_leaves_no_duplicates(make_store: MakeStore) -> None:
    store = make_store()
    store.ensure_schema()
    assert store.upsert(make_chunks("pubmed:7", 4)) == {}
    assert store.upsert(make_chunks("pubmed:7", 4, text="second")) == {}
    assert store.count(["pubmed:7"]) == 4
    assert {s.properties["text"].split()[0] for s in store.fetch(["pubmed:7"])} == {"second"}


def test_an_invalid_object_is_reported_for_its_document(make_store: MakeStore) -> None:
    store = make_store()
    store.ensure_schema()
    assert store.upsert(make_chunks("pubmed:1", 1), [[0.1, 0.2, 0.3]]) == {}
    # A vector of another length is rejected by the server for that object only.
    errors = store.upsert(
        make_chunks("pubmed:2", 1) + make_chunks("pubmed:3", 1), [[0.1, 0.2, 0.3], [0.1, 0.2]]
    )
    assert list(errors) == ["pubmed:3"]
    assert "length" in errors["pubmed:3"]
    assert store.count(["pubmed:2"]) == 1


def test_per_object_failures_surface_per_document(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    store = make_store()
    store.ensure_schema()
    fake.faults.failing_parents = {"pubmed:2": "shard is read-only"}
    errors = store.upsert(make_chunks("pubmed:1", 2) + make_chunks("pubmed:2", 3))
    assert errors == {"pubmed:2": "shard is read-only"}
    assert store.count(["pubmed:1"]) == 2
    assert store.count(["pubmed:2"]) == 0
    assert fake.calls["BatchObjects"] == 1  # not transient: no retry


def test_transient_batch_errors_are_retried(make_store: MakeStore, fake: FakeWeaviate) -> None:
    store = make_store(batch_size=500)
    store.ensure_schema()
    fake.faults.rpc_faults["BatchObjects"] = [
        (grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
    ] * 2
    assert store.upsert(make_chunks("pubmed:1", 3)) == {}
    assert store.count() == 3
    assert fake.calls["BatchObjects"] == 3


def test_unavailable_is_absorbed_by_the_client_retry(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    store = make_store()
    store.ensure_schema()
    fake.faults.rpc_faults["BatchObjects"] = [(grpc.StatusCode.UNAVAILABLE, "connection reset")]
    assert store.upsert(make_chunks("pubmed:1", 2)) == {}
    assert store.count() == 2


def test_transient_errors_past_the_attempts_are_reported(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    store = make_store(attempts=2, batch_size=500)
    store.ensure_schema()
    fake.faults.rpc_faults["BatchObjects"] = [
        (grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
    ] * 5
    errors = store.upsert(make_chunks("pubmed:1", 2) + make_chunks("pubmed:2", 1))
    assert set(errors) == {"pubmed:1", "pubmed:2"}
    assert "deadline exceeded" in errors["pubmed:1"]
    assert fake.calls["BatchObjects"] == 2


def test_deletes_loop_while_each_call_is_capped(make_store: MakeStore, fake: FakeWeaviate) -> None:
    store = make_store(batch_size=500)
    store.ensure_schema()
    fake.faults.delete_cap = 40  # the real server's cap is 10,000; the loop is the same
    many = make_chunks("pubmed:big", 100)
    store.upsert(many + make_chunks("pubmed:small", 3))
    assert store.delete_parents(["pubmed:big"]) == 100
    assert fake.calls["BatchDelete"] == 4  # 40 + 40 + 20, then one that matches nothing
    assert store.count() == 3
    store.upsert(many)
    assert store.delete([c.uuid for c in many[:90]]) == 90
    assert store.count() == 13


@pytest.mark.slow
def test_delete_parents_past_ten_thousand_objects(make_store: MakeStore) -> None:
    store = make_store(batch_size=1000, concurrency=4)
    store.ensure_schema()
    assert store.upsert(make_chunks("pubmed:huge", 10_050)) == {}
    assert store.delete_parents(["pubmed:huge"]) == 10_050
    assert store.count() == 0


# --- blue/green -----------------------------------------------------------------------------


def test_alias_promote_and_rollback(make_store: MakeStore, target: WeaviateTarget) -> None:
    alias = target.unique_name("DocumentChunkAlias")
    blue = make_store(collection=versioned_collection(target.unique_name("blue")), alias=alias)
    blue.ensure_schema()
    blue.upsert(make_chunks("pubmed:1", 2))
    assert blue.promote() is None
    assert blue.alias_target() == blue.collection

    green = make_store(collection=versioned_collection("2026-11-27T10:00", base=alias), alias=alias)
    assert green.collection == f"{alias}_2026_11_27T10_00"
    green.ensure_schema()
    green.upsert(make_chunks("pubmed:1", 2) + make_chunks("pubmed:2", 1))
    assert green.promote() == blue.collection
    reader = make_store(collection=alias)  # readers query the alias
    assert reader.count() == 3

    assert point_alias(blue.client, alias, blue.collection) == green.collection  # rollback
    assert alias_target(blue.client, alias) == blue.collection
    assert reader.count() == 2


def test_alias_needs_weaviate_1_32(make_store: MakeStore, fake: FakeWeaviate) -> None:
    fake.faults.server_version = "1.31.4"
    store = make_store(alias="DocumentChunkAlias_old")
    with pytest.raises(WeaviateStoreError, match=r"Weaviate 1\.31\.4 has no collection aliases"):
        store.ensure_schema()
    assert not store.client.collections.exists(store.collection)


def test_alias_cannot_take_the_name_of_a_collection(
    make_store: MakeStore, target: WeaviateTarget
) -> None:
    existing = make_store()
    existing.ensure_schema()
    store = make_store(alias=existing.collection)
    with pytest.raises(WeaviateStoreError, match="is a collection, not an alias"):
        store.ensure_schema()


# --- connect --------------------------------------------------------------------------------


def test_connect_reports_the_endpoint_and_never_the_key() -> None:
    with socket.socket() as http, socket.socket() as grpc_sock:  # ports nothing listens on
        http.bind(("127.0.0.1", 0))
        grpc_sock.bind(("127.0.0.1", 0))
        port, grpc_port = http.getsockname()[1], grpc_sock.getsockname()[1]
    settings = WeaviateSettings(
        http_host="127.0.0.1",
        http_port=port,
        grpc_port=grpc_port,
        api_key="sekrit-key",
        headers={"X-OpenAI-Api-Key": "sk-hidden"},
        init_timeout=2.0,
    )
    with pytest.raises(WeaviateUnavailableError) as caught:
        connect(settings)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "sekrit-key" not in message and "sk-hidden" not in message
    assert "sekrit-key" not in repr(settings) and "sk-hidden" not in repr(settings)


def test_connect_sends_the_api_key(fake: FakeWeaviate) -> None:
    fake.faults.api_key = "right-key"
    client = connect(fake_settings(fake, api_key="right-key"))
    try:
        assert client.is_ready()
    finally:
        client.close()
    with pytest.raises(WeaviateUnavailableError) as caught:
        connect(fake_settings(fake, api_key="wrong-key"))
    assert "wrong-key" not in str(caught.value)


def test_connect_refuses_a_server_that_is_not_ready(fake: FakeWeaviate) -> None:
    fake.faults.not_ready = True
    with pytest.raises(WeaviateUnavailableError, match="is not ready"):
        connect(fake_settings(fake))


@pytest.mark.weaviate_live
@pytest.mark.skipif(not LIVE_URL, reason="needs a live Weaviate (WEAVIATE_URL)")
def test_live_server_supports_aliases(target: WeaviateTarget) -> None:
    client = target.connect()
    try:
        assert alias_target(client, target.unique_name("NoSuchAlias")) is None
    finally:
        client.close()


# --- issue 15: transient errors on every call the store makes are retried in place ----------

TRANSIENT_STATUSES = [
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
]


def _write(store: WeaviateChunkStore, chunks: list[Any]) -> object:
    return store.upsert(chunks)


def _delete(store: WeaviateChunkStore, chunks: list[Any]) -> object:
    return store.delete_parents(["pubmed:1"])


def _fetch(store: WeaviateChunkStore, chunks: list[Any]) -> object:
    return sorted(c.uuid for c in store.fetch(["pubmed:1"]))


def _count(store: WeaviateChunkStore, chunks: list[Any]) -> object:
    return store.count(["pubmed:1"])


@pytest.mark.parametrize("status", TRANSIENT_STATUSES, ids=lambda s: s.name)
@pytest.mark.parametrize(
    ("rpc", "call", "expected"),
    [
        ("BatchObjects", _write, {}),
        ("BatchDelete", _delete, 3),
        ("Search", _fetch, sorted(c.uuid for c in make_chunks("pubmed:1", 3))),
        ("Aggregate", _count, 3),
    ],
    ids=["BatchObjects", "BatchDelete", "Search", "Aggregate"],
)
def test_a_transient_status_on_any_rpc_is_retried_in_place(
    make_store: MakeStore,
    fake: FakeWeaviate,
    rpc: str,
    call: Callable[[WeaviateChunkStore, list[Any]], object],
    expected: object,
    status: grpc.StatusCode,
) -> None:
    """Before: the client retries nothing on BatchDelete and only UNAVAILABLE on Search and
    Aggregate, and the store did not see its query/delete errors as transient."""
    store = make_store()
    store.ensure_schema()
    chunks = make_chunks("pubmed:1", 3)
    assert store.upsert(chunks) == {}
    before = fake.calls[rpc]
    fake.faults.rpc_faults[rpc] = [(status, "injected by the test")]
    assert call(store, chunks) == expected
    assert fake.calls[rpc] - before >= 2  # failed once, then succeeded


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/schema/"),  # exists, config
        ("POST", "/v1/schema"),  # create
        ("GET", "/v1/meta"),  # the version check before aliases
        ("GET", "/v1/aliases/"),
        ("POST", "/v1/aliases"),
        ("PUT", "/v1/aliases/"),
    ],
)
def test_a_transient_status_on_schema_and_alias_calls_is_retried(
    make_store: MakeStore, fake: FakeWeaviate, method: str, path: str, status: int
) -> None:
    first = make_store(alias=WeaviateTarget.unique_name("Alias_test"))
    second = make_store(alias=first.alias)
    fake.faults.rest_faults = [(method, path, status)]
    first.ensure_schema()
    assert first.promote() is None  # created the alias
    second.ensure_schema()
    assert second.promote() == first.collection
    assert second.alias_target() == second.collection
    assert fake.faults.rest_faults == []  # the fault was met, and survived


def test_a_delete_loop_resumes_where_a_transient_error_stopped_it(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    """Before: one UNAVAILABLE on BatchDelete ended delete_parents after its first call."""
    store = make_store(batch_size=500)
    store.ensure_schema()
    fake.faults.delete_cap = 40
    store.upsert(make_chunks("pubmed:big", 100) + make_chunks("pubmed:small", 3))
    fake.faults.rpc_faults["BatchDelete"] = [
        None,
        (grpc.StatusCode.UNAVAILABLE, "connection reset"),
        None,
        (grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded"),
    ]
    assert store.delete_parents(["pubmed:big"]) == 100
    assert store.count() == 3


def test_a_transient_error_that_outlasts_the_attempts_is_a_transient_failure(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    store = make_store(attempts=2)
    store.ensure_schema()
    fake.faults.rpc_faults["BatchDelete"] = [(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")] * 2
    with pytest.raises(TransientError):
        store.delete_parents(["pubmed:1"])


def test_a_rejected_api_key_is_a_configuration_error(
    target: WeaviateTarget, fake: FakeWeaviate
) -> None:
    fake.faults.api_key = "right"
    client = connect(replace(target.settings, api_key="right"))
    store = WeaviateChunkStore(client, collection=target.unique_name(), vectorizer="none")
    try:
        store.ensure_schema()
        fake.faults.api_key = "rotated"
        with pytest.raises(ConfigurationError) as caught:
            store.count()
        assert caught.value.setting == "REINGEST_WEAVIATE_API_KEY"
    finally:
        fake.faults.api_key = None
        store.close()


# --- issue 15: what the test server checks, as Weaviate 1.33 does (also run live) -----------


def test_non_auth_errors_come_back_as_unknown(target: WeaviateTarget) -> None:
    """adapters/handlers/grpc/server.go: not INVALID_ARGUMENT, whatever the error."""
    client = target.connect()
    try:
        with pytest.raises(WeaviateQueryError) as caught:
            client.collections.use(target.unique_name("Missing")).query.fetch_objects(limit=1)
    finally:
        client.close()
    context = caught.value.__context__
    assert isinstance(context, grpc.RpcError)
    assert context.code() == grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    assert weaviate_error_kind(caught.value) == "configuration"  # "could not find class"


def test_a_capped_delete_reports_every_match(make_store: MakeStore, fake: FakeWeaviate) -> None:
    """adapters/repos/db/batch.go: matches counts every match, successful what was deleted."""
    store = make_store(batch_size=500)
    store.ensure_schema()
    fake.faults.delete_cap = 40
    store.upsert(make_chunks("pubmed:big", 100))
    result = store._col.data.delete_many(where=Filter.by_property("parent_uid").equal("pubmed:big"))
    assert (result.matches, result.successful, result.failed) == (100, 40, 0)


def test_an_alias_answers_for_its_collections_schema(
    make_store: MakeStore, target: WeaviateTarget
) -> None:
    """usecases/schema/class.go: GET /v1/schema/{alias} is the target's schema."""
    store = make_store(alias=WeaviateTarget.unique_name("Alias_test"))
    store.ensure_schema()
    store.promote()
    assert store.alias is not None
    assert store.client.collections.exists(store.alias)
    config = store.client.collections.use(store.alias).config.get(simple=True)
    assert config.name == store.collection


def test_alias_names_start_upper_case_and_compare_case_insensitively(
    make_store: MakeStore, target: WeaviateTarget
) -> None:
    """usecases/schema/alias.go."""
    store = make_store()
    store.ensure_schema()
    name = WeaviateTarget.unique_name("alias_lower")
    client = store.client
    client.alias.create(alias_name=name, target_collection=store.collection)
    try:
        found = client.alias.get(alias_name=name.upper())
        assert found is not None
        assert (found.alias, found.collection) == ("A" + name[1:], store.collection)
    finally:
        client.alias.delete(alias_name=name)


def test_auto_schema_extends_a_collection_with_an_unknown_property(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    """Auto-schema is on by default on a real server: an unknown property is added, not
    refused. (Fake only: docker-compose.yml turns it off.)"""
    store = make_store()
    store.ensure_schema()
    store._col.data.insert_many([DataObject(properties={"surprise": "value"})])
    names = {p.name for p in store._col.config.get(simple=True).properties}
    assert "surprise" in names


def test_a_vector_the_collection_does_not_configure_is_refused(make_store: MakeStore) -> None:
    """usecases/objects/validation/vector_validation.go."""
    store = make_store()
    store.ensure_schema()
    with pytest.raises(WeaviateInsertManyAllFailedError) as caught:
        store._col.data.insert_many(
            [DataObject(properties={"parent_uid": "pubmed:1"}, vector={"other": [0.1, 0.2]})]
        )
    assert "does not have configuration for vector other" in str(caught.value)


def test_the_first_vectors_fix_the_dimensions(make_store: MakeStore) -> None:
    """adapters/repos/db/vector/hnsw/insert.go."""
    store = make_store()
    store.ensure_schema()
    chunks = make_chunks("pubmed:1", 2)
    assert store.upsert(chunks[:1], [[0.1] * 8]) == {}
    errors = store.upsert(chunks[1:], [[0.1] * 4])
    assert "vector with length 4" in errors["pubmed:1"]
    assert "length 8" in errors["pubmed:1"]


# --- issue 15: server-side vectorization (text2vec-openai through the stand-in endpoint) -----

OPENAI_KEY = {"X-OpenAI-Api-Key": "sk-test-key-0123456789"}


def test_text2vec_openai_vectorizes_every_object_with_the_key_from_the_header(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    store = make_store(vectorizer="text2vec-openai", headers=OPENAI_KEY)
    store.ensure_schema()
    assert store.upsert(make_chunks("pubmed:1", 3)) == {}
    assert fake.openai.behaviour.keys == ["sk-test-key-0123456789"]
    (request,) = fake.openai.behaviour.requests
    assert len(request["input"]) == 3
    stored = store._col.query.fetch_objects(include_vector=True).objects
    assert {len(o.vector["default"]) for o in stored} == {1536}
    # The model fixed the dimensions: self-provided vectors of another size are refused.
    with pytest.raises(WeaviateInsertManyAllFailedError) as caught:
        store._col.data.insert_many([DataObject(properties={}, vector={"default": [0.5] * 8})])
    assert "length 8" in str(caught.value) and "length 1536" in str(caught.value)


def test_text2vec_openai_without_a_key_fails_fast_naming_the_setting(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    """Before: the server stored the objects without vectors; on a real server every object
    fails with the module's "no api key found" and became a failure row of its own."""
    store = make_store(vectorizer="text2vec-openai")
    store.ensure_schema()
    with pytest.raises(ConfigurationError) as caught:
        store.upsert(make_chunks("pubmed:1", 3) + make_chunks("pubmed:2", 2))
    assert caught.value.setting == "REINGEST_OPENAI_API_KEY"
    assert "no api key found" in str(caught.value)
    assert fake.calls["BatchObjects"] == 1  # not retried
    assert store.count() == 0


def test_text2vec_openai_with_a_rejected_key_fails_fast(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    fake.openai.behaviour = OpenAIBehaviour(valid_keys={"sk-the-right-one"})
    store = make_store(vectorizer="text2vec-openai", headers=OPENAI_KEY)
    store.ensure_schema()
    with pytest.raises(ConfigurationError) as caught:
        store.upsert(make_chunks("pubmed:1", 2))
    assert caught.value.setting == "REINGEST_OPENAI_API_KEY"
    assert "failed with status: 401" in str(caught.value)
    assert "Incorrect API key provided" in str(caught.value)
    assert "sk-test-key-0123456789" not in str(caught.value)  # OpenAI masks it


def test_provider_throttling_backs_off_and_is_retried(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    fake.openai.behaviour = OpenAIBehaviour(throttle=2)
    store = make_store(vectorizer="text2vec-openai", headers=OPENAI_KEY, batch_size=500)
    store.ensure_schema()
    assert store.upsert(make_chunks("pubmed:1", 3)) == {}
    assert fake.calls["BatchObjects"] == 3  # 429, 429, then written
    assert store.count() == 3


def test_provider_throttling_past_the_attempts_is_reported_per_document(
    make_store: MakeStore, fake: FakeWeaviate
) -> None:
    fake.openai.behaviour = OpenAIBehaviour(throttle=10)
    store = make_store(vectorizer="text2vec-openai", headers=OPENAI_KEY, attempts=2)
    store.ensure_schema()
    errors = store.upsert(make_chunks("pubmed:1", 2))
    assert "connection to: OpenAI API failed with status: 429" in errors["pubmed:1"]


# --- issue 15: ensure_schema checks the vector configuration; writes stay inside the schema --


def test_ensure_schema_refuses_another_vectorizer_naming_the_setting(
    make_store: MakeStore, target: WeaviateTarget
) -> None:
    name = target.unique_name()
    make_store(collection=name, vectorizer="text2vec-transformers").ensure_schema()
    with pytest.raises(SchemaMismatchError) as caught:
        make_store(collection=name, vectorizer="text2vec-openai").ensure_schema()
    assert caught.value.setting == "REINGEST_WEAVIATE_VECTORIZER"
    assert "vectorizer text2vec-transformers, expected text2vec-openai" in str(caught.value)
    with pytest.raises(SchemaMismatchError):
        make_store(collection=name, vectorizer="none").ensure_schema()


def test_ensure_schema_refuses_a_collection_without_the_default_vector(
    make_store: MakeStore, target: WeaviateTarget
) -> None:
    name = target.unique_name()
    client = target.connect()
    try:
        client.collections.create(
            name,
            properties=chunk_properties(),
            vector_config=Configure.Vectors.self_provided(name="embedding"),
        )
    finally:
        client.close()
    with pytest.raises(SchemaMismatchError) as caught:
        make_store(collection=name).ensure_schema()
    assert "vector default: not configured (the collection has: embedding)" in str(caught.value)


def test_writes_send_only_the_properties_the_collection_defines(make_store: MakeStore) -> None:
    """With auto-schema on, an unexpected property would extend the collection silently."""
    store = make_store()
    store.ensure_schema()
    chunk = make_chunks("pubmed:1", 1)[0]
    odd = replace(chunk, meta={**chunk.meta, "unexpected": "x"})
    assert store.upsert([odd], [[0.1] * 4]) == {}
    config = store._col.config.get(simple=True)
    assert _differences(_tree(chunk_properties()), _tree(config.properties)) == []
    assert store.count() == 1

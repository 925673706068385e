"""Object stores: the local directory and S3 (moto's server over real HTTP, through boto3)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reingest_assets.dagster_resources import ObjectStoreResource
from reingest_assets.domain.failures import DocumentError, TransientError
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.s3_store import S3ObjectStore
from support.s3 import (
    Fault,
    FaultProxy,
    connection_reset,
    fault_proxy,
    internal_error,
    latency,
    moto_s3_server,
    s3_client,
    s3_store,
    slow_down,
    truncated_body,
)

Store = LocalObjectStore | S3ObjectStore
StoreFactory = Callable[..., Store]
TINY_DELAY = 0.001  # backoff base for tests: retries happen, sleeps do not add up


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


def new_bucket(endpoint: str) -> str:
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "local":
        return lambda **options: LocalObjectStore(tmp_path / "objects", **options)
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = new_bucket(endpoint)
    return lambda **options: s3_store(endpoint, bucket, base_delay=TINY_DELAY, **options)


def assert_fetch_error(error: object, *words: str) -> None:
    assert isinstance(error, DocumentError), repr(error)
    assert error.stage == "fetch"
    for word in words:
        assert word in error.message


# -- behaviour both stores share ---------------------------------------------------------------


def test_put_then_get_returns_the_bytes_by_key_or_uri(make_store: StoreFactory) -> None:
    store = make_store()
    store.put("raw/pubmed/1.json", b'{"pmid": "1"}')
    assert store.get("raw/pubmed/1.json") == b'{"pmid": "1"}'
    assert store.get(f"s3://{store.bucket}/raw/pubmed/1.json") == b'{"pmid": "1"}'

    store.put(f"s3://{store.bucket}/raw/pubmed/1.json", b"replaced")
    assert store.get("raw/pubmed/1.json") == b"replaced"


def test_get_many_yields_in_input_order_with_errors_per_item(make_store: StoreFactory) -> None:
    store = make_store(max_in_flight=4)
    for i in range(10):
        store.put(f"docs/{i}", f"doc {i}".encode())
    uris = [f"docs/{i}" for i in (7, 2, 9)] + ["docs/missing"] + [f"docs/{i}" for i in range(7)]

    results = list(store.get_many(uris))

    assert [uri for uri, _ in results] == uris
    for uri, result in results:
        if uri == "docs/missing":
            assert_fetch_error(result, "object not found", uri)
        else:
            assert result == f"doc {uri.removeprefix('docs/')}".encode()


def test_get_many_pulls_the_input_only_as_the_window_moves(make_store: StoreFactory) -> None:
    store = make_store(max_in_flight=3)
    for i in range(12):
        store.put(f"lazy/{i}", b"x")
    pulled = 0

    def uris() -> Iterator[str]:
        nonlocal pulled
        for i in range(12):
            pulled += 1
            yield f"lazy/{i}"

    held = [pulled - handed for handed, _ in enumerate(store.get_many(uris()))]
    assert max(held) <= 3  # taken from the input but not yet handed back


def test_missing_object_is_a_transient_fetch_error(make_store: StoreFactory) -> None:
    # Uploading the object fixes it without a new registry hash: repair must retry it.
    store = make_store()
    with pytest.raises(DocumentError) as caught:
        store.get("raw/nope.json")
    assert_fetch_error(caught.value, "object not found", "raw/nope.json")
    assert caught.value.kind == "transient"


def test_object_over_the_size_cap_is_refused(make_store: StoreFactory) -> None:
    store = make_store(max_object_bytes=1024)
    store.put("fits", b"x" * 1024)
    store.put("too-big", b"x" * 1025)

    assert store.get("fits") == b"x" * 1024
    with pytest.raises(DocumentError) as caught:
        store.get("too-big")
    assert_fetch_error(caught.value, "too large", "1025")


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "http://example.com/x", "s3:///key"])
def test_uris_other_than_s3_or_a_key_are_refused(make_store: StoreFactory, uri: str) -> None:
    with pytest.raises(DocumentError) as caught:
        make_store().get(uri)
    assert_fetch_error(caught.value, uri)


def test_upload_and_download_file(make_store: StoreFactory, tmp_path: Path) -> None:
    store = make_store()
    source = tmp_path / "part.parquet"
    source.write_bytes(b"PAR1" + bytes(range(256)) * 40)

    store.upload_file("normalized/2024-01-01/part.parquet", source)

    target = tmp_path / "downloaded.parquet"
    assert store.download_file("normalized/2024-01-01/part.parquet", target)
    assert target.read_bytes() == source.read_bytes()
    assert not store.download_file("normalized/absent.parquet", tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_list_by_prefix_in_key_order(make_store: StoreFactory) -> None:
    store = make_store()
    keys = ["n/2024-01-02/a", "n/2024-01-01/b", "n/2024-01-01/a", "n-other", "n/2024-01-0x", "m/a"]
    for key in keys:
        store.put(key, b".")

    def uri(key: str) -> str:
        return f"s3://{store.bucket}/{key}"

    assert list(store.list("n/2024-01-01/")) == [uri("n/2024-01-01/a"), uri("n/2024-01-01/b")]
    assert list(store.list(uri("n/2024-01-0"))) == [
        uri("n/2024-01-01/a"),
        uri("n/2024-01-01/b"),
        uri("n/2024-01-02/a"),
        uri("n/2024-01-0x"),
    ]
    assert list(store.list("")) == [uri(key) for key in sorted(keys)]
    assert list(store.list("z/")) == []


def test_delete_removes_the_object_and_tolerates_absence(make_store: StoreFactory) -> None:
    store = make_store()
    store.put("gone", b".")
    store.delete("gone")
    store.delete("gone")
    with pytest.raises(DocumentError):
        store.get("gone")
    assert list(store.list("")) == []


# -- local directory: keys from registry rows must not escape the store -------------------------


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    (tmp_path / "secret").write_text("outside the store")
    return LocalObjectStore(tmp_path / "objects" / "root")


@pytest.mark.parametrize(
    "uri",
    [
        "../../secret",
        "../../../secret",
        "a/../../../../secret",
        "/etc/passwd",
        "s3://reingest/../../secret",
        "s3://../secret",
        "s3://reingest/..",
        "..\\..\\secret",
        "a\x00b",
    ],
)
def test_local_store_refuses_keys_that_leave_it(
    local_store: LocalObjectStore, tmp_path: Path, uri: str
) -> None:
    with pytest.raises(DocumentError) as caught:
        local_store.get(uri)
    assert_fetch_error(caught.value, "refused")

    with pytest.raises(DocumentError):
        local_store.put(uri, b"planted")
    with pytest.raises(DocumentError):
        local_store.download_file(uri, tmp_path / "copy")
    planted = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"planted"]
    assert planted == []


def test_local_store_refuses_symlinks_that_point_out(
    local_store: LocalObjectStore, tmp_path: Path
) -> None:
    bucket_dir = local_store.root / local_store.bucket
    bucket_dir.mkdir(parents=True)
    (bucket_dir / "linked-dir").symlink_to(tmp_path)
    (bucket_dir / "linked-file").symlink_to(tmp_path / "secret")

    for uri in ["linked-dir/secret", "linked-file", "s3://reingest/linked-dir/secret"]:
        with pytest.raises(DocumentError) as caught:
            local_store.get(uri)
        assert_fetch_error(caught.value, "refused")
    with pytest.raises(DocumentError):
        local_store.put("linked-dir/planted", b"planted")
    assert not (tmp_path / "planted").exists()
    assert list(local_store.list("")) == []  # links are not followed when listing either


def test_local_store_failed_write_keeps_the_old_object(local_store: LocalObjectStore) -> None:
    local_store.put("doc", b"old")
    with pytest.raises(FileNotFoundError):
        local_store.upload_file("doc", local_store.root / "no-such-file")
    assert local_store.get("doc") == b"old"
    assert list((local_store.root / ".tmp").iterdir()) == []  # no temp file left behind


# -- S3 over HTTP with injected faults ----------------------------------------------------------


@contextmanager
def proxied_store(
    endpoint: str, bucket: str, faults: list[Fault], **options: Any
) -> Iterator[tuple[S3ObjectStore, FaultProxy]]:
    with fault_proxy(endpoint, faults) as proxy:
        yield s3_store(proxy.url, bucket, base_delay=TINY_DELAY, **options), proxy


@pytest.mark.parametrize("fault", [slow_down, internal_error, connection_reset, truncated_body])
def test_s3_get_survives_transient_faults_by_retrying(
    moto_endpoint: str, fault: Callable[[str, int], Fault]
) -> None:
    bucket = new_bucket(moto_endpoint)
    s3_client(moto_endpoint).put_object(Bucket=bucket, Key="doc", Body=b"payload" * 100)

    with proxied_store(moto_endpoint, bucket, [fault(f"/{bucket}/doc", 2)]) as (store, proxy):
        assert store.get("doc") == b"payload" * 100
        assert proxy.count("GET", f"/{bucket}/doc") == 3


def test_s3_permanent_failure_is_one_error_item_among_successes(moto_endpoint: str) -> None:
    bucket = new_bucket(moto_endpoint)
    direct = s3_client(moto_endpoint)
    for key in ("a", "bad", "b"):
        direct.put_object(Bucket=bucket, Key=key, Body=key.encode())

    faults = [internal_error(f"/{bucket}/bad"), slow_down(f"/{bucket}/a", 1)]
    with proxied_store(moto_endpoint, bucket, faults, attempts=3) as (store, proxy):
        results = dict(store.get_many(["a", "bad", "b"]))
        assert proxy.count("GET", f"/{bucket}/bad") == 3  # bounded attempts

    assert results["a"] == b"a"
    assert results["b"] == b"b"
    error = results["bad"]
    assert isinstance(error, TransientError) and "InternalError" in str(error)
    assert isinstance(error.__cause__, ClientError)
    assert error.__cause__.response["Error"]["Code"] == "InternalError"


def test_s3_get_many_keeps_at_most_max_in_flight_requests(moto_endpoint: str) -> None:
    bucket = new_bucket(moto_endpoint)
    direct = s3_client(moto_endpoint)
    for i in range(24):
        direct.put_object(Bucket=bucket, Key=f"doc/{i}", Body=b".")

    # Latency keeps requests open long enough for the window to fill up.
    with proxied_store(moto_endpoint, bucket, [latency(0.05)], max_in_flight=4) as (store, proxy):
        results = list(store.get_many(f"doc/{i}" for i in range(24)))
        assert 1 < proxy.max_concurrent <= 4

    assert [data for _, data in results] == [b"."] * 24


def test_s3_writes_are_retried_too(moto_endpoint: str, tmp_path: Path) -> None:
    bucket = new_bucket(moto_endpoint)
    source = tmp_path / "part.parquet"
    source.write_bytes(b"PAR1")
    faults = [
        Fault("error", f"/{bucket}/put", method="PUT", times=1),  # 503 SlowDown
        Fault("error", f"/{bucket}/upload", "PUT", times=1, status=500, code="InternalError"),
    ]
    with proxied_store(moto_endpoint, bucket, faults) as (store, proxy):
        store.put("put", b"data")
        store.upload_file("upload", source)
        assert proxy.count("PUT", f"/{bucket}/put") == 2
        assert proxy.count("PUT", f"/{bucket}/upload") == 2
        assert store.get("put") == b"data"
        assert store.get("upload") == b"PAR1"


def test_the_resources_s3_store_leaves_retries_to_the_store(moto_endpoint: str) -> None:
    bucket = new_bucket(moto_endpoint)
    with fault_proxy(moto_endpoint, [Fault("error", f"/{bucket}/put", method="PUT")]) as proxy:
        resource = ObjectStoreResource(
            kind="s3",
            bucket=bucket,
            s3_endpoint_url=proxy.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        store = resource.store()
        assert isinstance(store, S3ObjectStore)
        store.base_delay = TINY_DELAY
        with pytest.raises(TransientError):
            store.put("put", b"data")
        # A throttled write is sent as often as the store's retries say, not that many times
        # botocore's own retries more.
        assert proxy.count("PUT", f"/{bucket}/put") == store.attempts


def test_s3_bucket_check_is_retried(moto_endpoint: str) -> None:
    bucket = new_bucket(moto_endpoint)
    throttled = Fault("error", f"/{bucket}", method="HEAD", times=1)  # 503 SlowDown
    with proxied_store(moto_endpoint, bucket, [throttled]) as (store, proxy):
        store.check_bucket()
        assert proxy.count("HEAD", f"/{bucket}") == 2


def test_s3_list_follows_continuation_pages(moto_endpoint: str) -> None:
    bucket = new_bucket(moto_endpoint)
    store = s3_store(moto_endpoint, bucket)
    store.list_page_size = 2
    for i in range(5):
        store.put(f"p/{i}", b".")
    assert list(store.list("p/")) == [f"s3://{bucket}/p/{i}" for i in range(5)]

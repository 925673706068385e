"""The S3 store's GETs (obstore) against moto's server over HTTP, through the fault proxy where
a test needs to see or break the requests: keys, order and concurrency, errors as boto3 would
raise them, the size cap, cut-off bodies, credentials from the session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from reingest_assets.domain.failures import ConfigurationError, DocumentError, TransientError
from reingest_assets.fetch_bench import run_fetch_bench
from reingest_assets.resources.s3_store import S3ObjectStore
from support.s3 import Fault, fault_proxy, moto_s3_server, s3_client, s3_store, truncated_body

TINY_DELAY = 0.001
SPECIAL_KEYS = [
    "raw/pubmed/a b.json",
    "raw/pubmed/ünïcödé/文献.json",
    "raw/plus+sign&amp=eq?q#frag",
    "raw/tilde~star*paren(1)'quote'",
]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_s3_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"reads-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def test_keys_with_special_characters_round_trip(endpoint: str, bucket: str) -> None:
    client = s3_client(endpoint)
    for i, key in enumerate(SPECIAL_KEYS):
        client.put_object(Bucket=bucket, Key=key, Body=f"body {i}".encode())
    with fault_proxy(endpoint) as proxy:
        store = s3_store(proxy.url, bucket, base_delay=TINY_DELAY)
        for i, key in enumerate(SPECIAL_KEYS):
            assert store.get(key) == f"body {i}".encode()
            assert store.get(f"s3://{bucket}/{key}") == f"body {i}".encode()
        assert proxy.count("GET") == 2 * len(SPECIAL_KEYS)  # one GET each, nothing retried


def test_get_many_keeps_order_and_at_most_max_in_flight(endpoint: str, bucket: str) -> None:
    client = s3_client(endpoint)
    for i in range(40):
        client.put_object(Bucket=bucket, Key=f"doc/{i}", Body=str(i).encode())
    uris = [f"doc/{i}" for i in range(40)]
    with fault_proxy(endpoint, [Fault("latency", None, seconds=0.02)]) as proxy:
        store = s3_store(proxy.url, bucket, max_in_flight=4)
        results = list(store.get_many(uris))
        assert 1 < proxy.max_concurrent <= 4
    assert results == [(uri, uri.removeprefix("doc/").encode()) for uri in uris]


def test_missing_object_is_object_not_found(endpoint: str, bucket: str) -> None:
    store = s3_store(endpoint, bucket, base_delay=TINY_DELAY)
    with pytest.raises(DocumentError) as caught:
        store.get("raw/absent.json")
    assert caught.value.stage == "fetch" and caught.value.kind == "transient"
    assert "object not found: raw/absent.json" in caught.value.message


def test_missing_bucket_is_a_configuration_error_not_a_missing_object(endpoint: str) -> None:
    store = s3_store(endpoint, "no-such-bucket-here", base_delay=TINY_DELAY)
    with pytest.raises(ConfigurationError) as caught:
        store.get("doc")
    assert caught.value.setting == "REINGEST_BUCKET"
    cause = caught.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "NoSuchBucket"


def test_forbidden_is_a_clear_error_sent_once(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="secret", Body=b".")
    denied = Fault("error", f"/{bucket}/secret", status=403, code="AccessDenied")
    with fault_proxy(endpoint, [denied]) as proxy:
        store = s3_store(proxy.url, bucket, base_delay=TINY_DELAY)
        with pytest.raises(ConfigurationError) as caught:
            store.get("secret")
        assert proxy.count("GET", f"/{bucket}/secret") == 1  # not retried
    error = caught.value.__cause__
    assert isinstance(error, ClientError)
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "AccessDenied" in str(caught.value)


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError")])
def test_server_errors_are_transient_with_s3s_code(
    endpoint: str, bucket: str, status: int, code: str
) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="doc", Body=b".")
    with fault_proxy(endpoint, [Fault("error", f"/{bucket}/doc", status=status, code=code)]) as p:
        store = s3_store(p.url, bucket, attempts=2, base_delay=TINY_DELAY)
        [(_, error)] = list(store.get_many(["doc"]))
        assert p.count("GET", f"/{bucket}/doc") == 2
    assert isinstance(error, TransientError) and code in str(error)
    assert isinstance(error.__cause__, ClientError)
    assert error.__cause__.response["Error"]["Code"] == code


def test_oversize_is_refused_from_the_size_without_a_retry(endpoint: str, bucket: str) -> None:
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="big", Body=b"x" * 5000)
    client.put_object(Bucket=bucket, Key="small", Body=b"y" * 10)
    with fault_proxy(endpoint) as proxy:
        store = s3_store(proxy.url, bucket, max_object_bytes=4096, base_delay=TINY_DELAY)
        with pytest.raises(DocumentError) as caught:
            store.get("big")
        assert proxy.count("GET", f"/{bucket}/big") == 1  # refused, not retried
        assert store.get("small") == b"y" * 10
    assert caught.value.stage == "fetch"
    assert "too large" in caught.value.message and "5000" in caught.value.message


def test_truncated_body_is_detected_and_retried(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="doc", Body=b"payload" * 500)
    with fault_proxy(endpoint, [truncated_body(f"/{bucket}/doc", 2)]) as proxy:
        store = s3_store(proxy.url, bucket, base_delay=TINY_DELAY)
        assert store.get("doc") == b"payload" * 500
        assert proxy.count("GET", f"/{bucket}/doc") == 3


def test_truncated_body_every_time_is_a_transient_error(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="doc", Body=b"payload" * 500)
    with fault_proxy(endpoint, [truncated_body(f"/{bucket}/doc")]) as proxy:
        store = s3_store(proxy.url, bucket, attempts=2, base_delay=TINY_DELAY)
        results = dict(store.get_many(["doc"]))
        assert proxy.count("GET", f"/{bucket}/doc") == 2
    assert isinstance(results["doc"], TransientError)
    assert isinstance(results["doc"].__cause__, ConnectionError)


def test_gets_are_signed_with_the_sessions_credentials_and_token(
    endpoint: str, bucket: str
) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="doc", Body=b"d")
    session = boto3.Session(
        aws_access_key_id="AKIDSESSION",
        aws_secret_access_key="session-secret",
        aws_session_token="session-token",
        region_name="us-east-1",
    )
    with fault_proxy(endpoint) as proxy:
        store = S3ObjectStore(s3_client(proxy.url), bucket, session=session)
        assert store.get("doc") == b"d"
        [headers] = proxy.headers
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDSESSION/")
    assert "/us-east-1/s3/aws4_request" in headers["authorization"]
    assert headers["x-amz-security-token"] == "session-token"


def test_unsigned_store_sends_unsigned_gets(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="public", Body=b"open", ACL="public-read")
    with fault_proxy(endpoint) as proxy:
        store = S3ObjectStore(s3_client(proxy.url), bucket, unsigned=True)
        assert store.get("public") == b"open"
        [headers] = proxy.headers
    assert "authorization" not in {k.lower() for k in headers}


def test_no_credentials_is_a_configuration_error_naming_the_settings(
    endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3ObjectStore(s3_client(endpoint), bucket, base_delay=TINY_DELAY)
    with pytest.raises(ConfigurationError) as caught:
        store.get("doc")
    assert isinstance(caught.value.__cause__, NoCredentialsError)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_bench_fetch_measures_the_obstore_path_and_boto3() -> None:
    results = run_fetch_bench(gets=200, latency_ms=1, in_flight=8, size=100)
    assert [r.path for r in results] == ["boto3", "obstore"]
    assert all(r.gets == 200 and r.gets_per_second > 0 and r.cpu_us_per_get > 0 for r in results)

"""The S3 store's lean GET path (signed by the store, sent on its own connections) against moto's
server over HTTP, with the fault-injecting proxy where a test needs a status moto does not give."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import ClientError

from reingest_assets.domain.failures import ConfigurationError, DocumentError, is_transient
from reingest_assets.resources import s3_lean_get
from reingest_assets.resources.s3_store import S3ObjectStore, client_config
from support.s3 import Fault, fault_proxy, moto_s3_server, s3_client, truncated_body

TINY_DELAY = 0.001
SPECIAL_KEYS = [
    "raw/pubmed/a b.json",
    "raw/plus+sign&amp=eq?q#frag",
    "raw/ünïcödé/文献.xml",
    "raw/percent%20literal~tilde",
    "raw/semi;colon,comma'quote(paren)*star!bang$@",
    "raw//double/slash",
]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_s3_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"lean-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The raw requests the lean path sends."""
    requests: list[bytes] = []
    exchange = s3_lean_get._Connection.exchange

    def recording(self: Any, request: bytes, url: str) -> Any:
        requests.append(request)
        return exchange(self, request, url)

    monkeypatch.setattr(s3_lean_get._Connection, "exchange", recording)
    return requests


def lean_store(client: Any, bucket: str, **options: Any) -> S3ObjectStore:
    store = S3ObjectStore(client, bucket, base_delay=TINY_DELAY, **options)
    assert store.lean_route() is not None, "the lean path should serve this client"
    return store


def test_keys_with_special_characters_round_trip(
    endpoint: str, bucket: str, sent: list[bytes]
) -> None:
    client = s3_client(endpoint)
    store = lean_store(client, bucket)
    for i, key in enumerate(SPECIAL_KEYS):
        client.put_object(Bucket=bucket, Key=key, Body=f"body {i}".encode())

    for i, key in enumerate(SPECIAL_KEYS):
        assert store.get(key) == f"body {i}".encode()
        assert store.get(f"s3://{bucket}/{key}") == f"body {i}".encode()
    assert len(sent) == 2 * len(SPECIAL_KEYS)  # all of them on the lean path
    assert sent[0].startswith(f"GET /{bucket}/raw/pubmed/a%20b.json HTTP/1.1\r\n".encode())
    assert sent[2].startswith(f"GET /{bucket}/raw/plus%2Bsign%26amp%3Deq%3Fq%23frag ".encode())


def test_get_many_on_the_lean_path_keeps_order_and_reuses_connections(
    endpoint: str, bucket: str, sent: list[bytes]
) -> None:
    client = s3_client(endpoint)
    for i in range(40):
        client.put_object(Bucket=bucket, Key=f"doc/{i}", Body=str(i).encode())
    uris = [f"doc/{i}" for i in range(40)]
    # Through the proxy: it keeps connections alive (moto's own server closes each one).
    with fault_proxy(endpoint) as proxy:
        store = lean_store(s3_client(proxy.url), bucket, max_in_flight=4)
        results = list(store.get_many(uris))
        route = store.lean_route()
        assert route is not None and 0 < len(route.pool._idle) <= 4
        assert proxy.max_concurrent <= 4
    assert results == [(uri, uri.removeprefix("doc/").encode()) for uri in uris]
    assert len(sent) == 40


def test_missing_object_is_object_not_found(endpoint: str, bucket: str) -> None:
    store = lean_store(s3_client(endpoint), bucket)
    with pytest.raises(DocumentError) as caught:
        store.get("raw/absent.json")
    assert caught.value.stage == "fetch" and caught.value.kind == "transient"
    assert "object not found: raw/absent.json" in caught.value.message


def test_missing_bucket_is_a_configuration_error_not_a_missing_object(endpoint: str) -> None:
    store = S3ObjectStore(s3_client(endpoint), "no-such-bucket-here", base_delay=TINY_DELAY)
    assert store.lean_route() is not None
    with pytest.raises(ConfigurationError) as caught:
        store.get("doc")
    cause = caught.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "NoSuchBucket"


def test_forbidden_is_a_clear_error_sent_once(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="secret", Body=b".")
    denied = Fault("error", f"/{bucket}/secret", status=403, code="AccessDenied")
    with fault_proxy(endpoint, [denied]) as proxy:
        store = lean_store(s3_client(proxy.url), bucket)
        with pytest.raises(ConfigurationError) as caught:
            store.get("secret")
        assert proxy.count("GET", f"/{bucket}/secret") == 1  # not retried
    error = caught.value.__cause__
    assert isinstance(error, ClientError)
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "AccessDenied" in str(caught.value)


def test_oversize_is_refused_from_content_length_and_the_connection_dropped(
    endpoint: str, bucket: str, sent: list[bytes]
) -> None:
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="big", Body=b"x" * 5000)
    client.put_object(Bucket=bucket, Key="small", Body=b"y" * 10)
    store = lean_store(client, bucket, max_object_bytes=4096)

    with pytest.raises(DocumentError) as caught:
        store.get("big")
    assert caught.value.stage == "fetch"
    assert "too large" in caught.value.message and "5000" in caught.value.message
    assert len(sent) == 1  # refused, not retried
    route = store.lean_route()
    assert route is not None and len(route.pool._idle) == 0  # the unread body was not kept
    assert store.get("small") == b"y" * 10


def test_truncated_body_is_detected_and_retried(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="doc", Body=b"payload" * 500)
    with fault_proxy(endpoint, [truncated_body(f"/{bucket}/doc", 2)]) as proxy:
        store = lean_store(s3_client(proxy.url), bucket)
        assert store.get("doc") == b"payload" * 500
        assert proxy.count("GET", f"/{bucket}/doc") == 3


def test_truncated_body_every_time_is_a_transient_incomplete_read(
    endpoint: str, bucket: str
) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="doc", Body=b"payload" * 500)
    with fault_proxy(endpoint, [truncated_body(f"/{bucket}/doc")]) as proxy:
        store = lean_store(s3_client(proxy.url), bucket, attempts=2)
        results = dict(store.get_many(["doc"]))
        assert proxy.count("GET", f"/{bucket}/doc") == 2
    assert is_transient(results["doc"])  # type: ignore[arg-type]


def test_signature_is_botocores_with_the_session_token(
    endpoint: str, bucket: str, sent: list[bytes]
) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="AKIDLEAN",
        aws_secret_access_key="lean-secret",
        aws_session_token="lean-session-token",
        config=client_config(8).merge(Config(s3={"addressing_style": "path"})),
    )
    client.create_bucket(
        Bucket=f"{bucket}-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    client.put_object(Bucket=f"{bucket}-eu", Key="k ü+", Body=b"data")
    store = lean_store(client, f"{bucket}-eu")

    assert store.get("k ü+") == b"data"
    head, _, _ = sent[-1].decode().partition("\r\n\r\n")
    request_line, *lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert headers["X-Amz-Security-Token"] == "lean-session-token"
    path = request_line.split(" ")[1]

    # botocore's own signer, at the same instant, over the same request
    signer = S3SigV4Auth(
        Credentials("AKIDLEAN", "lean-secret", "lean-session-token"), "s3", "eu-west-1"
    )
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    request = AWSRequest(method="GET", url=endpoint + path, headers=unsigned)
    request.context["timestamp"] = headers["X-Amz-Date"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential=AKIDLEAN/{headers['X-Amz-Date'][:8]}/eu-west-1/s3/"
        f"aws4_request, SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, "
        f"Signature={signature}"
    )


def test_credentials_are_read_from_the_client_on_every_request(
    endpoint: str, bucket: str, sent: list[bytes]
) -> None:
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="doc", Body=b"d")
    generation = iter(range(1, 100))

    def refresh() -> dict[str, str]:
        n = next(generation)
        return {
            "access_key": f"AKIDGEN{n}",
            "secret_key": f"secret-{n}",
            "token": f"token-{n}",
            # inside botocore's mandatory refresh window: refreshed on every read
            "expiry_time": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }

    client._request_signer._credentials = RefreshableCredentials.create_from_metadata(
        refresh(), refresh, "test"
    )
    store = lean_store(client, bucket)
    store.get("doc")
    store.get("doc")
    tokens = [r.split(b"X-Amz-Security-Token: ")[1].split(b"\r\n")[0] for r in sent]
    keys = [r.split(b"Credential=")[1].split(b"/")[0] for r in sent]
    assert len(set(tokens)) == 2 and len(set(keys)) == 2
    assert all(t.startswith(b"token-") for t in tokens)


def test_unsigned_client_sends_unsigned_gets(endpoint: str, bucket: str, sent: list[bytes]) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="public", Body=b"open", ACL="public-read")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=client_config(4).merge(
            Config(signature_version=UNSIGNED, s3={"addressing_style": "path"})
        ),
    )
    store = lean_store(client, bucket)
    assert store.get("public") == b"open"
    assert b"Authorization" not in sent[-1] and b"X-Amz-Date" not in sent[-1]


def test_a_client_that_adds_headers_falls_back_to_get_object(
    endpoint: str, bucket: str, sent: list[bytes]
) -> None:
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="doc", Body=b"via boto3")

    def requester_pays(params: dict[str, Any], **_: Any) -> None:
        params["headers"]["x-amz-request-payer"] = "requester"

    client.meta.events.register("before-call.s3.GetObject", requester_pays)
    store = S3ObjectStore(client, bucket, base_delay=TINY_DELAY)
    assert store.lean_route() is None
    assert store.get("doc") == b"via boto3"
    with pytest.raises(DocumentError):
        store.get("absent")
    assert sent == []


def test_lean_get_false_uses_get_object(endpoint: str, bucket: str, sent: list[bytes]) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="doc", Body=b"old path")
    store = S3ObjectStore(s3_client(endpoint), bucket, lean_get=False)
    assert store.lean_route() is None
    assert store.get("doc") == b"old path"
    assert sent == []

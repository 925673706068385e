"""The one failure classifier: each adapter maps its library's errors onto transient, data or
configuration; configuration errors stop a run with a message naming the setting, and never
become failure rows the repair sensor would retry."""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
from botocore import exceptions as boto
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateDeleteManyError,
    WeaviateQueryError,
)

from conftest import with_database
from reingest_assets.domain.failures import (
    ConfigurationError,
    DocumentError,
    Failure,
    TransientError,
    failure_kind,
    is_transient,
)
from reingest_assets.engine.runner import normalize_partition
from reingest_assets.preflight import explain
from reingest_assets.resources.pg import pg_error_kind
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.s3_store import s3_error_kind
from reingest_assets.resources.stores.weaviate import weaviate_error_kind
from reingest_assets.settings import Settings
from support.faults import PART, register_corpus
from support.pipeline import make_pipeline
from support.s3 import Fault, fault_proxy, moto_s3_server, s3_client, s3_store

TINY_DELAY = 0.001

# -- the kinds themselves ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TransientError("throttled"), "transient"),
        (ConnectionResetError("reset"), "transient"),
        (TimeoutError("slow"), "transient"),
        (ConfigurationError("no key", setting="REINGEST_X"), "configuration"),
        (DocumentError("parse", "bad JSON"), "data"),
        (DocumentError("fetch", "object not found: x", kind="transient"), "transient"),
        (ValueError("bad"), "data"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), "data"),
        (RuntimeError("a bug"), "transient"),  # the repair sensor retries it, boundedly
    ],
    ids=repr,
)
def test_failure_kind(error: Exception, kind: str) -> None:
    assert failure_kind(error) == kind


def test_only_known_transient_errors_are_retried_in_place() -> None:
    assert is_transient(TransientError("x")) and is_transient(ConnectionResetError())
    assert not is_transient(RuntimeError("a bug"))
    assert not is_transient(DocumentError("fetch", "object not found: x", kind="transient"))
    assert not is_transient(ConfigurationError("no key", setting="REINGEST_X"))


def test_a_configuration_error_names_its_setting_and_crosses_processes() -> None:
    error = ConfigurationError("the bucket does not exist", setting="REINGEST_BUCKET")
    assert "REINGEST_BUCKET" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ConfigurationError)
    assert (str(copy), copy.setting) == (str(error), "REINGEST_BUCKET")


def test_a_configuration_error_is_no_documents_failure() -> None:
    error = ConfigurationError("denied", setting="AWS_ACCESS_KEY_ID")
    with pytest.raises(ConfigurationError):
        Failure.from_exception(
            error, uid="u", source="pubmed", ingest_date="2026-11-03", stage="fetch"
        )


# -- botocore ------------------------------------------------------------------------------------


def client_error(code: str, status: int) -> boto.ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return boto.ClientError(response, "GetObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("SlowDown", 503), "transient"),
        (client_error("ServiceUnavailable", 503), "transient"),
        (client_error("InternalError", 500), "transient"),
        (client_error("Throttling", 400), "transient"),
        (client_error("RequestTimeout", 400), "transient"),
        (client_error("SomethingNew", 502), "transient"),
        (client_error("TooManyRequests", 429), "transient"),
        (boto.EndpointConnectionError(endpoint_url="http://s3"), "transient"),
        (boto.ConnectionClosedError(endpoint_url="http://s3"), "transient"),
        (boto.ReadTimeoutError(endpoint_url="http://s3"), "transient"),
        (boto.ResponseStreamingError(error="connection broken"), "transient"),
        (ConnectionResetError("reset by peer"), "transient"),
        (client_error("AccessDenied", 403), "configuration"),
        (client_error("InvalidAccessKeyId", 403), "configuration"),
        (client_error("SignatureDoesNotMatch", 403), "configuration"),
        (client_error("ExpiredToken", 400), "configuration"),
        (client_error("NoSuchBucket", 404), "configuration"),
        (client_error("PermanentRedirect", 301), "configuration"),
        (boto.NoCredentialsError(), "configuration"),
        (
            boto.SSLError(endpoint_url="http://s3", error="certificate verify failed"),
            "configuration",
        ),
        (client_error("NoSuchKey", 404), None),  # the store's object_not_found
        (ValueError("not S3's"), None),
    ],
    ids=repr,
)
def test_s3_error_kind(error: Exception, kind: str | None) -> None:
    assert s3_error_kind(error) == kind


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


def test_a_missing_bucket_is_a_configuration_error_naming_reingest_bucket(
    s3_endpoint: str,
) -> None:
    with fault_proxy(s3_endpoint) as proxy:
        store = s3_store(proxy.url, "no-such-bucket-here", base_delay=TINY_DELAY)
        with pytest.raises(ConfigurationError) as caught:
            store.get("raw/doc.json")
        assert proxy.count("GET") == 1  # not retried
    assert caught.value.setting == "REINGEST_BUCKET"
    assert "no-such-bucket-here" in str(caught.value) and "NoSuchBucket" in str(caught.value)
    assert isinstance(caught.value.__cause__, boto.ClientError)


def test_access_denied_is_a_configuration_error_naming_the_credentials(s3_endpoint: str) -> None:
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    denied = Fault("error", None, method=None, status=403, code="AccessDenied")
    with fault_proxy(s3_endpoint, [denied]) as proxy:
        store = s3_store(proxy.url, bucket, base_delay=TINY_DELAY)
        with pytest.raises(ConfigurationError) as caught:
            store.get("raw/doc.json")
        with pytest.raises(ConfigurationError):
            store.put("normalized/x.parquet", b"x")
        assert proxy.count() == 2  # each sent once
    assert "AccessDenied" in str(caught.value) and "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_access_denied_stops_the_run_and_leaves_no_failure_rows_to_repair(
    s3_endpoint: str, pg_url: str, tmp_path: Path
) -> None:
    """Before: every document became a 'transient' fetch failure, which the repair sensor
    retried until REINGEST_MAX_ATTEMPTS."""
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    p = make_pipeline(pg_url, tmp_path / "unused", batch_size=10)
    register_corpus(p.registry, s3_store(s3_endpoint, bucket), 20, bucket=bucket)
    denied = Fault("error", None, status=403, code="AccessDenied")
    with fault_proxy(s3_endpoint, [denied]) as proxy:
        p.objects = s3_store(proxy.url, bucket, base_delay=TINY_DELAY)
        with pytest.raises(ConfigurationError, match="AccessDenied"):
            normalize_partition(p, PART)
        assert proxy.count("GET") <= p.objects.max_in_flight + 10  # stopped, not retried
    assert p.registry.repairable_failures() == []
    with psycopg.connect(pg_url) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM reingest.ingestion_failures").fetchone()  # type: ignore[misc]
    assert rows == 0
    p.close()


# -- psycopg -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), "transient"),
        (psycopg.errors.SerializationFailure("could not serialize access"), "transient"),
        (psycopg.errors.DeadlockDetected("deadlock detected"), "transient"),
        (psycopg.errors.AdminShutdown("terminating connection"), "transient"),
        (psycopg.errors.InvalidPassword("password authentication failed"), "configuration"),
        (psycopg.errors.InsufficientPrivilege("permission denied for table x"), "configuration"),
        (psycopg.errors.UndefinedTable("relation does not exist"), "configuration"),
        (psycopg.errors.UndefinedColumn("column does not exist"), "configuration"),
        (psycopg.OperationalError('FATAL:  role "nobody" does not exist'), "configuration"),
        (psycopg.errors.InvalidTextRepresentation("invalid input syntax"), "data"),
        (psycopg.errors.ProgramLimitExceeded("index row size 2712 exceeds"), "data"),
        (psycopg.errors.SyntaxError("syntax error"), None),  # a bug, not a kind
        (ValueError("not psycopg's"), None),
    ],
    ids=repr,
)
def test_pg_error_kind(error: Exception, kind: str | None) -> None:
    assert pg_error_kind(error) == kind


def test_a_missing_database_is_a_configuration_error_at_once(pg_server: str) -> None:
    registry = PostgresRegistry(with_database(pg_server, f"absent_{uuid.uuid4().hex[:8]}"))
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as caught:
        registry.migrate()
    assert time.monotonic() - started < 2.0  # not retried for ~10 s like a lost connection
    assert caught.value.setting == "REINGEST_DATABASE_URL"
    assert "does not exist" in str(caught.value)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)


def test_an_unmigrated_database_is_a_configuration_error(pg_url: str) -> None:
    registry = PostgresRegistry(pg_url)
    with pytest.raises(ConfigurationError) as caught:
        registry.partition_summary(PART.source, PART.ingest_date)
    assert caught.value.setting == "REINGEST_DATABASE_URL"
    assert isinstance(caught.value.__cause__, psycopg.errors.UndefinedTable)
    registry.close()


# -- weaviate-client (gRPC statuses behind its exceptions, REST statuses) ------------------------


class RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def client_query_error(code: grpc.StatusCode, details: str) -> Exception:
    """What the client raises for a failed Search: the details only, the RPC error as context."""
    try:
        raise RpcError(code, details)
    except RpcError as error:
        try:
            raise WeaviateQueryError(str(error.details()), "GRPC search")
        except WeaviateQueryError as raised:
            return raised


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.UNAVAILABLE, "transient"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "transient"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "transient"),
        (grpc.StatusCode.ABORTED, "transient"),
        (grpc.StatusCode.UNAUTHENTICATED, "configuration"),
        (grpc.StatusCode.PERMISSION_DENIED, "configuration"),
        (grpc.StatusCode.UNKNOWN, None),
        (grpc.StatusCode.INVALID_ARGUMENT, None),
    ],
)
def test_weaviate_grpc_status_kind(code: grpc.StatusCode, kind: str | None) -> None:
    # The details say nothing a message match could use: the status decides.
    assert weaviate_error_kind(client_query_error(code, "it went wrong")) == kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (WeaviateDeleteManyError("[UNAVAILABLE] connection reset"), "transient"),
        (WeaviateQueryError("could not find class Nope in schema", "GRPC search"), "configuration"),
    ],
    ids=repr,
)
def test_weaviate_error_kind(error: Exception, kind: str) -> None:
    assert weaviate_error_kind(error) == kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, "configuration"),
        (403, "configuration"),
        (429, "transient"),
        (503, "transient"),
        (422, None),
    ],
)
def test_weaviate_rest_status_kind(status: int, kind: str | None) -> None:
    response = httpx.Response(status, json={"error": [{"message": "x"}]})
    assert weaviate_error_kind(UnexpectedStatusCodeError("schema", response)) == kind


def test_the_cli_shows_a_configuration_error_as_its_message() -> None:
    denied = boto.ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetObject",
    )
    error = ConfigurationError("S3 denied access (AccessDenied)", setting="AWS_ACCESS_KEY_ID")
    error.__cause__ = denied
    step_failure = RuntimeError("Error occurred while executing op")  # what Dagster wraps it in
    step_failure.__cause__ = error
    assert explain(step_failure, Settings()) == str(error)

"""Object store on S3 (or anything speaking its API: MinIO, LocalStack, moto).

Reads go through obstore (Rust ``object_store``): ~250-300 µs of CPU per GET at 64 in flight
instead of boto3's ~1.8-2.6 ms, so one process keeps thousands of GETs per second in flight.
They are its blocking ``get`` on the fetch window's threads: its ``get_async`` on one event loop
measured no less CPU per GET and fewer GETs per second (docs/performance.md). Everything else
(put, upload_file, download_file, list, delete, HeadBucket) goes through the boto3 client the
Dagster layer builds (dagster-aws ``S3Resource``); this module stays free of Dagster so the CLI
and the benchmark drive the same code.

The obstore side uses the client's endpoint and region (``client.meta``), ``allow_http`` for an
``http://`` endpoint (MinIO, LocalStack, moto), and the credentials of a boto3 session (boto3's
chain: keys, profile, SSO, role, instance metadata; refreshed as they expire), or no signature
for an unsigned client. Its errors become the ones boto3 would raise (an S3 error answer a
``ClientError`` with S3's status and code; a lost connection, timeout or cut-off body a
``ConnectionError``; a 404 whose bucket HeadBucket does not find the ``NoSuchBucket``
``ClientError``), so one mapping classifies both libraries' errors.

Failures: :func:`s3_error_kind` maps botocore's errors onto the kinds of ``domain.failures``
(throttling, 5xx, timeouts and resets are transient; credentials, permissions, a missing bucket
or a wrong region are configuration errors). What retries did not fix leaves the store as a
:class:`TransientError` or a :class:`ConfigurationError` naming the setting, chained to the
botocore error; a missing object is ``object_not_found``. A new S3 client adds its mapping here.

Retries: every call goes through ``resources.retry`` (exponential backoff, full jitter, bounded);
obstore's own retries are off and botocore's should be too (:func:`client_config`, or
``S3Resource(max_attempts=0)``), or a throttled call would be sent ``attempts x their attempts``
times with their backoff hidden inside ours. GETs keep their own connections (obstore's pool,
``max_in_flight`` idle ones per host); the boto3 client's writes, listing and downloads fit in
botocore's default pool of 10 (as many threads as s3transfer runs for a multipart upload).

``reingest bench-fetch`` measures the obstore path and boto3's ``get_object`` against a stand-in
server (``fetch_bench.py``).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import obstore
from boto3.exceptions import S3UploadFailedError
from botocore import exceptions as botocore_exceptions
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store

from reingest_assets.domain.failures import (
    ConfigurationError,
    DocumentError,
    ErrorKind,
    TransientError,
    is_transient,
    object_not_found,
)
from reingest_assets.resources.fetch_window import fetch_in_order
from reingest_assets.resources.object_uri import object_address, object_uri, split_uri
from reingest_assets.resources.retry import retry

log = logging.getLogger(__name__)

MiB = 1024 * 1024
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
# object_store's messages: "... Server returned non-2xx status code: 503 Service Unavailable:
# <?xml ...><Error><Code>SlowDown</Code><Message>...</Message>..."
_STATUS = re.compile(r"non-2xx status code: (\d{3})")
_CODE = re.compile(r"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
# S3 and other AWS services answer these when the request may succeed if sent again.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
    }
)
CREDENTIALS = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
# error code -> (what is wrong, the setting to fix)
_CONFIGURATION_CODES = {
    **dict.fromkeys(
        (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "InvalidToken",
            "TokenRefreshRequired",
        ),
        ("S3 rejected the credentials", CREDENTIALS),
    ),
    **dict.fromkeys(
        ("AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"),
        (
            "S3 denied access (without s3:ListBucket a missing key reads as AccessDenied too): "
            "grant the credentials read and write on the bucket",
            CREDENTIALS,
        ),
    ),
    **dict.fromkeys(
        ("NoSuchBucket", "InvalidBucketName"),
        ("the bucket does not exist at this endpoint", "REINGEST_BUCKET"),
    ),
    **dict.fromkeys(
        ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"),
        ("the bucket is in another region", "REINGEST_S3_REGION"),
    ),
}

T = TypeVar("T")


def client_config(max_in_flight: int = 32) -> Config:
    """botocore settings for a client an ``S3ObjectStore`` drives: no botocore retries (ours
    count), a pool of ``max_in_flight`` connections (``reingest bench-fetch``'s boto3 path GETs
    through it), and timeouts so a stalled connection becomes a retryable error instead of a
    hung worker."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max_in_flight,
        connect_timeout=5,
        read_timeout=30,
    )


class S3ObjectStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        session: boto3.Session | None = None,
        unsigned: bool = False,
        max_in_flight: int = 32,
        max_object_bytes: int = 64 * MiB,
        attempts: int = 5,
        base_delay: float = 0.1,
    ) -> None:
        """``client``: the boto3 S3 client for everything but GETs, whose endpoint and region
        GETs use too. ``session``: whose credentials sign the GETs (default: a new
        ``boto3.Session()``, the standard chain); ``unsigned`` sends them unsigned."""
        self.client = client
        self.bucket = bucket
        self.max_in_flight = max_in_flight
        self.max_object_bytes = max_object_bytes
        self.attempts = attempts
        self.base_delay = base_delay
        self.list_page_size = 1000  # S3's own maximum; lowered by tests to reach a second page
        self._session = session
        self._unsigned = unsigned
        self._readers: dict[str, S3Store] = {}
        self._buckets_seen: set[str] = set()
        self._lock = threading.Lock()

    def get(self, uri: str) -> bytes:
        bucket, key = object_address(uri, self.bucket)
        return self._retry(functools.partial(self._get_once, uri, bucket, key), bucket)

    def get_many(self, uris: Iterable[str]) -> Iterator[tuple[str, bytes | BaseException]]:
        return fetch_in_order(self.get, uris, max_in_flight=self.max_in_flight)

    def close(self) -> None:
        """Drop the obstore clients (and their connections); the boto3 client is the caller's."""
        with self._lock:
            self._readers.clear()

    def put(self, uri: str, data: bytes) -> None:
        bucket, key = object_address(uri, self.bucket)
        self._retry(
            functools.partial(self.client.put_object, Bucket=bucket, Key=key, Body=data), bucket
        )

    def upload_file(self, uri: str, path: Path) -> None:
        """Multipart above boto3's threshold (8 MiB), so large Parquet files upload in parts."""
        bucket, key = object_address(uri, self.bucket)
        self._retry(functools.partial(self.client.upload_file, str(path), bucket, key), bucket)

    def download_file(self, uri: str, path: Path) -> bool:
        bucket, key = object_address(uri, self.bucket)
        try:
            self._retry(
                functools.partial(self.client.download_file, bucket, key, str(path)), bucket
            )
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def delete(self, uri: str) -> None:
        bucket, key = object_address(uri, self.bucket)
        self._retry(functools.partial(self.client.delete_object, Bucket=bucket, Key=key), bucket)

    def check_bucket(self) -> None:
        """HeadBucket through the store's retries: the bucket is at the endpoint and the
        credentials reach it. Raises what the last attempt raised (a missing bucket: the
        ``ClientError`` of HeadBucket's 404)."""
        self._retry(functools.partial(self.client.head_bucket, Bucket=self.bucket), self.bucket)

    def list(self, prefix: str) -> Iterator[str]:
        bucket, key_prefix = split_uri(prefix, self.bucket)
        request: dict[str, Any] = {
            "Bucket": bucket,
            "Prefix": key_prefix,
            "MaxKeys": self.list_page_size,
        }
        while True:
            # Page by page (not a paginator) so a transient error re-asks for one page only.
            page = self._retry(functools.partial(self.client.list_objects_v2, **request), bucket)
            for entry in page.get("Contents", []):
                yield object_uri(bucket, entry["Key"])
            if not page.get("IsTruncated"):
                return
            request["ContinuationToken"] = page["NextContinuationToken"]

    def _get_once(self, uri: str, bucket: str, key: str) -> bytes:
        try:
            result = obstore.get(self._reader(bucket), key)
            size = result.meta["size"]
            if size > self.max_object_bytes:
                # Unread, the response is dropped with its connection: what an oversize object
                # deserves.
                raise too_large(uri, size, self.max_object_bytes)
            return result.bytes().to_bytes()
        except FileNotFoundError:
            # S3 answers 404 for a missing bucket too: that is the configuration's fault, and
            # HeadBucket says so (once per bucket) with the ClientError the CLI explains.
            self._check_bucket(bucket)
            raise object_not_found(uri) from None
        except ObstoreError as exc:
            raise _as_boto_error(exc) from None

    def _reader(self, bucket: str) -> S3Store:
        with self._lock:
            reader = self._readers.get(bucket)
            if reader is None:
                reader = self._readers[bucket] = self._new_reader(bucket)
            return reader

    def _new_reader(self, bucket: str) -> S3Store:
        endpoint: str | None = self.client.meta.endpoint_url
        host = urlsplit(endpoint).hostname or "" if endpoint else ""
        if host == "amazonaws.com" or host.endswith(".amazonaws.com"):
            endpoint = None  # AWS itself: obstore derives the regional endpoint
        options: dict[str, Any] = {}
        if endpoint:
            options["endpoint"] = endpoint
            addressing = (self.client.meta.config.s3 or {}).get("addressing_style")
            options["virtual_hosted_style_request"] = addressing == "virtual"
        if self._unsigned:
            options["skip_signature"] = True
        else:
            session = self._session or boto3.Session()
            if session.get_credentials() is None:
                raise NoCredentialsError()
            options["credential_provider"] = Boto3CredentialProvider(session)
        return S3Store(
            bucket,
            region=self.client.meta.region_name or "us-east-1",
            client_options={
                "allow_http": bool(endpoint and endpoint.startswith("http://")),
                "connect_timeout": timedelta(seconds=5),
                "timeout": timedelta(seconds=30),
                "pool_max_idle_per_host": str(self.max_in_flight),
            },
            retry_config={"max_retries": 0},  # resources.retry owns retries
            **options,
        )

    def _check_bucket(self, bucket: str) -> None:
        if bucket in self._buckets_seen:
            return
        try:
            self.client.head_bucket(Bucket=bucket)  # inside the GET's retries already
        except ClientError as exc:
            if _is_not_found(exc):
                raise ClientError(
                    {
                        "Error": {"Code": "NoSuchBucket", "Message": f"no bucket {bucket!r}"},
                        "ResponseMetadata": {"HTTPStatusCode": 404},
                    },
                    "GetObject",
                ) from None
            raise
        self._buckets_seen.add(bucket)

    def _retry(
        self,
        call: Callable[[], T],
        bucket: str,
    ) -> T:
        try:
            return retry(
                call,
                attempts=self.attempts,
                base_delay=self.base_delay,
                retry_on=lambda exc: s3_error_kind(exc) == "transient",
                on_retry=_log_retry,
            )
        except Exception as exc:
            translated = _translated(exc, bucket)
            if translated is None:
                raise
            raise translated from exc


def too_large(uri: str, size: int, cap: int) -> DocumentError:
    return DocumentError("fetch", f"object too large: {uri} is {size} bytes, the cap is {cap}")


def _as_boto_error(exc: ObstoreError) -> Exception:
    """An obstore error as boto3 would have raised it, for :func:`s3_error_kind`: an S3 error
    answer as ``ClientError`` (status and code from the answer), anything without an answer
    (refused or lost connection, timeout, cut-off body) as ``ConnectionError`` (transient)."""
    text = str(exc)
    status = _STATUS.search(text)
    if status is None:
        return ConnectionError(text.split("\n\nDebug source:", 1)[0])
    code = _CODE.search(text)
    message = _MESSAGE.search(text)
    return ClientError(
        {
            "Error": {
                "Code": code.group(1) if code else status.group(1),
                "Message": message.group(1) if message else text.splitlines()[0],
            },
            "ResponseMetadata": {"HTTPStatusCode": int(status.group(1))},
        },
        "GetObject",
    )


def _is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES


def s3_error_kind(exc: BaseException) -> ErrorKind | None:
    """What a botocore error means for a retry; None when it is not one this store classifies
    (a missing object: the caller's ``object_not_found``; anything unexpected)."""
    if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        # boto3 replaces the ClientError of a failed upload with S3UploadFailedError, raised
        # while handling it, so the original is the implicit context.
        return s3_error_kind(exc.__context__)
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return "transient"
        return "configuration" if code in _CONFIGURATION_CODES else None
    if isinstance(
        exc,
        botocore_exceptions.NoCredentialsError
        | botocore_exceptions.PartialCredentialsError
        | botocore_exceptions.NoRegionError
        | botocore_exceptions.SSLError,  # a certificate problem does not go away by asking again
    ):
        return "configuration"
    if isinstance(
        exc,
        botocore_exceptions.ConnectionError  # cannot connect, connect timeout
        | botocore_exceptions.HTTPClientError  # closed mid-request, read timeout, broken stream
        | botocore_exceptions.IncompleteReadError,
    ):
        return "transient"
    return "transient" if is_transient(exc) else None


def _translated(exc: BaseException, bucket: str) -> Exception | None:
    """The failure kind's exception for an error retries did not fix; None: raise it as is."""
    kind = s3_error_kind(exc)
    if kind == "transient" and not isinstance(exc, TransientError):
        return TransientError(f"S3 call on bucket {bucket!r} kept failing: {exc}")
    if kind != "configuration":
        return None
    cause = exc.__context__ if isinstance(exc, S3UploadFailedError) else exc
    if isinstance(cause, ClientError):
        code = str(cause.response.get("Error", {}).get("Code", ""))
        what, setting = _CONFIGURATION_CODES[code]
        what = f"{what} ({code})"
    elif isinstance(cause, botocore_exceptions.SSLError):
        what, setting = f"TLS to the S3 endpoint failed ({cause})", "REINGEST_S3_ENDPOINT_URL"
    elif isinstance(cause, botocore_exceptions.NoRegionError):
        what, setting = "no region for the S3 client", "REINGEST_S3_REGION"
    else:
        what, setting = f"no usable AWS credentials ({cause})", CREDENTIALS
    return ConfigurationError(f"S3 bucket {bucket!r}: {what}; check {setting}", setting=setting)


def _log_retry(attempt: int, exc: BaseException, delay: float) -> None:
    log.info("S3 call failed (attempt %d: %r); retrying in %.2fs", attempt, exc, delay)

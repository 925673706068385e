"""Object store on S3 (or anything speaking its API: MinIO, moto) through a boto3 client.

The Dagster layer builds the client (dagster-aws ``S3Resource``); this module stays free of
Dagster so the CLI and the benchmark drive the same code.

GETs take the lean path of ``s3_lean_get.py`` (signed by the store, sent on its own keep-alive
connections: ~250 µs of CPU per GET instead of boto3's ~2.6 ms), which falls back to
``get_object`` per bucket for client settings it cannot reproduce; both paths raise the same
botocore exceptions, so retries and failure records do not depend on the path.
Everything else (put, upload_file, download_file, list, delete) is boto3.

Failures: :func:`s3_error_kind` maps botocore's errors onto the kinds of ``domain.failures``
(throttling, 5xx, timeouts and resets are transient; credentials, permissions, a missing bucket
or a wrong region are configuration errors). What retries did not fix leaves the store as a
:class:`TransientError` or a :class:`ConfigurationError` naming the setting, chained to the
botocore error; a missing object is ``object_not_found``. A new S3 client adds its mapping here.

Retries: every call goes through ``engine.retry`` (exponential backoff, full jitter, bounded),
so the client's own retries should be modest: with botocore's retries on top, a throttled GET
would be sent ``attempts x botocore attempts`` times, with botocore's backoff hidden inside
ours. Build the client with :func:`client_config` (botocore retries off), or set
``S3Resource(max_attempts=0)``. The connection pool must be at least ``max_in_flight`` wide
(botocore's default is 10; ``S3Resource`` has no setting for it): urllib3 opens the extra
connections anyway and closes them after each request, so every surplus GET pays a new
connection. (The lean path keeps ``max_in_flight`` idle connections per host.)

``reingest bench-fetch`` measures both paths against a stand-in server (``fetch_bench.py``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from boto3.exceptions import S3UploadFailedError
from botocore import exceptions as botocore_exceptions
from botocore.config import Config
from botocore.exceptions import ClientError

from reingest_assets.domain.failures import (
    ConfigurationError,
    ErrorKind,
    TransientError,
    is_transient,
    object_not_found,
)
from reingest_assets.engine.retry import retry
from reingest_assets.resources.fetch_window import fetch_in_order
from reingest_assets.resources.object_uri import object_address, object_uri, split_uri
from reingest_assets.resources.s3_lean_get import LeanGetter, LeanRoute, WrongRegion, too_large

log = logging.getLogger(__name__)

MiB = 1024 * 1024
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
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
    count), a pool as wide as the fetch window, and timeouts so a stalled connection becomes a
    retryable error instead of a hung worker."""
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
        max_in_flight: int = 32,
        max_object_bytes: int = 64 * MiB,
        attempts: int = 5,
        base_delay: float = 0.1,
        lean_get: bool = True,
    ) -> None:
        """``lean_get=False`` sends every GET through ``get_object`` (the benchmark's old path)."""
        self.client = client
        self.bucket = bucket
        self.max_in_flight = max_in_flight
        self.max_object_bytes = max_object_bytes
        self.attempts = attempts
        self.base_delay = base_delay
        self.list_page_size = 1000  # S3's own maximum; lowered by tests to reach a second page
        self._lean = LeanGetter(client, max_in_flight) if lean_get else None
        pool = client.meta.config.max_pool_connections
        if pool < max_in_flight:
            log.warning(
                "S3 client pool has %d connections for %d fetches in flight: build the client "
                "with s3_store.client_config(%d)",
                pool,
                max_in_flight,
                max_in_flight,
            )

    def get(self, uri: str) -> bytes:
        bucket, key = object_address(uri, self.bucket)
        return self._retry(functools.partial(self._get_once, uri, bucket, key), bucket)

    def get_many(self, uris: Iterable[str]) -> Iterator[tuple[str, bytes | BaseException]]:
        return fetch_in_order(self.get, uris, max_in_flight=self.max_in_flight)

    def lean_route(self, bucket: str | None = None) -> LeanRoute | None:
        """How GETs from ``bucket`` are sent: the lean path's route, or None for ``get_object``."""
        if self._lean is None:
            return None
        return self._lean.route(bucket or self.bucket)

    def close(self) -> None:
        """Close the lean path's connections (the boto3 client is the caller's)."""
        if self._lean is not None:
            self._lean.close()

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
            route = self._lean.route(bucket) if self._lean is not None else None
            if route is None:
                return self._get_object_once(uri, bucket, key)
            try:
                return route.get(uri, key, self.max_object_bytes)
            except WrongRegion as exc:
                # S3 redirects a bucket of another region; botocore's redirector knows how to
                # follow it, so this bucket's GETs go through get_object from now on.
                assert self._lean is not None
                self._lean.give_up(bucket, str(exc))
                return self._get_object_once(uri, bucket, key)
        except ClientError as exc:
            if _is_not_found(exc):
                raise object_not_found(uri) from None
            raise

    def _get_object_once(self, uri: str, bucket: str, key: str) -> bytes:
        response = self.client.get_object(Bucket=bucket, Key=key)
        # Not `with response["Body"]`: botocore's StreamingBody.__enter__ hands out the raw
        # urllib3 stream, whose errors skip botocore's wrapping (and so look non-transient).
        # Closing an unread body drops its connection, which is what an oversize object deserves.
        with closing(response["Body"]) as body:
            size = response["ContentLength"]
            if size > self.max_object_bytes:
                raise too_large(uri, size, self.max_object_bytes)
            data: bytes = body.read()
            return data

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

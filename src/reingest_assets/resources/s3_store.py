"""Object store on S3 (or anything speaking its API: MinIO, moto) through a boto3 client.

The Dagster layer builds the client (dagster-aws ``S3Resource``); this module stays free of
Dagster so the CLI and the benchmark drive the same code.

GETs take the lean path of ``s3_lean_get.py`` (signed by the store, sent on its own keep-alive
connections: ~250 µs of CPU per GET instead of boto3's ~2.6 ms), which falls back to
``get_object`` per bucket for client settings it cannot reproduce; both paths raise the same
botocore exceptions, so retries and failure records do not depend on the path.
Everything else (put, upload_file, download_file, list, delete) is boto3.

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
from botocore.config import Config
from botocore.exceptions import ClientError

from reingest_assets.domain.failures import object_not_found
from reingest_assets.engine.retry import is_transient, retry
from reingest_assets.resources.fetch_window import fetch_in_order
from reingest_assets.resources.object_uri import object_address, object_uri, split_uri
from reingest_assets.resources.s3_lean_get import LeanGetter, LeanRoute, WrongRegion, too_large

log = logging.getLogger(__name__)

MiB = 1024 * 1024
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})

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
        return self._retry(functools.partial(self._get_once, uri, bucket, key))

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
        self._retry(functools.partial(self.client.put_object, Bucket=bucket, Key=key, Body=data))

    def upload_file(self, uri: str, path: Path) -> None:
        """Multipart above boto3's threshold (8 MiB), so large Parquet files upload in parts."""
        bucket, key = object_address(uri, self.bucket)
        self._retry(
            functools.partial(self.client.upload_file, str(path), bucket, key),
            retry_on=_is_transient_upload_error,
        )

    def download_file(self, uri: str, path: Path) -> bool:
        bucket, key = object_address(uri, self.bucket)
        try:
            self._retry(functools.partial(self.client.download_file, bucket, key, str(path)))
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def delete(self, uri: str) -> None:
        bucket, key = object_address(uri, self.bucket)
        self._retry(functools.partial(self.client.delete_object, Bucket=bucket, Key=key))

    def list(self, prefix: str) -> Iterator[str]:
        bucket, key_prefix = split_uri(prefix, self.bucket)
        request: dict[str, Any] = {
            "Bucket": bucket,
            "Prefix": key_prefix,
            "MaxKeys": self.list_page_size,
        }
        while True:
            # Page by page (not a paginator) so a transient error re-asks for one page only.
            page = self._retry(functools.partial(self.client.list_objects_v2, **request))
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
        self, call: Callable[[], T], retry_on: Callable[[BaseException], bool] = is_transient
    ) -> T:
        return retry(
            call,
            attempts=self.attempts,
            base_delay=self.base_delay,
            retry_on=retry_on,
            on_retry=_log_retry,
        )


def _is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES


def _is_transient_upload_error(exc: BaseException) -> bool:
    # boto3 replaces the ClientError of a failed upload with S3UploadFailedError, raised while
    # handling it, so the original is the implicit context.
    if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        return is_transient(exc.__context__)
    return is_transient(exc)


def _log_retry(attempt: int, exc: BaseException, delay: float) -> None:
    log.info("S3 call failed (attempt %d: %r); retrying in %.2fs", attempt, exc, delay)

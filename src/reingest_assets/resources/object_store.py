"""Object store protocol: where raw records are read from and normalized Parquet is written to.

Raw records are addressed by the registry's ``s3_raw_uri`` (``s3://bucket/key``, or a bare key
relative to the configured bucket); other schemes are refused. Implementations:
``LocalObjectStore`` (a directory, the embedded default) in ``local_store.py`` and
``S3ObjectStore`` (a boto3 client, from dagster-aws in the Dagster layer) in ``s3_store.py``.
Address errors (bad scheme, a key that would leave a local store) are
``DocumentError(stage="fetch")`` like a missing object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol


class ObjectStore(Protocol):
    def get(self, uri: str) -> bytes:
        """The object's bytes. Raises ``DocumentError(stage="fetch")`` when it is missing or over
        the size cap, and retries transient errors itself before raising."""

    def get_many(self, uris: Iterable[str]) -> Iterator[tuple[str, bytes | BaseException]]:
        """Fetch concurrently with a bounded number in flight; yields ``(uri, bytes or error)`` in
        input order. A failed object is yielded as its error, never raised. Pulls ``uris`` only
        as the window moves and never holds more than the window in memory."""

    def put(self, uri: str, data: bytes) -> None:
        """Create or replace the object; readers never see a partial one."""

    def upload_file(self, uri: str, path: Path) -> None:
        """Store a local file (Parquet written to a temp file) under ``uri``."""

    def download_file(self, uri: str, path: Path) -> bool:
        """Copy the object to ``path``; ``False`` when it does not exist."""

    def delete(self, uri: str) -> None:
        """Remove the object; no error when it is already gone."""

    def list(self, prefix: str) -> Iterator[str]:
        """``s3://bucket/key`` URIs of the objects whose key starts with ``prefix`` (a URI or a
        bare key prefix), in key order."""

"""Object store protocol: where raw records are read from and normalized Parquet is written to.

Raw records are addressed by the registry's ``s3_raw_uri`` (``s3://bucket/key``, or a bare key
relative to the configured bucket). Implementations: ``LocalObjectStore`` (a directory, the
embedded default) in ``local_store.py`` and ``S3ObjectStore`` (dagster-aws) in ``s3_store.py``.
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
        input order. Never holds more than the in-flight window in memory."""

    def put(self, uri: str, data: bytes) -> None: ...

    def upload_file(self, uri: str, path: Path) -> None:
        """Store a local file (Parquet written to a temp file) under ``uri``."""

    def download_file(self, uri: str, path: Path) -> bool:
        """Copy the object to ``path``; ``False`` when it does not exist."""

    def delete(self, uri: str) -> None: ...

    def list(self, prefix: str) -> Iterator[str]:
        """URIs under ``prefix``, in key order."""

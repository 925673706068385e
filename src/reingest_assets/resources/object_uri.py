"""Object addresses: ``s3://bucket/key``, or a bare key relative to the store's bucket."""

from __future__ import annotations

from reingest_assets.domain.failures import DocumentError

SCHEME = "s3://"


def split_uri(uri: str, default_bucket: str) -> tuple[str, str]:
    """``(bucket, key)``; the key may be empty (a listing prefix). Other schemes are refused so a
    registry row cannot point a store at ``file://`` or ``http://`` locations."""
    if uri.startswith(SCHEME):
        bucket, _, key = uri.removeprefix(SCHEME).partition("/")
        if not bucket:
            raise DocumentError("fetch", f"no bucket in object URI {uri!r}")
        return bucket, key
    if "://" in uri:
        raise DocumentError("fetch", f"unsupported object URI {uri!r}: not s3:// or a key")
    return default_bucket, uri


def object_address(uri: str, default_bucket: str) -> tuple[str, str]:
    """``(bucket, key)`` of one object: the key must name something."""
    bucket, key = split_uri(uri, default_bucket)
    if not key or key.endswith("/"):
        raise DocumentError("fetch", f"object URI {uri!r} names no object (empty key)")
    return bucket, key


def object_uri(bucket: str, key: str) -> str:
    return f"{SCHEME}{bucket}/{key}"

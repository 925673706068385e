"""decode_raw: transparent gzip/zstd, and a hard cap that compression bombs cannot get past."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
import zstandard

from reingest_assets.domain.failures import DocumentError
from reingest_assets.domain.raw import MAX_RECORD_BYTES, decode_raw

RECORD = b'{"pmid": "123", "title": "A record"}' * 50


def gzip_bomb(decoded_bytes: int) -> bytes:
    """A gzip stream of ``decoded_bytes`` zeros, built 1 MiB at a time (~100 KB for 100 MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(decoded_bytes // len(block))]
    return b"".join(parts) + compressor.flush()


def zstd_bomb(decoded_bytes: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(decoded_bytes // len(block))]
    return b"".join(parts) + compressor.flush()


def test_plain_bytes_pass_through() -> None:
    assert decode_raw(RECORD) == RECORD


def test_gzip_and_zstd_are_detected_by_magic_bytes() -> None:
    assert decode_raw(gzip.compress(RECORD)) == RECORD
    assert decode_raw(zstandard.ZstdCompressor().compress(RECORD)) == RECORD


def test_multi_member_gzip_and_multi_frame_zstd_decode_whole() -> None:
    assert decode_raw(gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"
    compressor = zstandard.ZstdCompressor()
    assert decode_raw(compressor.compress(b"ab") + compressor.compress(b"cd")) == b"abcd"


@pytest.mark.parametrize("bomb", [gzip_bomb, zstd_bomb], ids=["gzip", "zstd"])
def test_decompression_bomb_is_refused_without_inflating_it(bomb: Callable[[int], bytes]) -> None:
    data = bomb(100 * 1024 * 1024)
    assert len(data) < 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError) as caught:
            decode_raw(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.stage == "parse"
    assert f"{MAX_RECORD_BYTES}-byte limit" in caught.value.message
    # Refused at the cap: nowhere near the 100 MiB the stream expands to.
    assert peak < 3 * MAX_RECORD_BYTES


def test_cap_is_configurable_and_exact() -> None:
    payload = b"x" * 1000
    assert decode_raw(gzip.compress(payload), max_bytes=1000) == payload
    with pytest.raises(DocumentError, match="limit"):
        decode_raw(gzip.compress(payload), max_bytes=999)
    with pytest.raises(DocumentError, match="limit"):
        decode_raw(zstandard.ZstdCompressor().compress(payload), max_bytes=999)


def test_oversize_plain_record_is_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        decode_raw(b"{" + b" " * MAX_RECORD_BYTES + b"}")
    assert caught.value.stage == "parse"
    assert "limit per record" in caught.value.message


def test_truncated_and_corrupt_gzip_are_parse_errors() -> None:
    compressed = gzip.compress(RECORD)
    with pytest.raises(DocumentError, match="truncated gzip"):
        decode_raw(compressed[: len(compressed) // 2])
    with pytest.raises(DocumentError, match="corrupt gzip"):
        decode_raw(b"\x1f\x8b" + b"\xff" * 30)
    with pytest.raises(DocumentError, match="garbage after the gzip stream"):
        decode_raw(compressed + b"trailing")


def test_corrupt_zstd_is_a_parse_error() -> None:
    with pytest.raises(DocumentError, match="corrupt zstd") as caught:
        decode_raw(b"\x28\xb5\x2f\xfd" + b"\xff" * 30)
    assert caught.value.stage == "parse"

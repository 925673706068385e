"""Raw object bytes -> the record's plain bytes: transparent gzip/zstd, with a size cap.

Raw objects come from outside; a small compressed object may expand to gigabytes, so the
output is produced in bounded steps and refused as soon as it passes the cap.
"""

from __future__ import annotations

import zlib

import zstandard

from reingest_assets.domain.failures import DocumentError

MAX_RECORD_BYTES: int = 8 * 1024 * 1024

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Output produced per decompression step: the most memory a bomb can make us allocate beyond
# the cap.
_STEP_BYTES = 1024 * 1024


def decode_raw(data: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> bytes:
    """The decoded record: gzip and zstd (by magic bytes) decompressed, anything else as is.

    Raises ``DocumentError(stage="parse")`` for a corrupt stream or a decoded size over
    ``max_bytes``.
    """
    if data[:2] == GZIP_MAGIC:
        return _gunzip(data, max_bytes)
    if data[:4] == ZSTD_MAGIC:
        return _unzstd(data, max_bytes)
    if len(data) > max_bytes:
        raise _oversize(f"is {len(data)} bytes", max_bytes)
    return data


def _oversize(what: str, max_bytes: int) -> DocumentError:
    return DocumentError(
        "parse",
        f"record {what}, over the {max_bytes}-byte limit per record: "
        "split the object into one record per object or raise MAX_RECORD_BYTES",
    )


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    out: list[bytes] = []
    size = 0
    pending = data
    # A gzip file may hold several members back to back (``cat a.gz b.gz``).
    while pending:
        decompressor = zlib.decompressobj(wbits=31)
        try:
            while not decompressor.eof:
                chunk = decompressor.decompress(pending, min(_STEP_BYTES, max_bytes + 1 - size))
                pending = decompressor.unconsumed_tail
                if not chunk and not pending:
                    raise DocumentError(
                        "parse", "truncated gzip stream: the object was cut short, re-fetch it"
                    )
                size += len(chunk)
                if size > max_bytes:
                    raise _oversize("decompresses (gzip) to more bytes", max_bytes)
                out.append(chunk)
        except zlib.error as exc:
            raise DocumentError("parse", f"corrupt gzip stream: {exc}") from None
        pending = decompressor.unused_data
        if pending[:2] != GZIP_MAGIC:
            if pending.strip(b"\x00"):
                raise DocumentError(
                    "parse",
                    f"{len(pending)} bytes of garbage after the gzip stream: re-fetch the object",
                )
            break
    return b"".join(out)


def _unzstd(data: bytes, max_bytes: int) -> bytes:
    out: list[bytes] = []
    size = 0
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    try:
        while chunk := reader.read(min(_STEP_BYTES, max_bytes + 1 - size)):
            size += len(chunk)
            if size > max_bytes:
                raise _oversize("decompresses (zstd) to more bytes", max_bytes)
            out.append(chunk)
    except zstandard.ZstdError as exc:
        raise DocumentError("parse", f"corrupt zstd stream: {exc}") from None
    return b"".join(out)

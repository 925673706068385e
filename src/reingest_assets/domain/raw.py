"""Raw object bytes -> the record's plain bytes: transparent gzip/zstd, with a size cap.

Raw objects come from outside; a small compressed object may expand to gigabytes, so the
output is produced in bounded steps and refused as soon as it passes the cap.
"""

from __future__ import annotations

import zlib

import zstandard

from reingest_assets.domain.failures import DocumentError

MAX_RECORD_BYTES: int = 8 * 1024 * 1024
MAX_GZIP_MEMBERS: int = 1000

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Output produced per decompression step: the most memory a bomb can make us allocate beyond
# the cap.
_STEP_BYTES = 1024 * 1024
# Input given to the gzip decompressor at a time: what it hands back as the start of the next
# member is a copy of at most this, not of the rest of the object (which made an object of many
# tiny members quadratic).
_INPUT_BYTES = 64 * 1024


def decode_raw(
    data: bytes, *, max_bytes: int = MAX_RECORD_BYTES, max_members: int = MAX_GZIP_MEMBERS
) -> bytes:
    """The decoded record: gzip and zstd (by magic bytes) decompressed, anything else as is.

    Raises ``DocumentError(stage="parse")`` for a corrupt stream, a decoded size over
    ``max_bytes`` or a gzip stream of more than ``max_members`` members.
    """
    if data[:2] == GZIP_MAGIC:
        return _gunzip(data, max_bytes, max_members)
    if data[:4] == ZSTD_MAGIC:
        return _unzstd(data, max_bytes)
    if len(data) > max_bytes:
        raise _oversize(f"is {len(data)} bytes", max_bytes)
    return data


def _oversize(what: str, max_bytes: int) -> DocumentError:
    return DocumentError(
        "parse",
        f"record {what}, over the {max_bytes}-byte limit per record (max_record_bytes): "
        "split the object into one record per object or raise REINGEST_MAX_RECORD_BYTES",
    )


def _gunzip(data: bytes, max_bytes: int, max_members: int) -> bytes:
    """Member after member (a gzip file may be several back to back: ``cat a.gz b.gz``), fed in
    bounded pieces, so the time is linear in the object's size however many members it has."""
    out: list[bytes] = []
    size = 0
    view = memoryview(data)
    position = 0  # of the next input not yet given to a decompressor
    pending = b""  # input given to no decompressor yet, or handed back by the last one
    members = 0
    while True:
        members += 1
        if members > max_members:
            raise DocumentError(
                "parse",
                f"gzip stream has more than {max_members:,} members, over the limit "
                "(max_gzip_members): re-compress the record as one member or raise "
                "REINGEST_MAX_GZIP_MEMBERS",
            )
        decompressor = zlib.decompressobj(wbits=31)
        try:
            while not decompressor.eof:
                if not pending:
                    if position >= len(data):
                        raise DocumentError(
                            "parse", "truncated gzip stream: the object was cut short, re-fetch it"
                        )
                    pending = bytes(view[position : position + _INPUT_BYTES])
                    position += len(pending)
                chunk = decompressor.decompress(pending, min(_STEP_BYTES, max_bytes + 1 - size))
                pending = decompressor.unconsumed_tail
                size += len(chunk)
                if size > max_bytes:
                    raise _oversize("decompresses (gzip) to more bytes", max_bytes)
                out.append(chunk)
        except zlib.error as exc:
            raise DocumentError("parse", f"corrupt gzip stream: {exc}") from None
        pending = decompressor.unused_data
        if len(pending) < len(GZIP_MAGIC) and position < len(data):
            pending += bytes(view[position : position + _INPUT_BYTES])
            position += _INPUT_BYTES
        if pending[:2] != GZIP_MAGIC:
            rest = len(pending) + max(0, len(data) - position)
            if pending.strip(b"\x00") or bytes(view[position:]).strip(b"\x00"):
                raise DocumentError(
                    "parse",
                    f"{rest} bytes of garbage after the gzip stream: re-fetch the object",
                )
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

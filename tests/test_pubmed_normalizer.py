"""normalize_record / iter_pubmed_xml: what a PubMed record becomes, and what is refused."""

from __future__ import annotations

import csv
import gzip
import io
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from reingest_assets.domain.document import Document, Section
from reingest_assets.domain.failures import DocumentError
from reingest_assets.domain.pubmed import ARTICLE_TAGS, iter_pubmed_xml, normalize_record

PUBMED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pubmed"
DOCTYPE = (
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">'
)

JSON_RECORD: dict[str, Any] = {
    "pmid": "12345",
    "title": "  Aspirin and\n  headache ",
    "abstract": [
        {"label": "BACKGROUND", "text": "Headache is common."},
        {"label": "METHODS", "text": "We  gave aspirin."},
    ],
    "authors": ["Smith JA", {"last_name": "Doe", "fore_name": "Jane Mary"}, {"name": "ACME Group"}],
    "journal": "The Journal",
    "mesh_terms": ["Aspirin", "Headache"],
    "doi": "https://doi.org/10.1000/xyz",
    "pmc_id": "1234567",
    "publication_date": "2021-03-04",
    "language": "ENG",
    "publication_types": ["Journal Article"],
}


def article_xml(
    body: str = "",
    *,
    pmid: str = "<PMID Version='1'>777</PMID>",
    title: str = "<ArticleTitle>A title.</ArticleTitle>",
    abstract: str = "<Abstract><AbstractText>Plain abstract.</AbstractText></Abstract>",
    tail: str = "",
) -> str:
    return (
        "<PubmedArticle><MedlineCitation>"
        f"{pmid}<Article><Journal><JournalIssue><PubDate><Year>2020</Year><Month>Feb</Month>"
        f"</PubDate></JournalIssue><Title>J Test</Title></Journal>{title}{abstract}{body}"
        f"<Language>eng</Language></Article>{tail}</MedlineCitation>"
        "<PubmedData><ArticleIdList><ArticleId IdType='pubmed'>777</ArticleId>"
        "<ArticleId IdType='doi'>10.1/abc</ArticleId><ArticleId IdType='pmc'>PMC42</ArticleId>"
        "</ArticleIdList></PubmedData></PubmedArticle>"
    )


def pubmed_set(*articles: str) -> bytes:
    return (
        f'<?xml version="1.0" ?>\n{DOCTYPE}\n<PubmedArticleSet>{"".join(articles)}'
        "</PubmedArticleSet>"
    ).encode()


def normalize(data: bytes, **kwargs: Any) -> Document:
    return normalize_record(data, source="pubmed", **kwargs)


def refused(data: bytes, **kwargs: Any) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        normalize(data, **kwargs)
    message = caught.value.message
    assert "\n" not in message and message == str(caught.value)
    return caught.value


# --------------------------------------------------------------------------- JSON


def test_json_record_normalizes_every_field() -> None:
    document = normalize(orjson.dumps(JSON_RECORD))
    assert document.uid == "pubmed:12345"
    assert document.source == "pubmed" and document.source_id == "12345"
    assert document.title == "Aspirin and headache"
    assert document.sections == (
        Section("BACKGROUND", "Headache is common."),
        Section("METHODS", "We gave aspirin."),
    )
    assert document.authors == ("Smith JA", "Doe JM", "ACME Group")
    assert document.journal == "The Journal"
    assert document.mesh_terms == ("Aspirin", "Headache")
    assert document.doi == "10.1000/xyz"
    assert document.pmc_id == "PMC1234567"
    assert document.published_at == "2021-03-04"
    assert document.language == "eng"
    assert document.publication_types == ("Journal Article",)


def test_json_pmid_may_be_an_upper_case_key_or_a_number() -> None:
    assert normalize(b'{"PMID": 42}').source_id == "42"
    assert normalize(b'\xef\xbb\xbf  {"pmid": " 42 "}').uid == "pubmed:42"


@pytest.mark.parametrize(
    ("abstract", "sections"),
    [
        ("One  paragraph.", (Section(None, "One paragraph."),)),
        (["First part.", "Second part."], (Section(None, "First part. Second part."),)),
        (
            {"OBJECTIVE": "Find out.", "UNASSIGNED": "Rest."},
            (Section("OBJECTIVE", "Find out."), Section(None, "Rest.")),
        ),
        ([{"Label": "AIM", "Text": "To see."}], (Section("AIM", "To see."),)),
        ("", ()),
        (None, ()),
    ],
)
def test_json_abstract_forms(abstract: Any, sections: tuple[Section, ...]) -> None:
    assert normalize(orjson.dumps({"pmid": 1, "abstract": abstract})).sections == sections


@pytest.mark.parametrize(
    ("published", "iso"),
    [
        ("2021-03-04", "2021-03-04"),
        ("2021-03-04T10:11:12Z", "2021-03-04"),
        ("2021/3/4", "2021-03-04"),
        ("2021-03", "2021-03-01"),
        ("2021 Mar", "2021-03-01"),
        ("2021 March 9", "2021-03-09"),
        ("2021", "2021-01-01"),
        (2021, "2021-01-01"),
        ("2000 Spring", "2000-03-01"),
        ("Winter 2001", "2001-12-01"),
        ("1998 Dec-1999 Jan", "1998-12-01"),
        ("2016 May 25-Jun 14", "2016-05-25"),
        ("1944-1945", "1944-01-01"),
        ("2024-00-00", "2024-01-01"),  # zeros: month and day not given
        ("2024-05-00", "2024-05-01"),
        ("0000-00-00", None),  # the record says it has no date
        ("someday", None),
    ],
)
def test_publication_dates_become_iso(published: Any, iso: str | None) -> None:
    record = {"pmid": 1, "publication_date": published}
    assert normalize(orjson.dumps(record)).published_at == iso


@pytest.mark.parametrize(
    ("published", "what"),
    [
        ("2024-13-45", "month 13"),
        ("2021-02-30", "day 30 of month 2"),
        ("2023-04-31", "day 31 of month 4"),
    ],
)
def test_a_date_that_does_not_exist_is_refused_not_bent(published: str, what: str) -> None:
    """Never another date than the record's: 2024-13-45 used to become 2024-01-01."""
    with pytest.raises(DocumentError) as caught:
        normalize(orjson.dumps({"pmid": 1, "publication_date": published}))
    assert caught.value.stage == "normalize"
    assert f"is not a real date ({what} does not exist)" in caught.value.message


def test_an_xml_month_that_does_not_exist_is_refused() -> None:
    xml = (
        "<PubmedArticle><MedlineCitation><PMID>1</PMID><Article><Journal><JournalIssue>"
        "<PubDate><Year>2020</Year><Month>Foo</Month></PubDate></JournalIssue></Journal>"
        "<ArticleTitle>t</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
    )
    with pytest.raises(DocumentError, match="2020-Foo is not a real date"):
        normalize(xml.encode())


@pytest.mark.parametrize("pmid", ["\u0661\u0662\u0663", "\uff11\uff12", "12\u0663"])
def test_a_pmid_in_non_ascii_digits_is_refused(pmid: str) -> None:
    with pytest.raises(DocumentError, match="is not numeric") as caught:
        normalize(orjson.dumps({"pmid": pmid, "title": "t"}))
    assert caught.value.stage == "normalize"


def test_utf16_xml_with_a_byte_order_mark_is_read() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-16"?><PubmedArticle><MedlineCitation><PMID>5</PMID>'
        "<Article><ArticleTitle>Caf\u00e9 \u2013 \u6e2c\u8a66</ArticleTitle></Article>"
        "</MedlineCitation></PubmedArticle>"
    )
    for encoding in ("utf-16", "utf-16-be"):
        data = (b"\xfe\xff" if encoding == "utf-16-be" else b"") + xml.encode(encoding)
        assert normalize(data).title == "Caf\u00e9 \u2013 \u6e2c\u8a66"


def test_utf16_cannot_hide_an_entity_declaration() -> None:
    xml = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><PubmedArticle/>'
    with pytest.raises(DocumentError, match="declares entities"):
        normalize(xml.encode("utf-16"))


@pytest.mark.parametrize(("language", "code"), [("ENG", "eng"), ("Eng", "eng"), ("en", "eng")])
def test_language_is_a_lower_case_three_letter_code(language: str, code: str) -> None:
    assert normalize(orjson.dumps({"pmid": 1, "language": language})).language == code


def test_retracted_publication_is_flagged_in_extra() -> None:
    record = {"pmid": 1, "publication_types": ["Journal Article", "Retracted Publication"]}
    assert normalize(orjson.dumps(record)).extra == {"retracted": True}


def test_record_without_title_or_abstract_is_valid() -> None:
    document = normalize(b'{"pmid": "9"}')
    assert (document.title, document.sections) == ("", ())


def test_envelope_with_payload_as_object_or_json_string() -> None:
    expected = normalize(orjson.dumps(JSON_RECORD))
    envelope = {
        "pmid": "12345",
        "fetched_at": "2024-01-01T00:00:00Z",
        "source": "pubmed",
        "hash": "abc",
        "version": 2,
    }
    as_object = normalize(orjson.dumps({**envelope, "payload": JSON_RECORD}))
    as_string = normalize(orjson.dumps({**envelope, "payload": orjson.dumps(JSON_RECORD).decode()}))
    assert as_object == expected
    assert as_string == expected


def test_envelope_with_xml_payload_string() -> None:
    envelope = {"pmid": "777", "payload": pubmed_set(article_xml()).decode()}
    assert normalize(orjson.dumps(envelope)).title == "A title."


def test_envelope_lends_its_pmid_to_a_payload_without_one() -> None:
    envelope = {"pmid": 55, "payload": {"title": "T"}}
    assert normalize(orjson.dumps(envelope)).uid == "pubmed:55"


def test_envelope_and_payload_disagreeing_on_the_pmid_is_refused() -> None:
    error = refused(orjson.dumps({"pmid": "1", "payload": {"pmid": "2"}}))
    assert error.stage == "normalize"
    assert "envelope says PMID 1" in error.message


def test_envelope_inside_an_envelope_is_refused() -> None:
    inner = orjson.dumps({"pmid": "1", "payload": {"pmid": "1"}}).decode()
    error = refused(orjson.dumps({"pmid": "1", "payload": inner}))
    assert error.stage == "normalize"


@pytest.mark.parametrize(
    "compress",
    [gzip.compress, zstandard.ZstdCompressor().compress],
    ids=["gzip", "zstd"],
)
def test_compressed_records_normalize_like_plain_ones(compress: Any) -> None:
    for raw in (orjson.dumps(JSON_RECORD), pubmed_set(article_xml())):
        assert normalize(compress(raw)) == normalize(raw)


def test_malformed_json_says_where() -> None:
    error = refused(b'{"pmid": "1",\n "title": }')
    assert error.stage == "parse"
    assert "malformed JSON at line 2" in error.message


def test_invalid_utf8_says_at_which_byte() -> None:
    error = refused(b'{"pmid": "1", "title": "caf\xe9"}')
    assert error.stage == "parse"
    assert "invalid UTF-8 at byte 27" in error.message
    xml_error = refused(
        b"<PubmedArticle><MedlineCitation><PMID>1</PMID>\xff</MedlineCitation></PubmedArticle>"
    )
    assert xml_error.stage == "parse"
    assert "invalid UTF-8 at byte 46" in xml_error.message


@pytest.mark.parametrize("data", [b"", b"   ", b"hello", b"\x00\x01"])
def test_bytes_that_are_neither_json_nor_xml_are_parse_errors(data: bytes) -> None:
    assert refused(data).stage == "parse"


def test_json_that_is_not_one_object_is_refused() -> None:
    error = refused(b'[{"pmid": 1}]')
    assert error.stage == "normalize"
    assert "one record" in error.message


@pytest.mark.parametrize("record", [{}, {"pmid": None}, {"pmid": ""}, {"title": "no id"}])
def test_missing_pmid_is_a_normalize_error(record: dict[str, Any]) -> None:
    error = refused(orjson.dumps(record))
    assert error.stage == "normalize"
    assert "pmid" in error.message.lower()


@pytest.mark.parametrize("pmid", ["PMC123", "12a", "-5", -5, 1.5, True, ["1"]])
def test_non_numeric_pmid_is_a_normalize_error(pmid: Any) -> None:
    error = refused(orjson.dumps({"pmid": pmid}))
    assert error.stage == "normalize"
    assert "PMID" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ["a", "list"]),
        ("authors", 3),
        ("authors", [["nested"]]),
        ("abstract", 42),
        ("abstract", [{"label": "A", "text": 1}]),
        ("mesh_terms", "Aspirin"),
        ("doi", 10),
        ("journal", ["J"]),
        ("language", 7),
    ],
)
def test_wrong_field_types_name_the_field(field: str, value: Any) -> None:
    error = refused(orjson.dumps({"pmid": 1, field: value}))
    assert error.stage == "normalize"
    assert f"'{field}" in error.message


def test_pmid_different_from_the_registry_is_refused() -> None:
    assert normalize(b'{"pmid": 5}', expected_source_id="5").source_id == "5"
    error = refused(b'{"pmid": 5}', expected_source_id="6")
    assert error.stage == "normalize"
    assert "PMID 5" in error.message and "expects 6" in error.message


# --------------------------------------------------------------------------- XML


def test_pubmed_xml_article_normalizes() -> None:
    authors = (
        "<AuthorList><Author><LastName>Shin</LastName><ForeName>Hyeong-Moo</ForeName>"
        "<Initials>HM</Initials></Author><Author><LastName>Vieira</LastName>"
        "<ForeName>Ver&#xf3;nica M</ForeName></Author><Author ValidYN='N'><LastName>Wrong"
        "</LastName></Author><Author><CollectiveName>C8 Group</CollectiveName></Author>"
        "</AuthorList><PublicationTypeList><PublicationType>Journal Article</PublicationType>"
        "</PublicationTypeList>"
    )
    mesh = (
        "<MeshHeadingList><MeshHeading><DescriptorName UI='D1'>Caprylates</DescriptorName>"
        "<QualifierName>blood</QualifierName></MeshHeading></MeshHeadingList>"
    )
    document = normalize(pubmed_set(article_xml(authors, tail=mesh)))
    assert document.uid == "pubmed:777"
    assert document.title == "A title."
    assert document.sections == (Section(None, "Plain abstract."),)
    assert document.authors == ("Shin HM", "Vieira VM", "C8 Group")
    assert document.journal == "J Test"
    assert document.mesh_terms == ("Caprylates",)
    assert (document.doi, document.pmc_id) == ("10.1/abc", "PMC42")
    assert document.published_at == "2020-02-01"
    assert document.language == "eng"
    assert document.publication_types == ("Journal Article",)


def test_structured_abstract_keeps_labels() -> None:
    abstract = (
        "<Abstract><AbstractText Label='BACKGROUND' NlmCategory='BACKGROUND'>Why.</AbstractText>"
        "<AbstractText NlmCategory='METHODS'>How.</AbstractText>"
        "<AbstractText Label='Aim of the study' NlmCategory='UNASSIGNED'>Aim.</AbstractText>"
        "<AbstractText NlmCategory='UNASSIGNED'>Loose text.</AbstractText>"
        "<AbstractText Label='RESULTS'>: What.</AbstractText>"
        "<AbstractText Label='EMPTY'/>"
        "<CopyrightInformation>(c) someone</CopyrightInformation></Abstract>"
    )
    document = normalize(pubmed_set(article_xml(abstract=abstract)))
    assert document.sections == (
        Section("BACKGROUND", "Why."),
        Section("METHODS", "How."),
        Section("Aim of the study", "Aim."),
        Section(None, "Loose text."),
        Section("RESULTS", "What."),
    )


def test_unlabelled_paragraphs_are_one_unstructured_section() -> None:
    abstract = (
        "<Abstract><AbstractText>One.</AbstractText><AbstractText>Two.</AbstractText></Abstract>"
    )
    document = normalize(pubmed_set(article_xml(abstract=abstract)))
    assert document.sections == (Section(None, "One. Two."),)


def test_inline_markup_is_stripped_with_sensible_spacing() -> None:
    title = "<ArticleTitle>Effect of CO<sub>2</sub> on <i>E. coli</i>\n growth</ArticleTitle>"
    abstract = (
        "<Abstract><AbstractText>Levels of Ca<sup>2+</sup> rose in <b>all</b> <u>three</u>"
        " groups; <mml:math xmlns:mml='http://www.w3.org/1998/Math/MathML'><mml:mi>p</mml:mi>"
        "<mml:mo>&lt;</mml:mo><mml:mn>0.05</mml:mn></mml:math>.</AbstractText></Abstract>"
    )
    document = normalize(pubmed_set(article_xml(title=title, abstract=abstract)))
    assert document.title == "Effect of CO2 on E. coli growth"
    assert document.abstract == "Levels of Ca2+ rose in all three groups; p<0.05."


def test_bold_pseudo_headings_split_an_unlabelled_abstract() -> None:
    abstract = (
        "<Abstract><AbstractText><b>Objective:</b> To test <b>7d</b> dosing. "
        "<b>Methods</b>: A trial. <b>结论：</b>有效。</AbstractText></Abstract>"
    )
    document = normalize(pubmed_set(article_xml(abstract=abstract)))
    assert document.sections == (
        Section("OBJECTIVE", "To test 7d dosing."),
        Section("METHODS", "A trial."),
        Section("结论", "有效。"),
    )


def test_bold_text_that_is_not_a_leading_heading_stays_inline() -> None:
    abstract = (
        "<Abstract><AbstractText>We found <b>Note:</b> nothing <b>Else:</b> here."
        "</AbstractText></Abstract>"
    )
    document = normalize(pubmed_set(article_xml(abstract=abstract)))
    assert document.sections == (Section(None, "We found Note: nothing Else: here."),)


def test_vernacular_title_stands_in_for_an_empty_article_title() -> None:
    body = "<VernacularTitle>Titre en fran&#xe7;ais.</VernacularTitle>"
    document = normalize(pubmed_set(article_xml(body, title="<ArticleTitle/>")))
    assert document.title == "Titre en français."
    translated = normalize(
        pubmed_set(article_xml(body, title="<ArticleTitle>[Title.]</ArticleTitle>"))
    )
    assert translated.title == "[Title.]"
    assert translated.extra["vernacular_title"] == "Titre en français."


def test_article_without_abstract_is_valid() -> None:
    document = normalize(pubmed_set(article_xml(abstract="")))
    assert document.sections == ()
    assert document.title == "A title."


def test_medline_citation_records_normalize() -> None:
    citation = (
        b"<MedlineCitationSet><MedlineCitation Owner='NLM'><PMID>31</PMID><Article>"
        b"<Journal><JournalIssue><PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate>"
        b"</JournalIssue><Title>Old J</Title></Journal><ArticleTitle>Old.</ArticleTitle>"
        b"<ELocationID EIdType='doi' ValidYN='Y'>10.9/old</ELocationID><Language>Eng</Language>"
        b"</Article><OtherID Source='NLM'>PMC99</OtherID></MedlineCitation></MedlineCitationSet>"
    )
    document = normalize(citation)
    assert document.uid == "pubmed:31"
    assert (document.published_at, document.language) == ("1998-12-01", "eng")
    assert (document.doi, document.pmc_id) == ("10.9/old", "PMC99")


def test_book_chapter_takes_its_book_as_container() -> None:
    book = (
        "<PubmedBookArticle><BookDocument><PMID>20301382</PMID><Book><BookTitle>GeneReviews"
        "</BookTitle><PubDate><Year>1993</Year></PubDate></Book><ArticleTitle>A syndrome"
        "</ArticleTitle><Language>eng</Language><AuthorList Type='authors'><Author>"
        "<LastName>Goldstein</LastName><Initials>A</Initials></Author></AuthorList>"
        "<AuthorList Type='editors'><Author><LastName>Adam</LastName><Initials>MP</Initials>"
        "</Author></AuthorList><Abstract><AbstractText Label='SUMMARY'>Text.</AbstractText>"
        "</Abstract></BookDocument></PubmedBookArticle>"
    )
    document = normalize(pubmed_set(book))
    assert (document.title, document.journal) == ("A syndrome", "GeneReviews")
    assert document.authors == ("Goldstein A",)
    assert document.sections == (Section("SUMMARY", "Text."),)
    assert document.published_at == "1993-01-01"


def test_xml_without_pmid_is_a_normalize_error() -> None:
    error = refused(pubmed_set(article_xml(pmid="")))
    assert error.stage == "normalize"
    assert "PMID" in error.message
    assert refused(pubmed_set(article_xml(pmid="<PMID>x1</PMID>"))).stage == "normalize"


def test_malformed_xml_says_where() -> None:
    error = refused(b"<PubmedArticle><MedlineCitation>\n<PMID>1</PMID></PubmedArticle>")
    assert error.stage == "parse"
    assert "malformed XML at line 2" in error.message


def test_a_set_of_several_articles_is_not_one_record() -> None:
    error = refused(pubmed_set(article_xml(), article_xml()))
    assert error.stage == "normalize"
    assert "exactly one" in error.message and "iter_pubmed_xml" in error.message


def test_real_doctype_with_a_dtd_url_parses_offline() -> None:
    # load_dtd=False, no_network=True: the DTD URL is never fetched.
    assert normalize(pubmed_set(article_xml())).source_id == "777"


def test_xxe_is_refused_without_leaking_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    for declaration in (
        f'<!ENTITY xxe SYSTEM "file://{secret}">',
        '<!ENTITY xxe SYSTEM "file:///etc/passwd">',
        f'<!ENTITY % remote SYSTEM "file://{secret}"> %remote;',
    ):
        data = (
            f'<?xml version="1.0"?><!DOCTYPE PubmedArticle [{declaration}]>'
            "<PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>&xxe;"
            "</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
        ).encode()
        for error in (refused(data), *_errors(iter_pubmed_xml(data))):
            assert error.stage == "parse"
            assert "entit" in error.message
            assert "TOP-SECRET" not in error.message and "root:" not in error.message


def test_billion_laughs_is_refused() -> None:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    data = (
        f'<?xml version="1.0"?><!DOCTYPE PubmedArticle [<!ENTITY lol0 "lol">{entities}]>'
        "<PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>&lol9;"
        "</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
    ).encode()
    assert refused(data).stage == "parse"
    assert [error.stage for error in _errors(iter_pubmed_xml(data))] == ["parse"]


def test_utf16_cannot_smuggle_an_entity_past_the_scan() -> None:
    data = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]>'
        "<PubmedArticle><MedlineCitation><PMID>1</PMID></MedlineCitation></PubmedArticle>"
    ).encode("utf-16-le")
    assert refused(data).stage == "parse"


def test_normalizing_twice_gives_equal_documents_and_hashes() -> None:
    for raw in (orjson.dumps(JSON_RECORD), pubmed_set(article_xml())):
        first, second = normalize(raw), normalize(raw)
        assert first == second
        assert first.content_hash() == second.content_hash()
        assert Document.from_row(first.to_row()) == first


# --------------------------------------------------------------------------- iter_pubmed_xml


def _errors(items: Any) -> list[DocumentError]:
    return [item for item in items if isinstance(item, DocumentError)]


def test_iter_pubmed_xml_streams_articles_and_reports_bad_ones() -> None:
    data = pubmed_set(
        article_xml(pmid="<PMID>1</PMID>"),
        article_xml(pmid=""),
        "<DeleteCitation><PMID>8</PMID><PMID>9</PMID></DeleteCitation>",
        article_xml(pmid="<PMID>3</PMID>"),
    )
    for raw in (data, gzip.compress(data), zstandard.ZstdCompressor().compress(data)):
        items = list(iter_pubmed_xml(raw))
        assert [item.source_id for item in items if isinstance(item, Document)] == ["1", "3"]
        [error] = _errors(items)
        assert error.stage == "normalize" and "article #2" in error.message


def test_iter_pubmed_xml_ends_with_an_error_on_malformed_xml() -> None:
    articles = [article_xml(pmid=f"<PMID>{pmid}</PMID>") for pmid in range(1, 201)]
    data = pubmed_set(*articles, "<PubmedArticle><MedlineCitation><PMID>9</PMID></Oops>")
    items = list(iter_pubmed_xml(data))
    documents, last = items[:-1], items[-1]
    assert documents and all(isinstance(item, Document) for item in documents)
    assert isinstance(last, DocumentError) and last.stage == "parse"
    assert f"after article #{len(documents)}" in last.message


# --------------------------------------------------------------------------- properties

_labels = st.one_of(st.none(), st.sampled_from(["BACKGROUND", "METHODS", "UNASSIGNED", "Aim"]))
_json_records = st.fixed_dictionaries(
    {"pmid": st.one_of(st.integers(1, 10**9), st.integers(1, 10**9).map(str))},
    optional={
        "title": st.text(),
        "abstract": st.one_of(
            st.text(),
            st.lists(st.fixed_dictionaries({"label": _labels, "text": st.text()}), max_size=5),
            st.dictionaries(st.sampled_from(["A", "B", "UNASSIGNED"]), st.text()),
        ),
        "authors": st.lists(
            st.one_of(
                st.text(),
                st.fixed_dictionaries({"last_name": st.text(), "fore_name": st.text()}),
            ),
            max_size=5,
        ),
        "mesh_terms": st.lists(st.text(), max_size=5),
        "publication_date": st.one_of(st.text(max_size=20), st.integers(1000, 2999)),
        "language": st.text(max_size=8),
        "doi": st.text(max_size=30),
    },
)


@settings(max_examples=100, deadline=None)
@given(_json_records)
def test_json_normalization_is_deterministic(record: dict[str, Any]) -> None:
    raw = orjson.dumps(record)
    try:
        first = normalize(raw)
    except DocumentError as exc:  # a generated date can name a month or day that does not exist
        assert "is not a real date" in exc.message
        return
    second = normalize(raw)
    assert first == second
    assert first.content_hash() == second.content_hash()
    assert first.uid == f"pubmed:{record['pmid']}"
    assert all(section.text for section in first.sections)


# --------------------------------------------------------------------------- real records

# The pikatech_Scicopia fixtures blank out the PMID of two articles on purpose.
EXPECTED_ERRORS = {"pikatech_Scicopia/pubmed.xml": 2, "pikatech_Scicopia/pubmed_old_tests.xml": 2}


def _xml_files() -> list[tuple[Path, int]]:
    if not (PUBMED_DATA / "MANIFEST.tsv").is_file():
        pytest.skip(f"real PubMed records not found under {PUBMED_DATA}")
    with (PUBMED_DATA / "MANIFEST.tsv").open(newline="") as manifest:
        rows = list(csv.DictReader(manifest, delimiter="\t"))
    return [
        (PUBMED_DATA / row["file"], int(row["records"]))
        for row in rows
        if "PubMed XML" in row["format"] or "MEDLINE XML" in row["format"]
    ]


def _first_articles(data: bytes, limit: int) -> list[bytes]:
    """The file's first articles, each serialized alone as the object store would hold it."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    articles: list[bytes] = []
    for _, element in etree.iterparse(
        io.BytesIO(data), tag=ARTICLE_TAGS, resolve_entities=False, load_dtd=False
    ):
        parent = element.getparent()
        if (
            element.tag == "MedlineCitation"
            and parent is not None
            and parent.tag == "PubmedArticle"
        ):
            continue
        articles.append(etree.tostring(element))
        if len(articles) == limit:
            break
    return articles


@pytest.fixture(scope="module")
def real_documents() -> dict[str, Document]:
    documents: dict[str, Document] = {}
    total = 0
    for path, records in _xml_files():
        relative = str(path.relative_to(PUBMED_DATA))
        items = list(iter_pubmed_xml(path.read_bytes()))
        errors = _errors(items)
        assert len(errors) == EXPECTED_ERRORS.get(relative, 0), (relative, errors[:3])
        assert all(error.stage == "normalize" and "PMID" in error.message for error in errors)
        assert len(items) == records, relative
        for item in items:
            if isinstance(item, Document):
                documents.setdefault(item.source_id, item)
                total += 1
    assert total == 5519  # every article of the 331 XML files but the 4 blanked fixtures
    return documents


def test_every_real_xml_article_normalizes(real_documents: dict[str, Document]) -> None:
    assert len(real_documents) > 4000
    for document in real_documents.values():
        assert document.uid == f"pubmed:{document.source_id}"
        assert document.language is None or (
            len(document.language) == 3 and document.language.islower()
        )
        assert document.published_at is None or len(document.published_at) == 10
        assert all(section.text for section in document.sections)


def test_an_article_alone_normalizes_like_the_stream() -> None:
    # The engine's path (one raw object per record) on each file's first articles.
    compared = 0
    for path, _ in _xml_files():
        data = path.read_bytes()
        articles = _first_articles(data, limit=15)
        streamed = list(islice(iter_pubmed_xml(data), len(articles)))
        for article, expected in zip(articles, streamed, strict=True):
            if isinstance(expected, DocumentError):
                assert refused(article).stage == expected.stage
            else:
                assert normalize(article, expected_source_id=expected.source_id) == expected
                compared += 1
    assert compared > 1000


def test_real_record_spot_checks(real_documents: dict[str, Document]) -> None:
    structured = real_documents["21813367"]
    assert structured.title.startswith("Retrospective exposure estimation and predicted")
    assert [section.label for section in structured.sections] == [
        "BACKGROUND",
        "OBJECTIVES",
        "METHODS",
        "RESULTS",
        "CONCLUSIONS",
    ]
    assert structured.authors[:2] == ("Shin HM", "Vieira VM")
    assert (structured.doi, structured.pmc_id) == ("10.1289/ehp.1103729", "PMC3261988")
    assert structured.published_at == "2011-12-01"
    assert "Caprylates" in structured.mesh_terms

    long_abstract = real_documents["27454254"]
    assert len(long_abstract.abstract) == 33884

    book = real_documents["26468569"]
    assert book.title.startswith("Application of Modern Toxicology Approaches")
    assert book.authors[1] == "Committee on Toxicology"
    assert book.published_at == "2015-09-01"

    translated = real_documents["11885531"]
    assert translated.title.startswith("[")
    assert "vernacular_title" in translated.extra


def test_nul_characters_are_dropped_so_the_store_accepts_the_chunks() -> None:
    # PostgreSQL text and jsonb refuse U+0000: one such string would fail a whole store batch.
    record = {
        "pmid": "5",
        "title": "Nul\u0000 title",
        "abstract": [{"label": "METHODS\u0000", "text": "We did\u0000 it."}],
        "doi": "10.1/x\u0000y",
        "extra_field": ["a\u0000b"],
    }
    doc = normalize_record(orjson.dumps(record), source="pubmed")
    assert b"\\u0000" not in orjson.dumps(doc.to_row())
    assert doc.title == "Nul title"
    assert doc.sections[0].text == "We did it."

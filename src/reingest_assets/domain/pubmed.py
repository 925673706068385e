"""PubMed records (the original service's JSON, PubMed/MEDLINE XML) -> ``Document``.

Everything here runs in worker processes on hostile input: module-level functions, no state,
XML parsed without entities, DTDs or network, and every failure a one-line ``DocumentError``
that says what to fix.
"""

from __future__ import annotations

import datetime
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from typing import Any, Protocol

import orjson
import zstandard
from lxml import etree

from reingest_assets.domain.document import Document, Section
from reingest_assets.domain.failures import DocumentError
from reingest_assets.domain.ids import document_uid
from reingest_assets.domain.limits import DEFAULT_LIMITS, DocumentLimits
from reingest_assets.domain.raw import GZIP_MAGIC, ZSTD_MAGIC, decode_raw

ARTICLE_TAGS = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation")

_ENTITY_DECLARATION = b"<!ENTITY"
_LEADING_SPACE = re.compile(rb"(?:\xef\xbb\xbf)?\s*")
# Identifiers and dates are ASCII digits: \d would also take other scripts' digits (a PMID in
# Arabic-Indic digits is not the PubMed id of anything).
_DIGITS = re.compile(r"[0-9]+")
_NUMERIC_DATE = re.compile(
    r"\s*([0-9]{4})(?:[-/.]([0-9]{1,2})(?![0-9])(?:[-/.]([0-9]{1,2})(?![0-9]))?)?"
)
_DATE_TOKEN = re.compile(r"[^\W\d_]+|[0-9]+")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_HEADING_COLONS = (":", "\uff1a")  # ASCII and full-width (Chinese abstracts)
_MAX_HEADING_CHARS = 60
# NlmCategory / Label values that mean "this part has no label".
_NO_LABEL = ("UNASSIGNED", "UNLABELLED")

# First month of a month name or season; seasons as PubMed writes them in <Season>/MedlineDate.
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan",),
            ("feb",),
            ("mar", "spr"),
            ("apr",),
            ("may",),
            ("jun", "sum"),
            ("jul",),
            ("aug",),
            ("sep", "fal", "aut"),
            ("oct",),
            ("nov",),
            ("dec", "win"),
        ),
        start=1,
    )
    for name in names
}
# What JSON records write instead of PubMed's 3-letter codes.
_LANGUAGE_ALIASES = {
    "en": "eng",
    "english": "eng",
    "fr": "fre",
    "french": "fre",
    "de": "ger",
    "german": "ger",
    "es": "spa",
    "spanish": "spa",
    "it": "ita",
    "italian": "ita",
    "pt": "por",
    "portuguese": "por",
    "ru": "rus",
    "russian": "rus",
    "zh": "chi",
    "chinese": "chi",
    "ja": "jpn",
    "japanese": "jpn",
}


# --------------------------------------------------------------------------- entry points


def normalize_record(
    data: bytes,
    *,
    source: str,
    expected_source_id: str | None = None,
    limits: DocumentLimits = DEFAULT_LIMITS,
) -> Document:
    """One raw object (maybe gzip/zstd) holding one record, JSON or PubMed XML -> Document.

    Raises ``DocumentError`` with stage ``parse`` (bytes, JSON or XML unreadable, over the size
    limits) or ``normalize`` (no usable PMID, wrong field types, not the record the registry
    expects, a field over its limit).
    """
    decoded = decode_raw(
        data, max_bytes=limits.max_record_bytes, max_members=limits.max_gzip_members
    )
    document = _normalize_bytes(_as_utf8(decoded), source, envelope_allowed=True)
    limits.check_document(document)
    if expected_source_id is not None and document.source_id != expected_source_id:
        raise DocumentError(
            "normalize",
            f"record holds PMID {document.source_id}, but the registry expects "
            f"{expected_source_id}: the object at this key is another record; re-fetch it",
        )
    return document


def iter_pubmed_xml(data: bytes, *, source: str = "pubmed") -> Iterator[Document | DocumentError]:
    """A whole PubmedArticleSet / MedlineCitationSet / baseline file (maybe gzip or zstd) ->
    one Document per article, streamed; a bad article yields its DocumentError and the walk goes
    on. Malformed XML ends the walk with a final DocumentError. DeleteCitation blocks are
    skipped."""
    articles = etree.iterparse(
        _EntityGuard(_open_stream(data)),
        events=("end",),
        tag=(*ARTICLE_TAGS, "DeleteCitation"),
        encoding="utf-8",
        **_SAFE_PARSER_OPTIONS,
    )
    index = 0
    try:
        for _event, element in articles:
            parent = element.getparent()
            if (
                element.tag == "MedlineCitation"
                and parent is not None
                and parent.tag == "PubmedArticle"
            ):
                continue  # handled with its PubmedArticle
            if element.tag != "DeleteCitation":
                index += 1
                try:
                    yield _document_from_article(element, source)
                except DocumentError as exc:
                    yield DocumentError(exc.stage, f"article #{index}: {exc.message}")
            # Free what was processed: the tree would otherwise grow with the file.
            element.clear(keep_tail=True)
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        yield DocumentError("parse", f"malformed XML after article #{index}: {_one_line(exc)}")
    except DocumentError as exc:
        yield exc
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        yield DocumentError("parse", f"corrupt compressed stream after article #{index}: {exc}")


# --------------------------------------------------------------------------- format detection


def _normalize_bytes(data: bytes, source: str, *, envelope_allowed: bool) -> Document:
    start = _LEADING_SPACE.match(data)
    offset = start.end() if start else 0
    first = data[offset : offset + 1]
    if first in (b"{", b"["):
        record = _load_json(data[offset:] if offset else data)
        if not isinstance(record, dict):
            raise DocumentError(
                "normalize",
                f"JSON holds a {type(record).__name__}, expected one record object: "
                "store one record per object",
            )
        if "payload" in record:
            if not envelope_allowed:
                raise DocumentError(
                    "normalize", "envelope inside an envelope: 'payload' must be the record itself"
                )
            return _document_from_envelope(record, source)
        return _document_from_json(record, source)
    if first == b"<":
        return _document_from_article(_single_article(_parse_xml(data)), source)
    if not first:
        raise DocumentError("parse", "record is empty: re-fetch the object")
    raise DocumentError(
        "parse",
        f"record is neither JSON nor XML (starts with {data[offset : offset + 16]!r}): "
        "expected a JSON record or PubMed XML, maybe gzip/zstd compressed",
    )


def _as_utf8(data: bytes) -> bytes:
    """UTF-16 (which XML allows, behind its byte order mark) as UTF-8: everything after this
    reads UTF-8 only, so no other encoding can hide an entity declaration from its scan."""
    if data[:2] not in _UTF16_BOMS:
        return data
    try:
        return data.decode("utf-16").encode("utf-8")
    except UnicodeError as exc:
        raise DocumentError(
            "parse", f"invalid UTF-16 after its byte order mark: {exc}; re-encode the record"
        ) from None


def _utf8_error(data: bytes) -> DocumentError | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return DocumentError(
            "parse",
            f"invalid UTF-8 at byte {exc.start} (line {line}): "
            f"{data[exc.start : exc.start + 4]!r}; re-encode the record as UTF-8",
        )
    return None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------- JSON


def _load_json(data: bytes) -> Any:
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        utf8_error = _utf8_error(data)
        if utf8_error is not None:
            raise utf8_error from None
        raise DocumentError(
            "parse",
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            "fix the record's JSON",
        ) from None
    # JSON can carry NUL only as \u0000; PostgreSQL text and jsonb refuse it, so one such string
    # would fail a whole store batch. It means nothing in a record: drop it.
    return _without_nul(record) if b"\\u0000" in data else record


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _document_from_envelope(envelope: dict[str, Any], source: str) -> Document:
    payload = envelope["payload"]
    envelope_pmid = _pmid(envelope.get("pmid")) if envelope.get("pmid") is not None else None
    if isinstance(payload, str):
        document = _normalize_bytes(payload.encode("utf-8"), source, envelope_allowed=False)
    elif isinstance(payload, dict):
        if "payload" in payload:
            raise DocumentError(
                "normalize", "envelope inside an envelope: 'payload' must be the record itself"
            )
        if envelope_pmid is not None and _pmid_value(payload) is None:
            payload = {**payload, "pmid": envelope_pmid}
        document = _document_from_json(payload, source)
    else:
        raise DocumentError(
            "normalize",
            f"envelope 'payload' is a {_type_name(payload)}: "
            "expected the record as an object or a JSON/XML string",
        )
    if envelope_pmid is not None and document.source_id != envelope_pmid:
        raise DocumentError(
            "normalize",
            f"envelope says PMID {envelope_pmid} but its payload holds PMID "
            f"{document.source_id}: fix the envelope or the payload",
        )
    return document


def _document_from_json(record: dict[str, Any], source: str) -> Document:
    raw_pmid = _pmid_value(record)
    if raw_pmid is None:
        raise DocumentError(
            "normalize", "record has no PMID: add a numeric 'pmid' field (the PubMed id)"
        )
    pmid = _pmid(raw_pmid)
    publication_types = tuple(_json_strings(record, "publication_types"))
    return _build_document(
        source=source,
        pmid=pmid,
        title=_json_str(record, "title") or "",
        sections=_json_sections(record.get("abstract")),
        authors=tuple(_json_authors(record.get("authors"))),
        journal=_json_journal(record.get("journal")),
        mesh_terms=tuple(_json_strings(record, "mesh_terms", ("descriptor", "name", "term"))),
        doi=_doi(_json_str(record, "doi")),
        pmc_id=_pmc_id(_json_str(record, "pmc_id", allow_int=True)),
        published_at=_date_from_text(_json_str(record, "publication_date", allow_int=True)),
        language=_language(_json_language(record.get("language"))),
        publication_types=publication_types,
        retracted=record.get("retracted") is True,
        extra={},
    )


def _pmid_value(record: dict[str, Any]) -> Any:
    value = record.get("pmid")
    return record.get("PMID") if value is None else value


def _pmid(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS.fullmatch(text):
            return text
        raise DocumentError(
            "normalize",
            f"PMID {_short(value)} is not numeric: 'pmid' must be the PubMed id's digits",
        )
    raise DocumentError(
        "normalize",
        f"PMID is a {_type_name(value)} ({_short(value)}): 'pmid' must be a number or a "
        "string of digits",
    )


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _wrong_type(field: str, value: Any, expected: str) -> DocumentError:
    return DocumentError(
        "normalize",
        f"field '{field}' is a {_type_name(value)}, expected {expected}: fix the record's "
        f"'{field}'",
    )


def _json_str(record: dict[str, Any], field: str, *, allow_int: bool = False) -> str | None:
    value = record.get(field)
    if value is None or isinstance(value, str):
        return _collapse(value) if value else None
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _wrong_type(field, value, "a string")


def _json_strings(
    record: dict[str, Any], field: str, object_keys: tuple[str, ...] = ()
) -> Iterator[str]:
    values = record.get(field)
    if values is None:
        return
    if not isinstance(values, list):
        raise _wrong_type(field, values, "a list of strings")
    for value in values:
        if isinstance(value, dict) and object_keys:
            value = next((value[k] for k in object_keys if isinstance(value.get(k), str)), None)
        if not isinstance(value, str):
            raise _wrong_type(f"{field}[]", value, "a string")
        if text := _collapse(value):
            yield text


def _json_sections(abstract: Any) -> tuple[Section, ...]:
    if abstract is None:
        return ()
    if isinstance(abstract, str):
        return _merge_unlabelled([(None, abstract)])
    if isinstance(abstract, dict):
        items: list[tuple[Any, Any]] = list(abstract.items())
    elif isinstance(abstract, list):
        items = [_json_section(part) for part in abstract]
    else:
        raise _wrong_type(
            "abstract", abstract, "a string, a list of sections or a {label: text} object"
        )
    for label, text in items:
        if not isinstance(text, str) or not (label is None or isinstance(label, str)):
            raise _wrong_type("abstract", text, "sections with string labels and texts")
    return _merge_unlabelled([(_label(label), text) for label, text in items])


def _json_section(part: Any) -> tuple[Any, Any]:
    if isinstance(part, str):
        return None, part
    if isinstance(part, dict):
        label = next((part[k] for k in ("label", "Label", "nlm_category") if part.get(k)), None)
        return label, part.get("text", part.get("Text"))
    raise _wrong_type("abstract[]", part, "a string or a {label, text} object")


def _json_authors(authors: Any) -> Iterator[str]:
    if authors is None:
        return
    if not isinstance(authors, list):
        raise _wrong_type("authors", authors, "a list of names or author objects")
    for author in authors:
        if isinstance(author, str):
            name = _collapse(author)
        elif isinstance(author, dict):
            name = _json_author(author)
        else:
            raise _wrong_type("authors[]", author, "a name or an author object")
        if name:
            yield name


def _json_author(author: dict[str, Any]) -> str:
    fields = {}
    for key in ("name", "collective_name", "last_name", "initials", "fore_name"):
        value = author.get(key)
        if value is not None and not isinstance(value, str):
            raise _wrong_type(f"authors[].{key}", value, "a string")
        fields[key] = _collapse(value) if value else ""
    if fields["name"] or fields["collective_name"]:
        return fields["name"] or fields["collective_name"]
    return _author_name(fields["last_name"], fields["initials"], fields["fore_name"])


def _json_journal(journal: Any) -> str | None:
    if isinstance(journal, dict):
        journal = journal.get("title", journal.get("name"))
    if journal is None or isinstance(journal, str):
        return _collapse(journal) or None if journal else None
    raise _wrong_type("journal", journal, "a string or a {title} object")


def _json_language(language: Any) -> str | None:
    if isinstance(language, list):
        language = language[0] if language else None
    if language is None or isinstance(language, str):
        return language
    raise _wrong_type("language", language, "a string")


# --------------------------------------------------------------------------- XML


_SAFE_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def _entity_declaration_error() -> DocumentError:
    return DocumentError(
        "parse",
        "XML declares entities (<!ENTITY in its DOCTYPE), refused as an XXE / entity-expansion "
        "risk: PubMed XML declares none, send the record without an internal DTD subset",
    )


def _parse_xml(data: bytes) -> etree._Element:
    # Entity declarations can only sit in the DOCTYPE; refusing the bytes outright is cheaper
    # and safer than trusting any parser limit. The parser is forced to UTF-8 so no other
    # encoding can hide the declaration from this scan.
    if _ENTITY_DECLARATION in data:
        raise _entity_declaration_error()
    parser = etree.XMLParser(encoding="utf-8", **_SAFE_PARSER_OPTIONS)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        utf8_error = _utf8_error(data)
        if utf8_error is not None:
            raise utf8_error from None
        line, column = exc.position
        raise DocumentError(
            "parse",
            f"malformed XML at line {line}, column {column}: {_one_line(exc)}; "
            "fix or re-fetch the record",
        ) from None


def _single_article(root: etree._Element) -> etree._Element:
    if root.tag in ARTICLE_TAGS:
        return root
    articles = [child for child in root if child.tag in ARTICLE_TAGS]
    if len(articles) != 1:
        raise DocumentError(
            "normalize",
            f"<{root.tag}> holds {len(articles)} articles; a raw object must hold exactly one "
            "PubmedArticle (use iter_pubmed_xml for whole files)",
        )
    return articles[0]


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _EntityGuard:
    """A read()-able that refuses the stream as soon as an entity declaration passes."""

    def __init__(self, stream: _Readable) -> None:
        self._stream = stream
        self._carry = b""  # the end of the last chunk: a declaration may straddle two reads

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        if _ENTITY_DECLARATION in self._carry + chunk:
            raise _entity_declaration_error()
        self._carry = chunk[-(len(_ENTITY_DECLARATION) - 1) :]
        return chunk


def _open_stream(data: bytes) -> _Readable:
    if data[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=io.BytesIO(data))
    if data[:4] == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    return io.BytesIO(data)


def _document_from_article(article: etree._Element, source: str) -> Document:
    if article.tag == "PubmedBookArticle":
        return _document_from_book(article, source)
    if article.tag == "PubmedArticle":
        parts = _first_children(article)
        if "MedlineCitation" not in parts:
            raise DocumentError(
                "normalize", "PubmedArticle has no MedlineCitation: re-fetch the record"
            )
        citation = parts["MedlineCitation"]
        pubmed_data = parts.get("PubmedData")
        id_list = pubmed_data.find("ArticleIdList") if pubmed_data is not None else None
    else:
        citation, id_list = article, None
    fields = _first_children(citation)
    pmid = _xml_pmid(citation.tag, fields.get("PMID"))
    article_element = fields.get("Article")
    article_fields = _first_children(article_element) if article_element is not None else {}
    title = _text(article_fields.get("ArticleTitle"))
    vernacular_title = _text(article_fields.get("VernacularTitle"))
    extra: dict[str, Any] = {}
    if title and vernacular_title and vernacular_title != title:
        extra["vernacular_title"] = vernacular_title
    if "OtherAbstract" in fields:
        other_abstracts = [
            {"type": other.get("Type"), "language": other.get("Language"), "text": text}
            for other in citation.iterchildren("OtherAbstract")
            if (text := "\n".join(section.text for section in _xml_sections(other)))
        ]
        if other_abstracts:
            extra["other_abstracts"] = other_abstracts
    doi, pmc_id = _xml_ids(id_list)
    if doi is None and article_element is not None:
        doi = _elocation_doi(article_element)
    if pmc_id is None and "OtherID" in fields:
        pmc_id = next(
            (
                _pmc_id(other.text)
                for other in citation.iterchildren("OtherID")
                if (other.text or "").strip().upper().startswith("PMC")
            ),
            None,
        )
    journal = article_fields.get("Journal")
    journal_title = _text(journal.find("Title")) if journal is not None else ""
    mesh_list = fields.get("MeshHeadingList")
    type_list = article_fields.get("PublicationTypeList")
    corrections = fields.get("CommentsCorrectionsList")
    return _build_document(
        source=source,
        pmid=pmid,
        title=title or vernacular_title,
        sections=_xml_sections(article_fields.get("Abstract")),
        authors=tuple(_xml_authors(article_fields.get("AuthorList"))),
        journal=journal_title or _text(citation.find("MedlineJournalInfo/MedlineTA")) or None,
        mesh_terms=tuple(_texts(mesh_list.iter("DescriptorName"))) if mesh_list is not None else (),
        doi=doi,
        pmc_id=pmc_id,
        published_at=(
            _xml_date(journal.find("JournalIssue/PubDate")) if journal is not None else None
        )
        or _xml_date(article_fields.get("ArticleDate")),
        language=_language(_text(article_fields.get("Language"))),
        publication_types=tuple(_texts(type_list.iterchildren("PublicationType")))
        if type_list is not None
        else (),
        retracted=corrections is not None
        and any(
            correction.get("RefType") == "RetractionIn"
            for correction in corrections.iterchildren("CommentsCorrections")
        ),
        extra=extra,
    )


def _first_children(element: etree._Element) -> dict[str, etree._Element]:
    """Each child tag's first element: one pass over the children instead of a find() per
    field."""
    children: dict[str, etree._Element] = {}
    for child in element:
        if child.tag not in children:
            children[child.tag] = child
    return children


def _document_from_book(article: etree._Element, source: str) -> Document:
    book_document = article.find("BookDocument")
    if book_document is None:
        raise DocumentError(
            "normalize", "PubmedBookArticle has no BookDocument: re-fetch the record"
        )
    pmid = _xml_pmid(book_document.tag, book_document.find("PMID"))
    book = book_document.find("Book")
    if book is None:
        book = etree.Element("Book")
    book_title = _text(book.find("BookTitle"))
    chapter_title = _text(book_document.find("ArticleTitle"))
    author_lists = [
        author_list
        for author_list in (
            *book_document.iterchildren("AuthorList"),
            *book.iterchildren("AuthorList"),
        )
        if author_list.get("Type", "authors") == "authors"
    ]
    doi, pmc_id = _xml_ids(book_document.find("ArticleIdList"))
    book_data_doi, book_data_pmc_id = _xml_ids(article.find("PubmedBookData/ArticleIdList"))
    return _build_document(
        source=source,
        pmid=pmid,
        title=chapter_title or book_title,
        sections=_xml_sections(book_document.find("Abstract")),
        authors=tuple(_xml_authors(author_lists[0] if author_lists else None)),
        # A chapter's container is its book; a whole book has none.
        journal=book_title if chapter_title else None,
        mesh_terms=(),
        doi=doi or book_data_doi or _elocation_doi(book_document) or _elocation_doi(book),
        pmc_id=pmc_id or book_data_pmc_id,
        published_at=_xml_date(book.find("PubDate")),
        language=_language(_text(book_document.find("Language"))),
        publication_types=tuple(_texts(book_document.iterchildren("PublicationType"))),
        retracted=False,
        extra={},
    )


def _xml_pmid(parent_tag: str, pmid: etree._Element | None) -> str:
    text = _text(pmid)
    if not text:
        raise DocumentError(
            "normalize", f"<{parent_tag}> has no PMID: the record needs its <PMID> element"
        )
    return _pmid(text)


def _text(element: etree._Element | None) -> str:
    """The element's text with inline markup (<i>, <sup>, MathML...) dropped, whitespace
    collapsed."""
    if element is None:
        return ""
    if len(element):
        return _collapse("".join(element.itertext()))
    return _collapse(element.text)


def _texts(elements: Iterator[etree._Element]) -> Iterator[str]:
    for element in elements:
        if text := _text(element):
            yield text


def _collapse(text: str | None) -> str:
    return " ".join(text.split()) if text else ""


def _xml_sections(abstract: etree._Element | None) -> tuple[Section, ...]:
    if abstract is None:
        return ()
    parts = abstract.findall("AbstractText")
    if len(parts) == 1:
        label = _label(parts[0].get("Label") or parts[0].get("NlmCategory"))
        if label is None and (headed := _split_pseudo_headings(parts[0])):
            return headed
    return _merge_unlabelled(
        [(_label(part.get("Label") or part.get("NlmCategory")), _text(part)) for part in parts]
    )


def _label(label: str | None) -> str | None:
    label = _collapse(label)
    return None if not label or label.upper() in _NO_LABEL else label


def _merge_unlabelled(parts: list[tuple[str | None, str]]) -> tuple[Section, ...]:
    """Sections with text; an abstract with no label at all is one unstructured section."""
    sections = [
        # "<AbstractText Label="METHODS">: We ..." happens: the colon belongs to the label.
        Section(label, text.removeprefix(": ") if label else text)
        for label, raw in parts
        if (text := _collapse(raw))
    ]
    if len(sections) > 1 and all(section.label is None for section in sections):
        return (Section(None, " ".join(section.text for section in sections)),)
    return tuple(sections)


def _split_pseudo_headings(abstract_text: etree._Element) -> tuple[Section, ...]:
    """``<b>Objective:</b> ... <b>Methods:</b> ...`` in one unlabelled AbstractText -> labelled
    sections; () when the text does not start with such a heading or has fewer than two."""
    if not len(abstract_text) or (abstract_text.text or "").strip():
        return ()
    sections: list[tuple[str, list[str]]] = []
    for child in abstract_text:
        heading = _pseudo_heading(child)
        if heading is not None:
            label, rest = heading
            sections.append((label, [rest]))
        elif not sections:
            return ()
        else:
            sections[-1][1].append("".join(child.itertext()) + (child.tail or ""))
    if len(sections) < 2:
        return ()
    return tuple(
        Section(label, text) for label, texts in sections if (text := _collapse("".join(texts)))
    )


def _pseudo_heading(element: etree._Element) -> tuple[str, str] | None:
    """(label, text after it) when ``element`` is a bold heading ending with a colon."""
    if element.tag != "b":
        return None
    heading = _text(element)
    tail = element.tail or ""
    stripped_tail = tail.lstrip()
    if stripped_tail.startswith(_HEADING_COLONS):
        tail = stripped_tail[1:]
    elif heading.endswith(_HEADING_COLONS):
        heading = heading[:-1].rstrip()
    else:
        return None
    if not heading or len(heading) > _MAX_HEADING_CHARS:
        return None
    return heading.upper(), tail


def _xml_authors(author_list: etree._Element | None) -> Iterator[str]:
    if author_list is None:
        return
    for author in author_list.iterchildren("Author"):
        if author.get("ValidYN") == "N":
            continue  # a misspelling NLM keeps next to the valid entry
        # Name parts hold no markup: their text is all there is.
        parts = {child.tag: child.text for child in author}
        name = _collapse(parts.get("CollectiveName")) or _author_name(
            _collapse(parts.get("LastName")),
            _collapse(parts.get("Initials")),
            _collapse(parts.get("ForeName")),
        )
        if name:
            yield name


def _author_name(last_name: str, initials: str, fore_name: str) -> str:
    """``Last FM``; initials derived from the fore name when the record has none."""
    if not initials and fore_name:
        initials = "".join(part[0] for part in re.split(r"[\s\-.]+", fore_name) if part)
    if last_name:
        return f"{last_name} {initials}" if initials else last_name
    return fore_name


def _xml_ids(id_list: etree._Element | None) -> tuple[str | None, str | None]:
    doi = pmc_id = None
    if id_list is not None:
        for article_id in id_list.iterchildren("ArticleId"):
            id_type = article_id.get("IdType")
            if id_type == "doi" and doi is None:
                doi = _doi(article_id.text)
            elif id_type == "pmc" and pmc_id is None:
                pmc_id = _pmc_id(article_id.text)
    return doi, pmc_id


def _elocation_doi(parent: etree._Element) -> str | None:
    for location in parent.iterchildren("ELocationID"):
        if location.get("EIdType") == "doi" and location.get("ValidYN") != "N":
            return _doi(location.text)
    return None


def _doi(doi: str | None) -> str | None:
    return _DOI_PREFIX.sub("", doi.strip()) or None if doi else None


def _pmc_id(pmc_id: str | None) -> str | None:
    if not pmc_id or not (text := pmc_id.strip()):
        return None
    return text.upper() if text.upper().startswith("PMC") else f"PMC{text}"


def _xml_date(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    parts = {child.tag: child.text for child in element}
    year = parts.get("Year")
    if year:
        return _iso_date(year, parts.get("Month") or parts.get("Season"), parts.get("Day"))
    return _date_from_text(parts.get("MedlineDate"))


# --------------------------------------------------------------------------- shared rules


def _date_from_text(text: str | None) -> str | None:
    """``2021-03-04``, ``2021 Mar``, ``1998 Dec-1999 Jan``, ``2000 Spring``, ``Winter 2001``,
    ``2021`` -> the first day they name, ISO."""
    if not text:
        return None
    numeric = _NUMERIC_DATE.match(text)
    if numeric and (numeric.group(2) or not _DATE_TOKEN.search(text, numeric.end(1))):
        return _iso_date(numeric.group(1), numeric.group(2), numeric.group(3))
    tokens = _DATE_TOKEN.findall(text)
    year = next((token for token in tokens if len(token) == 4 and token.isdigit()), None)
    if year is None:
        return None
    for index, token in enumerate(tokens):
        if token[:3].lower() in _MONTHS:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            day = following if following and len(following) <= 2 else None
            return _iso_date(year, token, day)
    return _iso_date(year, None, None)


def _iso_date(year: str, month: str | None, day: str | None) -> str | None:
    """The first day the parts name. A missing (or all-zero) part widens the date; a year of
    zeros means the record has no date (None); a month or day that does not exist is refused:
    never another date than the record's."""
    year = year.strip()
    if len(year) != 4 or not year.isascii() or not year.isdigit():
        return None
    if int(year) == 0:
        return None
    day = day.strip() if day else ""
    month_number = _month_number(month)
    if month_number is None:
        raise _not_a_date(year, month, day, f"month {month.strip() if month else ''}")
    day_number = int(day) if day.isascii() and day.isdigit() and int(day) else 1
    try:
        return datetime.date(int(year), month_number, day_number).isoformat()
    except ValueError:
        raise _not_a_date(year, month, day, f"day {day} of month {month_number}") from None


def _month_number(month: str | None) -> int | None:
    """1..12, 1 when there is none (or it is all zeros), None for one that does not exist."""
    month = month.strip() if month else ""
    if not month or month.strip("0") == "":
        return 1
    if month.isdigit():
        number = int(month) if month.isascii() else 0
        return number if 1 <= number <= 12 else None
    return _MONTHS.get(month[:3].lower())


def _not_a_date(year: str, month: str | None, day: str, what: str) -> DocumentError:
    parts = "-".join(p.strip() for p in (year, month, day) if p and p.strip())
    return DocumentError(
        "normalize",
        f"publication date {parts} is not a real date ({what} does not exist): fix the "
        "record's date, or leave it out",
    )


def _language(language: str | None) -> str | None:
    if not language:
        return None
    code = language.strip().lower()
    if len(code) == 3 and code.isalpha():
        return code
    return _LANGUAGE_ALIASES.get(code)


def _build_document(
    *,
    source: str,
    pmid: str,
    title: str,
    sections: tuple[Section, ...],
    authors: tuple[str, ...],
    journal: str | None,
    mesh_terms: tuple[str, ...],
    doi: str | None,
    pmc_id: str | None,
    published_at: str | None,
    language: str | None,
    publication_types: tuple[str, ...],
    retracted: bool,
    extra: dict[str, Any],
) -> Document:
    if retracted or "Retracted Publication" in publication_types:
        extra = {**extra, "retracted": True}
    return Document(
        uid=document_uid(source, pmid),
        source=source,
        source_id=pmid,
        title=title,
        sections=sections,
        authors=authors,
        journal=journal,
        mesh_terms=mesh_terms,
        doi=doi,
        pmc_id=pmc_id,
        published_at=published_at,
        language=language,
        publication_types=publication_types,
        extra=extra,
    )

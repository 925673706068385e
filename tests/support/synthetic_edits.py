"""Edits of synthetic records, for the tests of change detection: the same key and ingest date
with new content (one sentence replaced, the abstract shrunk, a malformed record repaired)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from typing import Any

import orjson
import zstandard
from lxml import etree

from reingest_assets.synthetic import (
    _LABEL_CATEGORY,
    _MONTHS,
    SyntheticRecord,
    _content,
    _encode,
    _Pools,
    _pools,
    _record,
)


def edit_record(rec: SyntheticRecord, *, shrink: bool = False, seed: int = 0) -> SyntheticRecord:
    """A changed version of ``rec`` under the same key and ingest date, with a new content hash.

    Default: one sentence of the abstract replaced (the title, if there is no abstract).
    ``shrink=True``: the abstract cut to 20-40% of its sentences (at least one), so a long
    document loses chunks. A malformed record comes back repaired (well-formed, same title and
    date): the upstream source was fixed.
    """
    rng = random.Random(f"{seed}:{rec.uid}:{shrink}")
    pools = _pools()
    fmt = _format_of(rec.key)
    if rec.malformed is not None:
        if shrink:
            raise ValueError(f"{rec.uid} is malformed ({rec.malformed}); nothing to shrink")
        content = _content(rng, pools, rec.source_id, title=rec.title)
        content["publication_date"] = rec.published_at
    else:
        content = _decode(rec.data, fmt)
        abstract = content["abstract"]
        if shrink:
            if not abstract:
                raise ValueError(f"{rec.uid} has no abstract to shrink")
            content["abstract"] = _shrunk(abstract, rng)
        elif abstract:
            content["abstract"] = _edited(abstract, rng, pools)
        else:
            content["title"] = _other(pools.titles, content["title"], rng)
    data = _encode(
        content,
        fmt,
        source=rec.source,
        ingest_date=rec.ingest_date,
        zstd=zstandard.ZstdCompressor(level=1),
    )
    return _record(
        content=content,
        source=rec.source,
        ingest_date=rec.ingest_date,
        fmt=fmt,
        data=data,
        malformed=None,
    )


def _sentences(text: str) -> list[str]:
    return [s if s.endswith(".") else s + "." for s in text.split(". ")]


def _other(pool: Sequence[str], current: str, rng: random.Random) -> str:
    while True:
        candidate = rng.choice(pool)
        if candidate != current:
            return candidate


def _edited(
    abstract: str | list[dict[str, str]], rng: random.Random, pools: _Pools
) -> str | list[dict[str, str]]:
    if isinstance(abstract, str):
        sentences = _sentences(abstract)
        i = rng.randrange(len(sentences))
        sentences[i] = _other(pools.sentences["RESULTS"], sentences[i], rng)
        return " ".join(sentences)
    sections = [dict(s) for s in abstract]
    section = rng.choice(sections)
    sentences = _sentences(section["text"])
    i = rng.randrange(len(sentences))
    category = _LABEL_CATEGORY.get(section["label"], "RESULTS")
    sentences[i] = _other(pools.sentences[category], sentences[i], rng)
    section["text"] = " ".join(sentences)
    return sections


def _shrunk(abstract: str | list[dict[str, str]], rng: random.Random) -> str | list[dict[str, str]]:
    sections = (
        [{"label": "", "text": abstract}]
        if isinstance(abstract, str)
        else [dict(s) for s in abstract]
    )
    per_section = [_sentences(s["text"]) for s in sections]
    total = sum(len(p) for p in per_section)
    keep = max(1, min(total - 1, round(total * rng.uniform(0.2, 0.4))))
    kept: list[dict[str, str]] = []
    for section, sentences in zip(sections, per_section, strict=True):
        if keep <= 0:
            break
        kept.append(section | {"text": " ".join(sentences[:keep])})
        keep -= len(sentences)
    return kept[0]["text"] if isinstance(abstract, str) else kept


def _decode_xml(data: bytes) -> dict[str, Any]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    article = etree.fromstring(data, parser).find("PubmedArticle")
    citation = article.find("MedlineCitation")

    def text(path: str) -> str:
        return "".join(citation.find(path).itertext())

    sections = citation.findall("Article/Abstract/AbstractText")
    abstract: str | list[dict[str, str]] = ""
    if len(sections) == 1 and sections[0].get("Label") is None:
        abstract = "".join(sections[0].itertext())
    elif sections:
        abstract = [{"label": s.get("Label"), "text": "".join(s.itertext())} for s in sections]
    ids = {a.get("IdType"): a.text for a in article.iterfind("PubmedData/ArticleIdList/ArticleId")}
    month = _MONTHS.index(text("Article/Journal/JournalIssue/PubDate/Month")) + 1
    return {
        "pmid": text("PMID"),
        "title": text("Article/ArticleTitle"),
        "abstract": abstract,
        "authors": [
            f"{a.findtext('LastName')} {a.findtext('Initials')}"
            for a in citation.iterfind("Article/AuthorList/Author")
        ],
        "journal": text("Article/Journal/Title"),
        "mesh_terms": [
            d.text for d in citation.iterfind("MeshHeadingList/MeshHeading/DescriptorName")
        ],
        "doi": ids.get("doi"),
        "pmc_id": ids.get("pmc"),
        "publication_date": f"{text('Article/Journal/JournalIssue/PubDate/Year')}-{month:02d}-"
        f"{text('Article/Journal/JournalIssue/PubDate/Day')}",
        "language": text("Article/Language"),
    }


def _decode(data: bytes, fmt: str) -> dict[str, Any]:
    """The JSON-shaped content of a well-formed record (the inverse of ``_encode``)."""
    if fmt == "xml":
        return _decode_xml(data)
    if fmt == "json.gz":
        data = zlib.decompress(data, wbits=31)
    elif fmt == "json.zst":
        data = zstandard.ZstdDecompressor().decompress(data)
    content: dict[str, Any] = orjson.loads(data)
    return content["payload"] if fmt == "envelope.json" else content


def _format_of(key: str) -> str:
    filename = key.rsplit("/", 1)[1]
    return filename.split(".", 1)[1]

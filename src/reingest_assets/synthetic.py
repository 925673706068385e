"""A synthetic PubMed-like corpus for ``reingest demo`` and ``reingest bench``.

Records are raw objects as the registry points at them: the original service's JSON (plain, gzip,
zstd, or inside its fetch envelope) and PubMed XML, with a share of deliberately bad ones.
Shapes and lengths follow real PubMed (structured vs. unstructured abstracts, abstract lengths,
author and MeSH counts); the text is built from a small biomedical vocabulary so it tokenizes
like real prose. Generation is a single pass over precomputed pools (one random stream, low
compression levels) so a million records take seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import math
import random
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import orjson
import zstandard

from reingest_assets.domain.ids import document_uid

FORMATS = ("json", "json.gz", "envelope.json", "xml", "json.zst")
MALFORMED_KINDS = (
    "truncated_json",
    "invalid_utf8",
    "missing_pmid",
    "wrong_types",
    "truncated_gzip",
    "xml_external_entity",
)
FIRST_PMID = 30_000_000


@dataclass(frozen=True, slots=True)
class SyntheticRecord:
    source: str
    source_id: str
    uid: str
    title: str
    published_at: str | None
    ingest_date: str  # YYYY-MM-DD: the registry created_at/updated_at date
    key: str  # object key: raw/<source>/<ingest_date>/<source_id>.<format>
    data: bytes  # the raw object bytes as stored
    content_hash: str  # sha256 hex of ``data``, as the registry stores it
    malformed: str | None  # None, or which of MALFORMED_KINDS this record deliberately is


# --- vocabulary: package data (data/synthetic_vocabulary.json) ---------------------------------

_VOCABULARY: dict[str, Any] = orjson.loads(
    resources.files("reingest_assets").joinpath("data", "synthetic_vocabulary.json").read_bytes()
)
# Slot name -> phrases that fill {slot} in the templates.
_WORDS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _VOCABULARY["words"].items()}
# Abstract category -> sentence templates.
_TEMPLATES: dict[str, tuple[str, ...]] = {
    k: tuple(v) for k, v in _VOCABULARY["sentence_templates"].items()
}
_TITLE_TEMPLATES: tuple[str, ...] = tuple(_VOCABULARY["title_templates"])
_LAST_NAMES: tuple[str, ...] = tuple(_VOCABULARY["last_names"])
# A fore name per first initial: XML carries ForeName, JSON only "Last FM"; deriving one from
# the initials keeps XML -> JSON -> XML lossless.
_FORE_NAMES: dict[str, str] = _VOCABULARY["fore_names"]
_MESH: tuple[str, ...] = tuple(_VOCABULARY["mesh_terms"])
_JOURNALS: tuple[str, ...] = tuple(_VOCABULARY["journals"])


# NlmCategory of each label, and the label sets structured abstracts use (with weights).
_LABEL_CATEGORY = {
    "BACKGROUND": "BACKGROUND",
    "INTRODUCTION": "BACKGROUND",
    "OBJECTIVE": "OBJECTIVE",
    "METHODS": "METHODS",
    "MATERIALS AND METHODS": "METHODS",
    "RESULTS": "RESULTS",
    "CONCLUSIONS": "CONCLUSIONS",
    "CONCLUSION": "CONCLUSIONS",
}
_LAYOUTS = (
    ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"),
    ("INTRODUCTION", "MATERIALS AND METHODS", "RESULTS", "CONCLUSION"),
)
# Share of an abstract's sentences each category gets.
_CATEGORY_SHARE = {
    "BACKGROUND": 0.2,
    "OBJECTIVE": 0.1,
    "METHODS": 0.3,
    "RESULTS": 0.35,
    "CONCLUSIONS": 0.15,
}
_UNSTRUCTURED_FLOW = ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS")

_DOI_PREFIXES = ("1016", "1038", "1056", "1001", "1136", "1371", "1186", "1093", "1002", "3389")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LANGUAGES = ("eng",) * 33 + ("fre", "ger", "spa")

# Abstract length in words: log-normal around PubMed's median, capped; a rare conference-book
# sized one on top.
_MEDIAN_WORDS = 220
_WORDS_SIGMA = 0.45
_MIN_WORDS, _MAX_WORDS = 40, 1000
_VERY_LONG_RATE = 0.0005
_VERY_LONG_WORDS = (3500, 4500)
_STRUCTURED_SHARE, _UNSTRUCTURED_SHARE = 0.60, 0.35  # the rest: title only
_PMC_SHARE, _DOI_SHARE = 0.3, 0.9

# Pool sizes. Per record, generation only indexes into these pools (a handful of random()
# calls), which is what makes a million records cheap.
_POOL_SENTENCES = 1500  # per category
_POOL_RUNS = 512  # pre-joined runs of 1.._MAX_RUN sentences, per category and length
_MAX_RUN = 4
_POOL_SHAPES = 8192
_POOL_TITLES = 3000
_POOL_AUTHOR_LISTS = 4096
_POOL_MESH_LISTS = 4096


# --- pools ----------------------------------------------------------------------------------


def _capitalize(text: str) -> str:
    first_word = text.split(" ", 1)[0]
    if text[0].isascii() and first_word.islower():
        return text[0].upper() + text[1:]
    return text


class _Slots(dict[str, str]):
    """Template slot values, drawn only when a template asks for them (pool building is a
    start-up cost of every corpus)."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, name: str) -> str:
        rng = self.rng
        if name in _WORDS:
            value = rng.choice(_WORDS[name])
        elif name in _SECOND_SLOTS:  # another word of the same class
            value = rng.choice(_WORDS[_SECOND_SLOTS[name]])
        elif name in ("lo", "hi"):  # a confidence interval around the ratio
            ratio = float(self["hr"])
            value = (
                f"{ratio * (rng.uniform(0.6, 0.9) if name == 'lo' else rng.uniform(1.1, 1.6)):.2f}"
            )
        elif name == "y2":
            value = str(rng.randint(int(self["y1"]) + 1, 2024))
        else:
            value = _NUMBERS[name](rng)
        self[name] = value
        return value


_SECOND_SLOTS = {"outcome2": "outcome", "assay2": "assay", "process2": "process"}
_NUMBERS: dict[str, Callable[[random.Random], str]] = {
    "n": lambda rng: f"{rng.randint(24, 48000):,}",
    "m": lambda rng: f"{rng.randint(12, 4000):,}",
    "k": lambda rng: str(rng.randint(2, 60)),
    "pct": lambda rng: f"{rng.uniform(1.5, 85):.1f}",
    "pct2": lambda rng: f"{rng.uniform(1.5, 40):.1f}",
    "hr": lambda rng: f"{rng.uniform(0.35, 2.8):.2f}",
    "x": lambda rng: f"{rng.uniform(0.5, 250):.1f}",
    "fold": lambda rng: f"{rng.uniform(1.5, 12):.1f}",
    "dose": lambda rng: str(rng.choice((5, 10, 20, 25, 40, 50, 100, 200, 500, 1000))),
    "y1": lambda rng: str(rng.randint(1995, 2019)),
}


def _fill(template: str, rng: random.Random) -> str:
    return _capitalize(template.format_map(_Slots(rng)))


@dataclass(frozen=True, slots=True)
class _Shape:
    """The layout of one abstract: its labels (None: unstructured) and sentences per part."""

    labels: tuple[str, ...] | None
    categories: tuple[str, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Pools:
    sentences: dict[str, tuple[str, ...]]  # per NLM category
    runs: dict[str, tuple[tuple[str, ...], ...]]  # runs[category][k - 1]: k sentences joined
    shapes: tuple[_Shape | None, ...]  # None: title only
    titles: tuple[str, ...]
    author_lists: tuple[tuple[str, ...], ...]  # "Last FM"
    mesh_lists: tuple[tuple[str, ...], ...]
    dates: tuple[str, ...]  # publication dates


def _shape(rng: random.Random, words_per_sentence: float) -> _Shape | None:
    kind = rng.random()
    if kind >= _STRUCTURED_SHARE + _UNSTRUCTURED_SHARE:
        return None
    if rng.random() < _VERY_LONG_RATE:
        words = rng.randint(*_VERY_LONG_WORDS)
    else:
        lognormal = rng.lognormvariate(math.log(_MEDIAN_WORDS), _WORDS_SIGMA)
        words = int(min(_MAX_WORDS, max(_MIN_WORDS, lognormal)))
    labels = rng.choice(_LAYOUTS) if kind < _STRUCTURED_SHARE else None
    categories = tuple(_LABEL_CATEGORY[lb] for lb in labels) if labels else _UNSTRUCTURED_FLOW
    # Each part gets its category's share of the sentences, at least one.
    total = max(len(categories), round(words / words_per_sentence))
    share = sum(_CATEGORY_SHARE[c] for c in categories)
    counts = tuple(max(1, round(total * _CATEGORY_SHARE[c] / share)) for c in categories)
    return _Shape(labels, categories, counts)


@cache
def _pools() -> _Pools:
    """Fixed pools (independent of the corpus seed): records differ by how they combine them."""
    rng = random.Random(20240601)
    sentences = {
        category: tuple(_fill(rng.choice(templates), rng) for _ in range(_POOL_SENTENCES))
        for category, templates in _TEMPLATES.items()
    }
    runs = {
        category: tuple(
            tuple(" ".join(rng.choices(pool, k=k)) for _ in range(_POOL_RUNS))
            for k in range(1, _MAX_RUN + 1)
        )
        for category, pool in sentences.items()
    }
    every = [s for pool in sentences.values() for s in pool]
    words_per_sentence = sum(len(s.split()) for s in every) / len(every)
    titles: list[str] = []
    while len(titles) < _POOL_TITLES:
        title = _fill(rng.choice(_TITLE_TEMPLATES), rng)
        if 8 <= len(title.split()) <= 20:
            titles.append(title)
    initials = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return _Pools(
        sentences=sentences,
        runs=runs,
        shapes=tuple(_shape(rng, words_per_sentence) for _ in range(_POOL_SHAPES)),
        titles=tuple(titles),
        author_lists=tuple(
            tuple(
                f"{rng.choice(_LAST_NAMES)} {''.join(rng.choices(initials, k=rng.randint(1, 3)))}"
                for _ in range(rng.randint(3, 10))
            )
            for _ in range(_POOL_AUTHOR_LISTS)
        ),
        mesh_lists=tuple(
            tuple(rng.sample(_MESH, rng.randint(5, 15))) for _ in range(_POOL_MESH_LISTS)
        ),
        dates=tuple(
            f"{year}-{month:02d}-{day:02d}"
            for year in range(1995, 2025)
            for month in range(1, 13)
            for day in range(1, 29)
        ),
    )


# --- record content -------------------------------------------------------------------------


def _abstract(r: Callable[[], float], pools: _Pools) -> str | list[dict[str, str]]:
    shape = pools.shapes[int(r() * _POOL_SHAPES)]
    if shape is None:
        return ""
    texts = []
    for category, count in zip(shape.categories, shape.counts, strict=True):
        runs = pools.runs[category]
        if count <= _MAX_RUN:  # the common case: one pick
            texts.append(runs[count - 1][int(r() * _POOL_RUNS)])
            continue
        parts = []
        while count > 0:
            k = min(count, _MAX_RUN)
            parts.append(runs[k - 1][int(r() * _POOL_RUNS)])
            count -= k
        texts.append(" ".join(parts))
    if shape.labels is None:
        return " ".join(texts)
    return [{"label": label, "text": text} for label, text in zip(shape.labels, texts, strict=True)]


def _content(
    rng: random.Random, pools: _Pools, pmid: str, title: str | None = None
) -> dict[str, Any]:
    """One record in the original service's JSON shape."""
    r = rng.random
    # Indexing with r() instead of rng.choice: this runs once per record.
    return {
        "pmid": pmid,
        "title": title if title is not None else pools.titles[int(r() * _POOL_TITLES)],
        "abstract": _abstract(r, pools),
        "authors": pools.author_lists[int(r() * _POOL_AUTHOR_LISTS)],
        "journal": _JOURNALS[int(r() * len(_JOURNALS))],
        "mesh_terms": pools.mesh_lists[int(r() * _POOL_MESH_LISTS)],
        "doi": f"10.{_DOI_PREFIXES[int(r() * len(_DOI_PREFIXES))]}/syn.{pmid}"
        if r() < _DOI_SHARE
        else None,
        "pmc_id": f"PMC{int(pmid) - FIRST_PMID + 8_000_000}" if r() < _PMC_SHARE else None,
        "publication_date": pools.dates[int(r() * len(pools.dates))],
        "language": _LANGUAGES[int(r() * len(_LANGUAGES))],
    }


# --- encodings ------------------------------------------------------------------------------


def _gzip(data: bytes) -> bytes:
    """A gzip member with mtime 0, so equal input gives equal bytes.

    An 8 KiB window and a small hash (records are a few KiB) keep zlib's state under glibc's
    trim threshold; the default state (256 KiB) is mapped and unmapped on every call, which
    made compression system time the largest cost of the generator.
    """
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + 13, 5)
    return compressor.compress(data) + compressor.flush()


def _xml_text(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Real abstracts carry inline markup; the text content stays the same.
    return escaped.replace("in vitro", "<i>in vitro</i>")


_XML_HEAD = (
    '<?xml version="1.0" ?>\n'
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    '<PubmedArticleSet>\n<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">'
)


# Author and MeSH lists come from pools in a corpus, so their XML is built once per list.
@lru_cache(maxsize=2 * _POOL_AUTHOR_LISTS)
def _authors_xml(authors: tuple[str, ...]) -> str:
    elements = []
    for author in authors:
        last, initials = author.rsplit(" ", 1)
        fore = " ".join((_FORE_NAMES[initials[0]], *initials[1:]))
        elements.append(
            f'<Author ValidYN="Y"><LastName>{_xml_text(last)}</LastName>'
            f"<ForeName>{fore}</ForeName><Initials>{initials}</Initials></Author>"
        )
    return f'<AuthorList CompleteYN="Y">{"".join(elements)}</AuthorList>'


@lru_cache(maxsize=2 * _POOL_MESH_LISTS)
def _mesh_xml(terms: tuple[str, ...]) -> str:
    headings = "".join(
        f'<MeshHeading><DescriptorName MajorTopicYN="N">{term}</DescriptorName></MeshHeading>'
        for term in terms
    )
    return f"<MeshHeadingList>{headings}</MeshHeadingList>"


def _xml(content: dict[str, Any]) -> bytes:
    pmid = content["pmid"]
    year, month, day = content["publication_date"].split("-")
    abstract = content["abstract"]
    if isinstance(abstract, list):
        texts = "".join(
            f'<AbstractText Label="{s["label"]}" NlmCategory="{_LABEL_CATEGORY[s["label"]]}">'
            f"{_xml_text(s['text'])}</AbstractText>"
            for s in abstract
        )
        abstract_xml = f"<Abstract>{texts}</Abstract>"
    elif abstract:
        abstract_xml = f"<Abstract><AbstractText>{_xml_text(abstract)}</AbstractText></Abstract>"
    else:
        abstract_xml = ""
    doi, pmc_id = content["doi"], content["pmc_id"]
    ids = f'<ArticleId IdType="pubmed">{pmid}</ArticleId>'
    if pmc_id:
        ids += f'<ArticleId IdType="pmc">{pmc_id}</ArticleId>'
    if doi:
        ids += f'<ArticleId IdType="doi">{doi}</ArticleId>'
    parts = (
        _XML_HEAD,
        f'<PMID Version="1">{pmid}</PMID>',
        '<Article PubModel="Print-Electronic"><Journal><JournalIssue CitedMedium="Internet">',
        f"<PubDate><Year>{year}</Year><Month>{_MONTHS[int(month) - 1]}</Month><Day>{day}</Day>",
        f"</PubDate></JournalIssue><Title>{_xml_text(content['journal'])}</Title></Journal>",
        f"<ArticleTitle>{_xml_text(content['title'])}</ArticleTitle>",
        f'<ELocationID EIdType="doi" ValidYN="Y">{doi}</ELocationID>' if doi else "",
        abstract_xml,
        _authors_xml(tuple(content["authors"])),
        f"<Language>{content['language']}</Language>",
        '<PublicationTypeList><PublicationType UI="D016428">Journal Article</PublicationType>',
        "</PublicationTypeList></Article>",
        _mesh_xml(tuple(content["mesh_terms"])),
        "</MedlineCitation><PubmedData><PublicationStatus>ppublish</PublicationStatus>",
        f"<ArticleIdList>{ids}</ArticleIdList></PubmedData></PubmedArticle>\n",
        "</PubmedArticleSet>\n",
    )
    return "".join(parts).encode()


def _encode(
    content: dict[str, Any],
    fmt: str,
    *,
    source: str,
    ingest_date: str,
    zstd: zstandard.ZstdCompressor,
) -> bytes:
    if fmt == "xml":
        return _xml(content)
    payload = orjson.dumps(content)
    if fmt == "json":
        return payload
    if fmt == "json.gz":
        return _gzip(payload)
    if fmt == "json.zst":
        return zstd.compress(payload)
    if fmt == "envelope.json":
        return orjson.dumps(
            {
                "pmid": content["pmid"],
                "fetched_at": f"{ingest_date}T06:00:00Z",
                "source": source,
                "payload": content,
                "hash": hashlib.sha256(payload).hexdigest(),
                "version": 1,
            }
        )
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


# --- malformed records ----------------------------------------------------------------------

_XXE_XML = (
    '<?xml version="1.0"?>\n'
    '<!DOCTYPE PubmedArticleSet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    "<PubmedArticleSet><PubmedArticle><MedlineCitation>"
    '<PMID Version="1">{pmid}</PMID><Article><ArticleTitle>&xxe;</ArticleTitle>'
    "<Abstract><AbstractText>{abstract}</AbstractText></Abstract></Article>"
    "</MedlineCitation></PubmedArticle></PubmedArticleSet>\n"
)


def _malformed(kind: str, content: dict[str, Any]) -> tuple[str, bytes]:
    """(format, bytes) of a deliberately bad version of ``content``."""
    payload = orjson.dumps(content)
    if kind == "truncated_json":
        return "json", payload[: len(payload) // 2]
    if kind == "invalid_utf8":
        # Latin-1 bytes where UTF-8 is required, as a mis-encoded upstream would write.
        cut = payload.index(b'"title":') + 9
        return "json", payload[:cut] + b"\xe9tude \xff\xfe " + payload[cut:]
    if kind == "missing_pmid":
        return "json", orjson.dumps({k: v for k, v in content.items() if k != "pmid"})
    if kind == "wrong_types":
        return "json", orjson.dumps(content | {"title": content["title"].split(": ")})
    if kind == "truncated_gzip":
        compressed = _gzip(payload)
        return "json.gz", compressed[: len(compressed) // 2]
    if kind == "xml_external_entity":
        text = content["abstract"] if isinstance(content["abstract"], str) else ""
        return "xml", _XXE_XML.format(pmid=content["pmid"], abstract=_xml_text(text)).encode()
    raise ValueError(f"unknown malformed kind {kind!r}")


# --- public API -----------------------------------------------------------------------------


def _record(
    *,
    content: dict[str, Any],
    source: str,
    ingest_date: str,
    fmt: str,
    data: bytes,
    malformed: str | None,
) -> SyntheticRecord:
    pmid = content["pmid"]
    return SyntheticRecord(
        source=source,
        source_id=pmid,
        uid=document_uid(source, pmid),
        title=content["title"],
        published_at=content["publication_date"],
        ingest_date=ingest_date,
        key=f"raw/{source}/{ingest_date}/{pmid}.{fmt}",
        data=data,
        content_hash=hashlib.sha256(data).hexdigest(),
        malformed=malformed,
    )


def generate_corpus(
    n: int,
    *,
    sources: Sequence[str] = ("pubmed",),
    start_date: date,
    days: int,
    seed: int = 0,
    malformed_rate: float = 0.0,
    formats: Sequence[str] = FORMATS,
) -> Iterator[SyntheticRecord]:
    """``n`` records with PMIDs ``30000000 + i``, sources round-robin, ingest dates uniformly over
    ``days`` days from ``start_date``, formats uniformly from ``formats``.

    Deterministic for a seed; a shorter corpus is a prefix of a longer one with the same
    arguments. Malformed records (share ``malformed_rate``) cycle through MALFORMED_KINDS.
    """
    if days < 1 or not sources or not formats:
        raise ValueError("need at least one day, one source and one format")
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; expected some of {FORMATS}")
    rng = random.Random(seed)
    pools = _pools()
    zstd = zstandard.ZstdCompressor(level=1)
    day_strings = [(start_date + timedelta(days=d)).isoformat() for d in range(days)]
    n_malformed = 0
    for i in range(n):
        source = sources[i % len(sources)]
        ingest_date = day_strings[int(rng.random() * days)]
        fmt = formats[int(rng.random() * len(formats))]
        bad = rng.random() < malformed_rate
        content = _content(rng, pools, str(FIRST_PMID + i))
        kind = None
        if bad:
            kind = MALFORMED_KINDS[n_malformed % len(MALFORMED_KINDS)]
            n_malformed += 1
            fmt, data = _malformed(kind, content)
        else:
            data = _encode(content, fmt, source=source, ingest_date=ingest_date, zstd=zstd)
        yield _record(
            content=content,
            source=source,
            ingest_date=ingest_date,
            fmt=fmt,
            data=data,
            malformed=kind,
        )

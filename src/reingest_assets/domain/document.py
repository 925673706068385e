"""The normalized document and the chunk, as every later stage sees them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, cast

import orjson


class PicklesByFields:
    """Pickles as its constructor arguments. A slotted dataclass otherwise pickles through
    ``__getstate__``/``__setstate__``, which call ``dataclasses.fields()`` per object: that made
    unpickling the workers' chunks cost the main process more than writing them."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        cls = type(self)
        names = cast("tuple[str, ...]", cls.__slots__)  # the dataclass's fields, in order
        return cls, tuple(getattr(self, name) for name in names)


@dataclass(frozen=True, slots=True)
class Section:
    """One part of an abstract. ``label`` is the structured-abstract label (``BACKGROUND``, ...),
    ``None`` for an unstructured abstract."""

    label: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    """A normalized PubMed record. Only plain types, so it round-trips through Parquet."""

    uid: str  # "pubmed:<pmid>"
    source: str
    source_id: str  # the PMID
    title: str
    sections: tuple[Section, ...]
    authors: tuple[str, ...] = ()
    journal: str | None = None
    mesh_terms: tuple[str, ...] = ()
    doi: str | None = None
    pmc_id: str | None = None
    published_at: str | None = None  # ISO date, YYYY-MM-DD
    language: str | None = None
    publication_types: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def year(self) -> int | None:
        return int(self.published_at[:4]) if self.published_at else None

    @property
    def abstract(self) -> str:
        return "\n".join(s.text for s in self.sections)

    @property
    def quality_total(self) -> float:
        """A 0..1 completeness score of the record (as the original service's ``quality_total``):
        searchable text, and the metadata a reader filters on."""
        score = 0.0
        score += 0.35 if self.sections else 0.0
        score += 0.15 if self.title else 0.0
        score += 0.10 if len(self.sections) > 1 else 0.0
        score += 0.10 if self.mesh_terms else 0.0
        score += 0.10 if self.journal else 0.0
        score += 0.10 if self.authors else 0.0
        score += 0.05 if self.doi else 0.0
        score += 0.05 if self.published_at else 0.0
        return round(score, 4)

    def to_row(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "source": self.source,
            "source_id": self.source_id,
            "title": self.title,
            "section_labels": [s.label for s in self.sections],
            "section_texts": [s.text for s in self.sections],
            "authors": list(self.authors),
            "journal": self.journal,
            "mesh_terms": list(self.mesh_terms),
            "doi": self.doi,
            "pmc_id": self.pmc_id,
            "published_at": self.published_at,
            "language": self.language,
            "publication_types": list(self.publication_types),
            "extra": orjson.dumps(self.extra, option=orjson.OPT_SORT_KEYS).decode(),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        return cls(
            uid=row["uid"],
            source=row["source"],
            source_id=row["source_id"],
            title=row["title"],
            sections=tuple(
                Section(label, text)
                for label, text in zip(row["section_labels"], row["section_texts"], strict=True)
            ),
            authors=tuple(row["authors"]),
            journal=row["journal"],
            mesh_terms=tuple(row["mesh_terms"]),
            doi=row["doi"],
            pmc_id=row["pmc_id"],
            published_at=row["published_at"],
            language=row["language"],
            publication_types=tuple(row["publication_types"]),
            extra=orjson.loads(row["extra"]) if row["extra"] else {},
        )

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the normalized record: equal documents, equal hash."""
        return hashlib.sha256(orjson.dumps(self.to_row(), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class Chunk(PicklesByFields):
    """One object of the DocumentChunk_v2 collection."""

    uuid: str
    chunk_id: str
    parent_uid: str
    source: str
    title: str
    text: str
    section: str | None
    published_at: str | None
    year: int | None
    tokens: int
    n_sentences: int
    quality_total: float
    meta: dict[str, Any]

    def properties(self) -> dict[str, Any]:
        """The stored properties (everything but the UUID, which is the object id)."""
        return {
            "parent_uid": self.parent_uid,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "section": self.section,
            "published_at": self.published_at,
            "year": self.year,
            "tokens": self.tokens,
            "n_sentences": self.n_sentences,
            "quality_total": self.quality_total,
            "meta": self.meta,
        }

"""What one document may be: registry values the pipeline can store, checked before any work,
and the budgets of size and time each document gets.

Values past these limits are refused as that document's failure, instead of failing a whole
batch at the first database index they do not fit, or taking the memory or time of a run.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, fields

from reingest_assets.domain.document import Document
from reingest_assets.domain.failures import DocumentError, Stage
from reingest_assets.domain.raw import MAX_GZIP_MEMBERS, MAX_RECORD_BYTES

# PostgreSQL's btree rows hold at most 2,704 bytes, and the ledger's keyset indexes put the uid
# after the run id, target, source and date: 1 KiB leaves room for all of them. A PubMed uid is
# about 16 bytes.
MAX_UID_BYTES = 1024
MAX_SOURCE_BYTES = 128


def registry_refusal(uid: str, source: str) -> DocumentError | None:
    """Why the pipeline cannot store a registry row with this uid and source, or None."""
    for name, value, limit in (("uid", uid, MAX_UID_BYTES), ("source", source, MAX_SOURCE_BYTES)):
        size = len(value.encode("utf-8", "surrogatepass"))
        if not value:
            return DocumentError("fetch", f"registry row refused: its {name} is empty")
        if size > limit:
            return DocumentError(
                "fetch",
                f"registry row refused: its {name} is {size} bytes, over the {limit}-byte limit "
                f"the ledger's indexes can hold; fix the {name} in the registry",
            )
        bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
        if bad is not None:
            return DocumentError(
                "fetch",
                f"registry row refused: its {name} holds the character U+{ord(bad):04X} "
                f"(a control character or a surrogate); fix the {name} in the registry",
            )
    return None


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """Per-document budgets. Each is the setting ``REINGEST_<NAME>`` (docs/configuration.md); a
    document over one becomes a ``data`` failure naming it, so what one document may cost in
    memory and time is declared here instead of following from its input. The defaults are far
    above any real PubMed record."""

    max_record_bytes: int = MAX_RECORD_BYTES  # decompressed bytes of one raw object
    max_gzip_members: int = MAX_GZIP_MEMBERS  # gzip members in one object (``cat a.gz b.gz``)
    max_title_chars: int = 2000  # the longest PubMed titles are under 1,000
    max_field_chars: int = 1000  # each other metadata string: journal, author, MeSH term, ...
    max_mesh_terms: int = 200
    max_authors: int = 20_000  # consortium papers list thousands
    max_list_items: int = 1000  # the other lists: publication types, abstract sections
    max_chunks: int = 1000  # chunks of one document (a real abstract makes a handful)
    # Every chunk repeats the title and the MeSH list (property and ``meta``): chunks times their
    # characters, the most one document may add to the store in copies.
    max_repeated_chars: int = 4_000_000
    max_parse_seconds: int = 30
    max_chunk_seconds: int = 60

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{setting(limit.name)} must be a positive whole number, got {value!r}"
                )

    def over(self, stage: Stage, name: str, what: str) -> DocumentError:
        """A ``data`` failure: ``what`` is over the limit ``name``."""
        return DocumentError(
            stage,
            f"{what}, over the limit of {getattr(self, name):,} ({name}): raise {setting(name)} "
            "if the record is genuine",
        )

    def check_document(self, doc: Document) -> None:
        """Raise the first limit the normalized document is over (stage ``normalize``)."""
        if len(doc.title) > self.max_title_chars:
            raise self.over(
                "normalize", "max_title_chars", f"title is {len(doc.title):,} characters"
            )
        for name, values, limit in (
            ("MeSH terms", doc.mesh_terms, "max_mesh_terms"),
            ("authors", doc.authors, "max_authors"),
            ("publication types", doc.publication_types, "max_list_items"),
            ("abstract sections", doc.sections, "max_list_items"),
        ):
            if len(values) > getattr(self, limit):
                raise self.over("normalize", limit, f"record has {len(values):,} {name}")
        fields: list[tuple[str, str | None]] = [
            ("journal", doc.journal),
            ("doi", doc.doi),
            ("pmc_id", doc.pmc_id),
            ("language", doc.language),
            *(("mesh_terms[]", term) for term in doc.mesh_terms),
            *(("authors[]", author) for author in doc.authors),
            *(("publication_types[]", kind) for kind in doc.publication_types),
            *(("section label", section.label) for section in doc.sections),
        ]
        for name, value in fields:
            if value is not None and len(value) > self.max_field_chars:
                raise self.over(
                    "normalize", "max_field_chars", f"{name} is {len(value):,} characters"
                )


DEFAULT_LIMITS = DocumentLimits()


def setting(name: str) -> str:
    """The environment variable of the limit ``name``."""
    return f"REINGEST_{name.upper()}"

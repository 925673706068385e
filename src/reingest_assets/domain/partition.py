"""A partition (source × daily ingest date) and the one place its key format lives.

Dagster's multi-partition key joins the dimension values ordered by dimension name
(``ingest_date``, ``source``) with ``|``: ``2026-11-03|pubmed``. Everything that builds or parses
such a key (the engine, the registry's per-partition queries, the CLI, the Dagster glue) goes
through :func:`partition_key` and :meth:`Partition.from_key`.
"""

from __future__ import annotations

from dataclasses import dataclass

KEY_SEPARATOR = "|"


def partition_key(ingest_date: str, source: str) -> str:
    """``ingest_date|source``, as Dagster's ``MultiPartitionsDefinition`` names the partition."""
    return f"{ingest_date}{KEY_SEPARATOR}{source}"


@dataclass(frozen=True, slots=True)
class Partition:
    source: str
    ingest_date: str  # YYYY-MM-DD

    @property
    def key(self) -> str:
        return partition_key(self.ingest_date, self.source)

    @classmethod
    def from_key(cls, key: str) -> Partition:
        ingest_date, source = key.split(KEY_SEPARATOR)
        return cls(source=source, ingest_date=ingest_date)

    @property
    def normalized_uri(self) -> str:
        return f"normalized/source={self.source}/ingest_date={self.ingest_date}/documents.parquet"

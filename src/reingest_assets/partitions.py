"""Partitions: source × daily ingest date. Keys order dimensions by name: ``2026-11-03|pubmed``."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

from reingest_assets.settings import Settings


def build_partitions(settings: Settings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {
            "source": StaticPartitionsDefinition(list(settings.sources)),
            "ingest_date": DailyPartitionsDefinition(start_date=settings.start_date),
        }
    )

"""Partitions: source × daily ingest date. Keys order dimensions by name: ``2026-11-03|pubmed``
(built and parsed only by ``domain/partition.py``)."""

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


# Read once when the code location loads: the partitions (and the sensor's and schedules' tick
# settings) exist before any resource does. Everything a run uses comes from its resources.
LOAD_SETTINGS = Settings()
PARTITIONS = build_partitions(LOAD_SETTINGS)

"""Jobs: the re-ingestion job over the partitioned chain."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from reingest_assets.assets import PARTITIONS, document_chunks_v2, normalized_documents

reingest_job = define_asset_job(
    "reingest_job",
    selection=AssetSelection.assets(normalized_documents, document_chunks_v2),
    partitions_def=PARTITIONS,
    description="Normalize and chunk the selected partitions into DocumentChunk_v2.",
)

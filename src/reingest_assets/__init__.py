"""reingest: a Dagster code location that re-ingests PubMed documents into DocumentChunk_v2."""

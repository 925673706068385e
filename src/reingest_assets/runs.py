"""What the CLI and the benchmark read from finished runs."""

from __future__ import annotations

from typing import Any

from reingest_assets.stack import run_totals

# Dagster's console logger at DEBUG prints every event; the CLI prints its own summary.
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def summarize(results: list[Any], seconds: float) -> dict[str, Any]:
    """Add up the runs' materialization metadata into one summary."""
    totals = run_totals(results)
    norm = totals.get("normalized_documents", {})
    chunks = totals.get("document_chunks_v2", {})
    docs_in = int(norm.get("docs_in", 0))
    return {
        "docs_total": docs_in,
        "docs_written": int(chunks.get("docs_written", 0)),
        "docs_skipped": int(norm.get("docs_skipped", 0) + chunks.get("docs_skipped", 0)),
        "docs_failed": int(norm.get("docs_failed", 0) + chunks.get("docs_failed", 0)),
        "docs_deleted": int(chunks.get("docs_deleted", 0)),
        "chunks_written": int(chunks.get("chunks_written", 0)),
        "chunks_deleted": int(chunks.get("chunks_deleted", 0)),
        "seconds": round(seconds, 2),
        "docs_per_minute": round(docs_in / seconds * 60, 1) if seconds else 0.0,
        "runs": len(results),
        "runs_succeeded": sum(1 for r in results if r.success),
    }

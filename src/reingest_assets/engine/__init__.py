"""The streaming engine: per-partition runs, batching, worker pool, retries, failure capture.

No Dagster imports: the CLI, the benchmark and the assets all drive it.
"""

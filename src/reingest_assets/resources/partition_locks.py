"""One writer per partition: a Postgres advisory lock per partition key, held by the run
writing it, on a connection of its own named after the run (so a waiting run can say whose
lock it waits for). A run that dies loses its connection and with it its locks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import psycopg

# The first key of the two-key advisory lock: this project's partitions ("rplk"), apart from
# the migrations' lock and anyone else's.
LOCK_CLASS = 0x72706C6B
APPLICATION_PREFIX = "reingest run "


def lock_id(partition_key: str) -> int:
    """The partition's second lock key: 31 bits of its hash (a collision only makes two
    partitions wait for each other)."""
    digest = hashlib.blake2b(partition_key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


class PartitionLocks:
    """The advisory locks of one run. Not thread-safe."""

    def __init__(self, url: str, run_id: str) -> None:
        self.url = url
        self.run_id = run_id
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            self._conn = psycopg.connect(
                self.url,
                autocommit=True,
                application_name=(APPLICATION_PREFIX + self.run_id)[:63],
            )
        return self._conn

    def try_lock(self, partition_key: str) -> bool:
        row = self.conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, lock_id(partition_key))
        ).fetchone()
        return bool(row and row[0])

    def lock(self, partition_key: str) -> None:
        """Wait until the partition is free, then hold it."""
        self.conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, lock_id(partition_key)))

    def unlock(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, lock_id(key)))

    def holder(self, partition_key: str) -> str | None:
        """The run holding the partition's lock (from its connection's name), if any."""
        row = self.conn.execute(
            """
            SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 2
            """,
            (LOCK_CLASS, lock_id(partition_key)),
        ).fetchone()
        if row is None:
            return None
        name = str(row[0])
        return (
            name.removeprefix(APPLICATION_PREFIX) if name.startswith(APPLICATION_PREFIX) else name
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # releases every lock this run holds
            self._conn = None

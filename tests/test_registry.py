"""The Postgres registry beyond the registry contract (tests/test_registry_contract.py): its
migrations, its attempt counters, its retries, its array literals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reingest_assets.domain.failures import Failure
from reingest_assets.resources.pg import text_array
from reingest_assets.resources.registry.postgres import PostgresRegistry


def test_migrations_apply_once_even_when_two_runs_start_at_once(pg_url: str) -> None:
    registries = [PostgresRegistry(pg_url) for _ in range(5)]
    try:
        with ThreadPoolExecutor(4) as pool:
            applied = list(pool.map(lambda r: r.migrate(), registries[:4]))
        assert sorted(len(a) for a in applied)[-1] >= 1
        assert sum(len(a) for a in applied) == len(max(applied, key=len))  # each applied once
        assert registries[4].migrate() == []
    finally:
        for registry in registries:
            registry.close()


def _failure(uid: str, stage: str = "parse") -> Failure:
    return Failure(uid, "pubmed", "2026-11-03", stage, "data", "ValueError", "bad", "h1")  # type: ignore[arg-type]


def _attempts(registry: PostgresRegistry, uid: str) -> tuple[int, int, bool]:
    row = registry.conn.execute(
        "SELECT attempts, repair_attempts, permanent FROM reingest.ingestion_failures"
        " WHERE uid = %s AND resolved_at IS NULL",
        (uid,),
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def registry(pg_url: str) -> Iterator[PostgresRegistry]:
    registry = PostgresRegistry(pg_url)
    registry.migrate()
    yield registry
    registry.close()


def test_attempts_count_every_failing_run_and_repair_attempts_only_repairs(
    registry: PostgresRegistry,
) -> None:
    # The contract pins what the sensor sees; this pins the columns an operator reads.
    for _ in range(5):  # the first run, then forced or plain re-runs failing it again
        registry.record_failures([_failure("pubmed:1")], run_id="r", max_attempts=3)
    assert _attempts(registry, "pubmed:1") == (5, 0, False)
    for repairs in (1, 2):
        registry.record_failures([_failure("pubmed:1")], run_id="r", max_attempts=3, repair=True)
        assert _attempts(registry, "pubmed:1") == (5 + repairs, repairs, False)
    registry.record_failures([_failure("pubmed:1")], run_id="r", max_attempts=3, repair=True)
    assert _attempts(registry, "pubmed:1") == (8, 3, True)
    registry.record_failures([_failure("pubmed:1")], run_id="r", max_attempts=3)
    assert _attempts(registry, "pubmed:1") == (9, 3, True)  # and stay permanent


def test_the_reads_of_the_sensor_validation_and_status_survive_a_lost_connection(
    registry: PostgresRegistry, pg_url: str
) -> None:
    # Retried like the writes: a connection the server dropped (a restart, an idle timeout)
    # is replaced, not a failed sensor tick or check.
    stamp = datetime(2026, 11, 3, 12, tzinfo=UTC)
    registry.upsert_documents(
        [("pubmed:1", "pubmed", "1", None, None, "s3://b/1", "h2", stamp, stamp)]
    )
    registry.record_failures([_failure("pubmed:1")], run_id="r1", max_attempts=3)  # hash h1
    registry.record_written(
        "t",
        [("pubmed:2", "pubmed", "2026-11-03", "h", [])],
        chunker_version="c",
        embedder_id="none",
        run_id="r2",
    )
    reads: dict[str, tuple[Callable[[], Any], Any]] = {
        "repairable_failures": (
            lambda: [f.uid for f in registry.repairable_failures()],
            ["pubmed:1"],
        ),
        "unresolved_failure_uids": (
            lambda: registry.unresolved_failure_uids(["pubmed:1", "pubmed:2"]),
            {"pubmed:1"},
        ),
        "partition_status": (
            lambda: (
                registry.partition_status(
                    "t",
                    ["pubmed"],
                    "2026-11-03",
                    "2026-11-03",
                    chunker_version="c",
                    embedder_id="none",
                )["2026-11-03|pubmed"].ledger_documents
            ),
            1,
        ),
        "iter_ledger": (
            lambda: [e.uid for p in registry.iter_ledger("t") for e in p],
            ["pubmed:2"],
        ),
        "iter_run_ledger": (
            lambda: [e.uid for p in registry.iter_run_ledger("t", "pubmed", "r2") for e in p],
            ["pubmed:2"],
        ),
    }
    try:
        for name, (read, expected) in reads.items():
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (registry.conn.info.backend_pid,))
            assert read() == expected, name
    finally:
        registry.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00")), max_size=8
    )
)
def test_keys_passed_as_an_array_literal_arrive_unchanged(
    pg_server: str, values: list[str]
) -> None:
    with psycopg.connect(pg_server) as conn:
        row = conn.execute("SELECT %s::text[]", (text_array(values),)).fetchone()
    assert row is not None and row[0] == values

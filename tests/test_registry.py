"""The Postgres registry beyond the registry contract (tests/test_registry_contract.py): its
migrations, its attempt counters, its array literals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reingest_assets.domain.failures import Failure
from reingest_assets.resources.pg import text_array
from reingest_assets.resources.registry.postgres import PostgresRegistry


def test_migrations_apply_once_even_when_two_runs_start_at_once(pg_url: str) -> None:
    registries = [PostgresRegistry(pg_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(lambda r: r.migrate(), registries))
    assert sorted(len(a) for a in applied)[-1] >= 1
    assert sum(len(a) for a in applied) == len(max(applied, key=len))  # each applied exactly once
    assert PostgresRegistry(pg_url).migrate() == []


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


def test_only_repairs_count_towards_the_attempt_limit(pg_url: str) -> None:
    registry = PostgresRegistry(pg_url)
    registry.migrate()
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

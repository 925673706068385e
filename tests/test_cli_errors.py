"""Wrong settings give one message naming the setting to fix, exit status 2, no traceback and
never a password; with --json the error is a JSON object on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from weaviate.classes.config import Configure, DataType, Property, Tokenization

from reingest_assets.cli import display, main
from reingest_assets.engine.progress import Progress, ProgressEvent, listening
from support.s3 import moto_s3_server
from support.weaviate_target import weaviate_target

SETTINGS_EXIT = 2


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A fresh REINGEST_HOME; the variables the CLI sets for Dagster are restored after."""
    monkeypatch.setenv("REINGEST_HOME", str(tmp_path / "home"))
    for name in ("DAGSTER_HOME", "REINGEST_DAGSTER_STORAGE_URL", "REINGEST_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_unreachable_database_names_the_url_setting_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REINGEST_DATABASE_URL", "postgresql://u:secret@127.0.0.1:1/x")
    code, out, err = run_cli(capsys, "status")
    assert code == SETTINGS_EXIT
    assert "REINGEST_DATABASE_URL" in err and "127.0.0.1:1" in err
    assert "Traceback" not in err
    assert "secret" not in out + err

    code, out, err = run_cli(capsys, "full", "--json")
    assert code == SETTINGS_EXIT
    error = json.loads(out)["error"]
    assert "REINGEST_DATABASE_URL" in error and "secret" not in error


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REINGEST_STORE", "foo"),
        ("REINGEST_OBJECT_STORE", "gcs"),
        ("REINGEST_BATCH_SIZE", "abc"),
        ("REINGEST_WORKERS", "0"),
        ("REINGEST_MAX_FAILURE_RATE", "5%"),
        ("REINGEST_START_DATE", "yesterday"),
    ],
)
def test_invalid_setting_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    code, out, err = run_cli(capsys, "validate", "--json")
    assert code == SETTINGS_EXIT
    assert name in json.loads(out)["error"] and name in err
    assert "Traceback" not in err


def test_missing_bucket_names_the_bucket_settings(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with moto_s3_server() as endpoint:
        monkeypatch.setenv("REINGEST_DATABASE_URL", pg_url)
        monkeypatch.setenv("REINGEST_OBJECT_STORE", "s3")
        monkeypatch.setenv("REINGEST_BUCKET", "no-such-bucket")
        monkeypatch.setenv("REINGEST_S3_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        code, _, err = run_cli(capsys, "status")
    assert code == SETTINGS_EXIT
    assert "no-such-bucket" in err
    assert "REINGEST_BUCKET" in err and "REINGEST_S3_ENDPOINT_URL" in err


def test_unreachable_weaviate_names_the_endpoint_settings(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REINGEST_DATABASE_URL", pg_url)
    monkeypatch.setenv("REINGEST_STORE", "weaviate")
    monkeypatch.setenv("REINGEST_WEAVIATE_HTTP_HOST", "127.0.0.1")
    monkeypatch.setenv("REINGEST_WEAVIATE_HTTP_PORT", "1")
    monkeypatch.setenv("REINGEST_WEAVIATE_API_KEY", "weaviate-key-value")
    code, out, err = run_cli(capsys, "status")
    assert code == SETTINGS_EXIT
    assert "127.0.0.1:1" in err and "REINGEST_WEAVIATE_HTTP_HOST" in err
    assert "weaviate-key-value" not in out + err


def test_wrong_collection_schema_lists_the_differences(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with weaviate_target() as target:
        if target.fake is None:
            pytest.skip("creates DocumentChunk_v2 itself: only on the fake server")
        client = target.connect()
        try:
            client.collections.create(
                "DocumentChunk_v2",
                properties=[
                    Property(
                        name="parent_uid", data_type=DataType.TEXT, tokenization=Tokenization.WORD
                    )
                ],
                vector_config=Configure.Vectors.self_provided(),
            )
        finally:
            client.close()
        monkeypatch.setenv("REINGEST_DATABASE_URL", pg_url)
        monkeypatch.setenv("REINGEST_STORE", "weaviate")
        monkeypatch.setenv("REINGEST_WEAVIATE_VECTORIZER", "none")
        monkeypatch.setenv("REINGEST_WEAVIATE_HTTP_HOST", "127.0.0.1")
        monkeypatch.setenv("REINGEST_WEAVIATE_HTTP_PORT", str(target.fake.http_port))
        monkeypatch.setenv("REINGEST_WEAVIATE_GRPC_HOST", "127.0.0.1")
        monkeypatch.setenv("REINGEST_WEAVIATE_GRPC_PORT", str(target.fake.grpc_port))
        code, _, err = run_cli(capsys, "migrate")
    assert code == SETTINGS_EXIT
    assert "DocumentChunk_v2 does not match" in err
    assert "parent_uid: tokenization word, expected field" in err
    assert "Traceback" not in err


def test_progress_reaches_the_display_as_events(capsys: pytest.CaptureFixture[str]) -> None:
    """The engine's progress goes to the run's log as text and to listeners in the process (the
    CLI's display) as events: no log parsing in between."""
    logged: list[str] = []
    events: list[ProgressEvent] = []
    with listening(events.append):
        for stage, total in (("normalize", 3000), ("chunk", None)):
            progress = Progress(stage, "2026-11-03|pubmed", total, logged.append, every=0.0)
            progress.advance(1200)
    Progress("chunk", "2026-11-03|pubmed", None, logged.append, every=0.0).advance(1)
    assert [(e.stage, e.partition, e.done, e.total) for e in events] == [
        ("normalize", "2026-11-03|pubmed", 1200, 3000),
        ("chunk", "2026-11-03|pubmed", 1200, None),
    ]
    assert logged[:2] == [e.line() for e in events] and len(logged) == 3
    assert "40% of 3,000, ETA" in events[0].line() and events[0].eta_seconds is not None
    assert "docs/min" in events[1].line() and events[1].eta_seconds is None

    with display.progress("reingest_job pubmed"):  # not a terminal: one line per event
        Progress("normalize", "2026-11-04|pubmed", 10, logged.append, every=0.0).advance(5)
    assert capsys.readouterr().err.startswith("normalize 2026-11-04|pubmed: 5 docs")

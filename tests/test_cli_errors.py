"""Wrong settings give one message naming the setting to fix, exit status 2, no traceback and
never a password; with --json the error is a JSON object on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from weaviate.classes.config import Configure, DataType, Property, Tokenization

from reingest_assets.cli import main
from reingest_assets.cli.display import PROGRESS_LINE
from reingest_assets.engine.progress import Progress
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


def test_the_cli_recognizes_the_engines_progress_lines() -> None:
    """The terminal display picks the engine's progress lines out of the run's log."""
    lines: list[str] = []
    for label, total in (("normalize 2026-11-03|pubmed", 3000), ("chunk 2026-11-03|pubmed", None)):
        progress = Progress(label, total, lines.append, every=0.0)
        progress.advance(1200)
    assert len(lines) == 2
    for line in lines:
        match = PROGRESS_LINE.search(f"reingest_job - 0f3a - document_chunks_v2 - {line}")
        assert match is not None and match.group() == line
    assert "ETA" in lines[0] and "docs/min" in lines[1]

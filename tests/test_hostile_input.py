"""Hostile input through the real engine and registry: every bad record becomes a failure row
with its stage and a reason; the rest of the partition lands; nothing escapes or is injected."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard

from reingest_assets.bench import PeakMemory
from reingest_assets.domain import limits
from reingest_assets.engine.runner import Partition, Pipeline, chunk_partition, normalize_partition
from reingest_assets.hostile import HostileCase, hostile_cases, mismatches, plant
from reingest_assets.preflight import explain
from reingest_assets.resources.pg import pg_error_kind
from reingest_assets.settings import Settings
from support.pipeline import DAY, PART, Corpus, record, store_snapshot

SECRET = "TOP-SECRET-CONTENT"
REMOTE = "http://127.0.0.1:9/evil.dtd"
EVIL_SOURCE = "pubmed'; DROP TABLE documents;--"


def run(p: Pipeline, part: Partition = PART) -> tuple[dict[str, Any], dict[str, Any]]:
    return normalize_partition(p, part).as_dict(), chunk_partition(p, part).as_dict()


def register_uri(p: Pipeline, pmid: int, uri: str, data_hash: str = "h") -> str:
    """A registry row pointing at ``uri`` as given (no object written by us)."""
    stamp = datetime.fromisoformat(DAY).replace(hour=12, tzinfo=UTC)
    uid = f"pubmed:{pmid}"
    p.registry.upsert_documents(
        [(uid, "pubmed", str(pmid), None, None, uri, data_hash, stamp, stamp)]
    )
    return uid


def open_failures(url: str) -> dict[str, tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT uid, stage, kind, message FROM reingest.ingestion_failures"
            " WHERE resolved_at IS NULL"
        ).fetchall()
    return {uid: (stage, kind, message) for uid, stage, kind, message in rows}


def bomb(compress: Any, decoded_bytes: int) -> bytes:
    """``decoded_bytes`` of zeros in well under a megabyte, built a MiB at a time."""
    block = bytes(1024 * 1024)
    return b"".join(compress.compress(block) for _ in range(decoded_bytes // len(block))) + (
        compress.flush()
    )


def xml_article(pmid: int, doctype: str, title: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE PubmedArticle [{doctype}]>'
        f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>{title}"
        "</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
    ).encode()


def test_every_hostile_record_is_a_failure_row_and_the_rest_lands(
    pipeline: Pipeline, corpus: Corpus, pg_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    # A valid record just outside the store's bucket, and one outside the store: if a key could
    # escape, these would land as documents.
    outside = gzip.compress(json.dumps(record(903) | {"title": SECRET}).encode())
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / "escaped.json.gz").write_bytes(outside)
    (tmp_path / "escaped.json.gz").write_bytes(outside)

    for pmid in range(1, 21):
        corpus.put_record(record(pmid))
    lols = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    hostile: dict[int, tuple[bytes, str, str]] = {  # pmid: (raw bytes, stage, reason word)
        801: (b'{"pmid": "801", "title": "trunc', "parse", "JSON"),
        802: (b'{"pmid": "802", "title": "caf\xe9 \xff"}', "parse", "UTF-8"),
        803: (b"\x00\x01binary\x02", "parse", ""),
        804: (xml_article(804, f'<!ENTITY x SYSTEM "file://{secret}">', "&x;"), "parse", "entit"),
        805: (xml_article(805, f'<!ENTITY % r SYSTEM "{REMOTE}"> %r;', "t"), "parse", "entit"),
        806: (xml_article(806, f'<!ENTITY l0 "lol">{lols}', "&l9;"), "parse", "entit"),
        807: (bomb(zlib.compressobj(9, zlib.DEFLATED, 31), 64 << 20), "parse", "limit"),
        808: (bomb(zstandard.ZstdCompressor().compressobj(), 64 << 20), "parse", "limit"),
        809: (json.dumps(record(809) | {"abstract": "x" * (9 << 20)}).encode(), "parse", "limit"),
        810: (json.dumps({"title": "no pmid", "abstract": "x."}).encode(), "normalize", "PMID"),
        811: (json.dumps(record(811) | {"title": ["a", "list"]}).encode(), "normalize", "title"),
        812: (json.dumps(record(812) | {"authors": {"x": 1}}).encode(), "normalize", "authors"),
        813: (json.dumps({"pmid": {"nested": 1}}).encode(), "normalize", "PMID"),
        814: (b"[1, 2, 3]", "normalize", "object"),
        # Duplicate PMIDs: two registry rows whose objects both hold PMID 1.
        815: (gzip.compress(json.dumps(record(1)).encode()), "normalize", "PMID 1"),
    }
    for pmid, (data, _, _) in hostile.items():
        corpus.put(pmid, data)
    escapes = {
        901: "s3://reingest/../escaped.json.gz",
        902: "s3://reingest/raw/../../../escaped.json.gz",
        903: "s3://reingest//etc/passwd",
        904: "/etc/passwd",
        905: f"file://{secret}",
        906: "s3://../escaped.json.gz",
        907: "raw/%2e%2e/%2e%2e/escaped.json.gz",  # percent-encoding is not decoded: not found
    }
    for pmid, uri in escapes.items():
        register_uri(pipeline, pmid, uri)

    norm, chunks = run(pipeline)

    failures = open_failures(pg_url)
    assert set(failures) == {f"pubmed:{p}" for p in (*hostile, *escapes)}
    for pmid, (_, stage, word) in hostile.items():
        got_stage, kind, message = failures[f"pubmed:{pmid}"]
        assert (got_stage, kind) == (stage, "data"), (pmid, failures[f"pubmed:{pmid}"])
        assert word in message, (pmid, message)
    for pmid in escapes:
        stage, _, message = failures[f"pubmed:{pmid}"]
        assert stage == "fetch", (pmid, message)
        assert any(w in message for w in ("refused", "unsupported", "not found")), message
    # Nothing was resolved, fetched from outside, or leaked into a message.
    assert all(SECRET not in m and "root:" not in m for _, _, m in failures.values())
    assert chunks["docs_written"] == 20 and norm["docs_failed"] == len(hostile) + len(escapes)
    stored = store_snapshot(pg_url)
    assert {row[1] for row in stored} == {f"pubmed:{p}" for p in range(1, 21)}
    assert not any(SECRET in row[2] for row in stored)
    print(f"\nhostile inputs tried: {len(hostile) + len(escapes)}; all recorded, 20 good landed")


def test_sql_metacharacters_in_source_and_partition_key_are_only_parameters(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 6):
        corpus.put_record(record(pmid), source=EVIL_SOURCE)
    corpus.put(6, b"{not json", source=EVIL_SOURCE)
    part = Partition.from_key(f"{DAY}|{EVIL_SOURCE}")
    assert part.source == EVIL_SOURCE

    norm, chunks = run(pipeline, part)

    assert chunks["docs_written"] == 5 and norm["docs_failed"] == 1
    assert {row[1] for row in store_snapshot(pg_url)} == {f"{EVIL_SOURCE}:{p}" for p in range(1, 6)}
    assert open_failures(pg_url)[f"{EVIL_SOURCE}:6"][0] == "parse"
    with pytest.raises(ValueError, match="isoformat"):
        run(pipeline, Partition("pubmed", "2026-11-03'; DROP TABLE documents;--"))
    with psycopg.connect(pg_url) as conn:  # every table is still there, rows intact
        (documents,) = conn.execute("SELECT count(*) FROM documents").fetchone()  # type: ignore[misc]
        (ledger,) = conn.execute("SELECT count(*) FROM reingest.ledger").fetchone()  # type: ignore[misc]
    assert (documents, ledger) == (6, 5)


# -- isolation: one document's failure is that document's, never its batch's or its source's --


# uid "pubmed:<2,643 digits>": 2,650 bytes, which fit the registry's indexes but not the
# ledger's. Random digits: Postgres compresses an index row that repeats itself.
LONG_PMID = int("".join(random.Random(16).choices("123456789", k=2643)))


def put_long_record(p: Pipeline) -> str:
    """The record of LONG_PMID (whose PMID is too long for a file name) at a short key."""
    uri = "s3://reingest/raw/pubmed/long.json.gz"
    p.objects.put(uri, gzip.compress(json.dumps(record(LONG_PMID, title="Long PMID")).encode()))
    return register_uri(p, LONG_PMID, uri)


def ledger_and_chunks(url: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(url) as conn:
        ledger = {u for (u,) in conn.execute("SELECT uid FROM reingest.ledger").fetchall()}
        chunks = {
            u
            for (u,) in conn.execute(
                "SELECT DISTINCT parent_uid FROM reingest.document_chunk_v2"
            ).fetchall()
        }
    return ledger, chunks


def test_an_overlong_registry_uid_is_refused_up_front_and_the_source_goes_on(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 21):
        corpus.put_record(record(pmid))
    long_uid = put_long_record(pipeline)

    for attempt in range(2):  # and the next run neither crashes nor retries it
        norm, chunks = run(pipeline)
        assert chunks["docs_written"] == (20 if attempt == 0 else 0)

    stage, kind, message = open_failures(pg_url)[long_uid]
    assert (stage, kind) == ("fetch", "data")
    assert "uid is 2650 bytes, over the 1024-byte limit" in message
    ledger, with_chunks = ledger_and_chunks(pg_url)
    assert ledger == with_chunks == {f"pubmed:{p}" for p in range(1, 21)}
    assert norm["docs_skipped"] == 21  # the refused document is not fetched again


def test_a_row_the_ledger_refuses_fails_alone_and_leaves_no_chunks(
    pipeline: Pipeline, corpus: Corpus, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the up-front check (raised here), the ledger's own index refuses the uid after its
    chunks were written: the batch is split until that document is alone, its chunks go, and
    the rest of the batch lands."""
    monkeypatch.setattr(limits, "MAX_UID_BYTES", 10_000)
    for pmid in range(1, 21):
        corpus.put_record(record(pmid))
    long_uid = put_long_record(pipeline)
    pipeline.batch_size = 100  # all in one batch

    _, chunks = run(pipeline)

    assert chunks["docs_written"] == 20 and chunks["docs_failed"] == 1
    stage, kind, message = open_failures(pg_url)[long_uid]
    assert (stage, kind) == ("store", "data")
    assert "index row size" in message and "ledger_partition_uid_idx" in message
    ledger, with_chunks = ledger_and_chunks(pg_url)
    assert ledger == with_chunks == {f"pubmed:{p}" for p in range(1, 21)}


def test_the_cli_names_a_refused_statement_not_a_connection_problem() -> None:
    error = psycopg.errors.ProgramLimitExceeded(
        'index row size 2712 exceeds btree version 4 maximum 2704 for index "x"'
    )
    message = explain(error, Settings())
    assert message is not None
    assert "refused a statement" in message and "index row size 2712" in message
    assert "connect" not in message and "REINGEST_HOME" not in message
    assert pg_error_kind(error) == "data"  # not retried in place


# -- the hostile cases (reingest_assets.hostile): budgets, linear time, honest values, integrity


def test_every_hostile_case_ends_as_expected_the_good_land_and_memory_stays_bounded(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    for pmid in range(1, 21):
        corpus.put_record(record(pmid))
    cases = plant(hostile_cases(), pipeline.registry, pipeline.objects, DAY)  # type: ignore[arg-type]
    landing = {uid for uid, case in cases.items() if case.expected is None}

    started = time.perf_counter()
    with PeakMemory(interval=0.05) as peak:
        _, chunks = run(pipeline)
    seconds = time.perf_counter() - started

    assert list(mismatches(cases, open_failures(pg_url))) == []
    ledger, with_chunks = ledger_and_chunks(pg_url)
    assert ledger == with_chunks == {f"pubmed:{p}" for p in range(1, 21)} | landing
    assert chunks["docs_written"] == 20 + len(landing)
    assert peak.peak_tree < 1 << 30, peak.peak_tree
    print(f"\n{len(cases)} hostile cases + 20 good: {seconds:.1f} s, {peak.peak_tree >> 20} MB")


def test_dates_that_say_none_are_null_and_the_ledger_keeps_the_verified_hash(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    zero = gzip.compress(json.dumps(record(7) | {"publication_date": "0000-00-00"}).encode())
    uid = corpus.put(7, zero)

    run(pipeline)

    with psycopg.connect(pg_url) as conn:
        published = conn.execute(
            "SELECT DISTINCT published_at, year FROM reingest.document_chunk_v2"
        ).fetchall()
        (ledger_hash,) = conn.execute(  # type: ignore[misc]
            "SELECT content_hash FROM reingest.ledger WHERE uid = %s", (uid,)
        ).fetchone()
    assert published == [(None, None)]
    assert ledger_hash == hashlib.sha256(zero).hexdigest()  # what was read, checked


def test_an_object_whose_bytes_do_not_match_the_registry_hash_is_not_ingested(
    pipeline: Pipeline, corpus: Corpus, pg_url: str
) -> None:
    uid = corpus.put_record(record(3))
    # Another object is uploaded at the key afterwards; the registry still describes the first.
    pipeline.objects.put(
        "s3://reingest/raw/pubmed/3.json.gz", gzip.compress(json.dumps(record(4)).encode())
    )

    _, chunks = run(pipeline)

    stage, kind, message = open_failures(pg_url)[uid]
    assert (stage, kind) == ("fetch", "transient")  # re-uploading the right bytes fixes it
    assert "object bytes do not match the registry" in message
    assert chunks["docs_written"] == 0 and ledger_and_chunks(pg_url) == (set(), set())


@pytest.mark.timeout(60)
def test_a_named_pipe_in_the_store_is_refused_without_blocking(
    pipeline: Pipeline, pg_url: str
) -> None:
    cases = plant(
        [(5, HostileCase("fifo", None, None, special="fifo"))],
        pipeline.registry,
        pipeline.objects,  # type: ignore[arg-type]
        DAY,
    )
    run(pipeline)  # used to block forever in open()
    [uid] = cases
    stage, kind, message = open_failures(pg_url)[uid]
    assert (stage, kind) == ("fetch", "data") and "a named pipe, not a regular file" in message

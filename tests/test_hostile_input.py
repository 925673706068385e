"""Hostile input through the real engine and registry: every bad record becomes a failure row
with its stage and a reason; the rest of the partition lands; nothing escapes or is injected."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard

from reingest_assets.engine.runner import Partition, Pipeline, chunk_partition, normalize_partition
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

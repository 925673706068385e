"""Hostile documents, each with the failure it must become (or the fact that it lands), and
``python -m reingest_assets.hostile``: them mixed with good synthetic documents through the
engine on the embedded stack, printing wall time, peak memory and any case that did not end as
expected.

The tests (tests/test_hostile_input.py) run the same cases; keep adding to them.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gzip
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from reingest_assets.domain.failures import Kind, Stage
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry import DocumentRegistry
from reingest_assets.resources.registry.postgres import PostgresRegistry

FIRST_PMID = 90_000_000
WORDS = "gene expression was measured in airway epithelium of patients with asthma "


@dataclass(frozen=True)
class Expected:
    stage: Stage
    kind: Kind
    reason: str  # a phrase the failure's message holds


@dataclass(frozen=True)
class HostileCase:
    name: str
    # The raw object's bytes (None: the case plants something else at the key, or nothing).
    data: bytes | None
    expected: Expected | None  # None: the document lands
    uid: str | None = None  # another registry uid than pubmed:<pmid>
    registry_hash: str | None = None  # another content_hash than the sha256 of ``data``
    special: str | None = None  # "fifo" or "socket" in place of the object


def _words(chars: int) -> str:
    return (WORDS * (chars // len(WORDS) + 1))[:chars].strip()


def _record(pmid: int, **fields: Any) -> dict[str, Any]:
    return {
        "pmid": str(pmid),
        "title": f"Hostile case {pmid}",
        "abstract": f"{_words(600)}. A second sentence closes it.",
        "authors": ["Doe J"],
        "journal": "Journal of Tests",
        "mesh_terms": ["Asthma"],
        "publication_date": "2024-05-01",
    } | fields


def _json(pmid: int, **fields: Any) -> bytes:
    return gzip.compress(orjson.dumps(_record(pmid, **fields)))


def hostile_cases(first_pmid: int = FIRST_PMID) -> list[tuple[int, HostileCase]]:
    """(pmid, case) for every case, PMIDs from ``first_pmid``."""
    long_uid_digits = "".join(str((i * 7919) % 9 + 1) for i in range(2643))
    utf16 = (
        '<?xml version="1.0" encoding="UTF-16"?><PubmedArticle><MedlineCitation>'
        "<PMID>{pmid}</PMID><Article><ArticleTitle>Caf\u00e9 \u6e2c\u8a66</ArticleTitle>"
        "<Abstract><AbstractText>An abstract.</AbstractText></Abstract></Article>"
        "</MedlineCitation></PubmedArticle>"
    )
    builders: list[Callable[[int], HostileCase]] = [
        lambda p: HostileCase(
            "1 MB title",
            _json(p, title=_words(1_000_000)),
            Expected("normalize", "data", "over the limit of 2,000 (max_title_chars)"),
        ),
        lambda p: HostileCase(
            "100,000 MeSH terms",
            _json(p, mesh_terms=[f"Term {i}" for i in range(100_000)]),
            Expected("normalize", "data", "REINGEST_MAX_MESH_TERMS"),
        ),
        lambda p: HostileCase(
            "30,000 authors",
            _json(p, authors=[f"Author {i}" for i in range(30_000)]),
            Expected("normalize", "data", "REINGEST_MAX_AUTHORS"),
        ),
        lambda p: HostileCase(
            "10,000-character journal",
            _json(p, journal=_words(10_000)),
            Expected("normalize", "data", "REINGEST_MAX_FIELD_CHARS"),
        ),
        lambda p: HostileCase(
            "400 KB abstract, no sentence break", _json(p, abstract=_words(400_000)), None
        ),
        lambda p: HostileCase(
            "3 MB abstract: too many chunks",
            _json(p, abstract=_words(3_000_000)),
            Expected("chunk", "data", "REINGEST_MAX_CHUNKS"),
        ),
        lambda p: HostileCase(
            "title and MeSH repeated in every chunk",
            _json(
                p,
                title=_words(1_900),
                mesh_terms=[f"{i} {_words(900)}" for i in range(199)],
                abstract=_words(80_000),
            ),
            Expected("chunk", "data", "REINGEST_MAX_REPEATED_CHARS"),
        ),
        lambda p: HostileCase(
            "gzip of 5,000 tiny members",
            b"".join(gzip.compress(b" ") for _ in range(4_999)) + _json(p),
            Expected("parse", "data", "REINGEST_MAX_GZIP_MEMBERS"),
        ),
        lambda p: HostileCase(
            "gzip whose last member is empty", _json(p) + gzip.compress(b""), None
        ),
        lambda p: HostileCase("UTF-16 XML with a BOM", utf16.format(pmid=p).encode("utf-16"), None),
        lambda p: HostileCase(
            "date 2024-13-45",
            _json(p, publication_date="2024-13-45"),
            Expected("normalize", "data", "2024-13-45 is not a real date"),
        ),
        lambda p: HostileCase(
            "date 2023-02-29",
            _json(p, publication_date="2023-02-29"),
            Expected("normalize", "data", "day 29 of month 2 does not exist"),
        ),
        lambda p: HostileCase(
            "date 0000-00-00 (none)", _json(p, publication_date="0000-00-00"), None
        ),
        lambda p: HostileCase(
            "PMID in Arabic-Indic digits",
            gzip.compress(json.dumps(_record(p) | {"pmid": "\u0661\u0662\u0663"}).encode()),
            Expected("normalize", "data", "is not numeric"),
        ),
        lambda p: HostileCase(
            "bytes that do not match the registry's hash",
            _json(p),
            Expected("fetch", "transient", "object bytes do not match the registry"),
            registry_hash=hashlib.sha256(b"other bytes").hexdigest(),
        ),
        lambda p: HostileCase(
            "named pipe as the object",
            None,
            Expected("fetch", "data", "a named pipe, not a regular file"),
            special="fifo",
        ),
        lambda p: HostileCase(
            "socket as the object",
            None,
            Expected("fetch", "data", "not a regular file"),
            special="socket",
        ),
        lambda p: HostileCase(
            "2,650-byte uid",
            _json(p),
            Expected("fetch", "data", "uid is 2650 bytes, over the 1024-byte limit"),
            uid=f"pubmed:{long_uid_digits}",
        ),
        lambda p: HostileCase(
            "uid with a control character",
            _json(p),
            Expected("fetch", "data", "U+0007"),
            uid=f"pubmed:{p}\x07",
        ),
    ]
    return [(first_pmid + i, build(first_pmid + i)) for i, build in enumerate(builders)]


def plant(
    cases: list[tuple[int, HostileCase]],
    registry: DocumentRegistry,
    objects: LocalObjectStore,
    day: str,
) -> dict[str, HostileCase]:
    """Write the cases' objects and registry rows; returns them by uid. Sockets stay bound
    until the process ends (a socket file needs a live socket to be one)."""
    stamp = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    rows = []
    by_uid = {}
    for pmid, case in cases:
        uri = f"s3://{objects.bucket}/raw/hostile/{pmid}.json.gz"
        path = objects.root / objects.bucket / "raw" / "hostile" / f"{pmid}.json.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        if case.data is not None:
            objects.put(uri, case.data)
        elif case.special == "fifo":
            os.mkfifo(path)
        elif case.special == "socket":
            # Bound at a short path (AF_UNIX paths are short), then moved to the object's.
            short = Path(tempfile.mkdtemp()) / "s"
            _SOCKETS.append(socket.socket(socket.AF_UNIX))
            _SOCKETS[-1].bind(str(short))
            os.replace(short, path)
            short.parent.rmdir()
        uid = case.uid or f"pubmed:{pmid}"
        content_hash = case.registry_hash or hashlib.sha256(case.data or b"").hexdigest()
        rows.append((uid, "pubmed", str(pmid), None, None, uri, content_hash, stamp, stamp))
        by_uid[uid] = case
    registry.upsert_documents(rows)
    return by_uid


_SOCKETS: list[socket.socket] = []


def mismatches(
    by_uid: dict[str, HostileCase], failures: dict[str, tuple[str, str, str]]
) -> Iterator[str]:
    """Every case whose outcome is not the expected one. ``failures``: open failure rows by
    uid, as (stage, kind, message)."""
    for uid, case in by_uid.items():
        got = failures.get(uid)
        if case.expected is None:
            if got is not None:
                yield f"{case.name}: expected to land, failed: {got}"
            continue
        want = case.expected
        if got is None:
            yield f"{case.name}: expected a {want.stage} failure, got none"
        elif got[:2] != (want.stage, want.kind) or want.reason not in got[2]:
            yield f"{case.name}: expected {want}, got {got}"


def _gzip_members(count: int) -> bytes:
    member = gzip.compress(b"x")
    return member * count


def _abstract_document(text: str) -> Any:
    from reingest_assets.domain.document import Document, Section

    return Document("pubmed:1", "pubmed", "1", "Title", (Section(None, text),))


def growth_inputs() -> dict[str, tuple[Callable[[int], Any], Callable[[Any], object]]]:
    """name: (an input of about n bytes, the operation on it) for what must be linear."""
    from reingest_assets.domain.chunker import chunk_document, split_sentences
    from reingest_assets.domain.limits import DocumentLimits
    from reingest_assets.domain.raw import decode_raw

    unlimited = DocumentLimits(max_chunks=10**9, max_repeated_chars=10**12)
    chunk = functools.partial(chunk_document, limits=unlimited)

    return {
        "gunzip, 21-byte members": (
            lambda n: _gzip_members(n // 21),
            lambda data: decode_raw(data, max_members=10**9),
        ),
        "chunk, no sentence break": (
            lambda n: _abstract_document(_words(n)),
            chunk,
        ),
        "chunk, no whitespace": (
            lambda n: _abstract_document("x" * n),
            chunk,
        ),
        "split sentences": (
            lambda n: ("Word. " * (n // 6)).strip(),
            split_sentences,
        ),
    }


def seconds_for(make: Callable[[int], Any], operation: Callable[[Any], object], n: int) -> float:
    """The fastest of three runs of ``operation`` on an input of size ``n`` (the least noisy
    measure on a shared machine)."""
    data = make(n)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        operation(data)
        best = min(best, time.perf_counter() - started)
    return best


def open_failures(database_url: str) -> dict[str, tuple[str, str, str]]:
    """The open failure rows by uid: (stage, kind, message)."""
    registry = PostgresRegistry(database_url)
    try:
        rows = registry.conn.execute(
            "SELECT uid, stage, kind, message FROM reingest.ingestion_failures"
            " WHERE resolved_at IS NULL"
        ).fetchall()
    finally:
        registry.close()
    return {uid: (stage, kind, message) for uid, stage, kind, message in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reingest_assets.hostile",
        description="The hostile cases mixed with good synthetic documents, through the engine "
        "on a fresh embedded stack: wall time and peak memory of the process tree.",
    )
    parser.add_argument("--good", type=int, default=2000, help="good documents (default 2000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--growth",
        action="store_true",
        help="instead: seconds of what must be linear at 0.25, 0.5, 1 and 2 MB of input",
    )
    args = parser.parse_args(argv)
    if args.growth:
        for name, (make, operation) in growth_inputs().items():
            timings = {
                f"{n >> 10} KiB": round(seconds_for(make, operation, n), 3)
                for n in (1 << 18, 1 << 19, 1 << 20, 1 << 21)
            }
            print(json.dumps({name: timings}))
        return 0

    from reingest_assets.bench import PeakMemory
    from reingest_assets.engine.runner import (
        Partition,
        Pipeline,
        chunk_partition,
        normalize_partition,
    )
    from reingest_assets.resources.embedded_pg import embedded_postgres_url
    from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
    from reingest_assets.settings import Settings
    from reingest_assets.stack import Stack, load_synthetic_corpus

    day = date(2026, 11, 3)
    home = Path(tempfile.mkdtemp(prefix="reingest-hostile-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)  # after the server stops
    os.environ["REINGEST_HOME"] = str(home)
    os.environ.pop("REINGEST_DATABASE_URL", None)
    settings = Settings()
    stack = Stack(settings, embedded_postgres_url(settings.pg_dir, delete_on_exit=True))
    good = load_synthetic_corpus(stack, args.good, first_day=day, days=1)
    registry = PostgresRegistry(stack.database_url)
    objects = LocalObjectStore(stack.settings.objects_dir, bucket=stack.settings.bucket)
    by_uid = plant(hostile_cases(), registry, objects, day.isoformat())
    store = PgVectorChunkStore(stack.database_url)
    store.ensure_schema()
    pipeline = Pipeline(
        registry=registry,
        objects=objects,
        store=store,
        run_id="hostile",
        workers=args.workers,
        log=lambda _line: None,
    )
    part = Partition("pubmed", day.isoformat())
    started = time.perf_counter()
    with PeakMemory() as peak:
        try:
            normalized = normalize_partition(pipeline, part)
            chunked = chunk_partition(pipeline, part)
        finally:
            pipeline.close()
    seconds = time.perf_counter() - started
    failures = open_failures(stack.database_url)
    wrong = list(mismatches(by_uid, failures))
    landed_cases = sum(case.expected is None for case in by_uid.values())
    report = {
        "good_documents": good,
        "hostile_cases": len(by_uid),
        "docs_written": chunked.docs_written,
        "expected_written": good + landed_cases,
        "failures_by_stage": dict(
            Counter(normalized.failures_by_stage) + Counter(chunked.failures_by_stage)
        ),
        "wall_seconds": round(seconds, 1),
        "peak_process_tree_mb": round(peak.peak_tree / 2**20),
        "mismatches": wrong,
    }
    print(json.dumps(report, indent=2))
    ok = not wrong and chunked.docs_written == good + landed_cases
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The validation checks: a per-partition report that passes on a healthy partition and fails,
naming the offenders, on one whose chunks were deleted behind the pipeline's back."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import AssetSelection, DagsterInstance, TableMetadataValue, materialize

from reingest_assets.assets import document_chunks_v2, normalized_documents
from reingest_assets.checks import document_chunks_v2_validation
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.engine.runner import Partition
from reingest_assets.engine.validation import _Reservoir, validate_partition
from reingest_assets.metadata import plain
from reingest_assets.resources.local_store import LocalObjectStore
from reingest_assets.resources.registry import LedgerEntry
from reingest_assets.resources.registry.postgres import PostgresRegistry
from reingest_assets.resources.stores.pgvector import PgVectorChunkStore
from support.modes import make_corpus, make_resource
from support.pipeline import Corpus, record, store_snapshot

KEY = "2026-11-03|pubmed"
ASSETS = [normalized_documents, document_chunks_v2, document_chunks_v2_validation]


@pytest.fixture
def corpus(corpus: Corpus) -> Corpus:
    """The shared corpus with 30 documents of 3 to 27 sentences."""
    for pmid in range(1, 31):
        corpus.put_record(record(pmid, sentences=3 + pmid % 25))
    return corpus


def evaluations(result: Any) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.partition == KEY}


def validate(reingest: ReingestResource, instance: DagsterInstance) -> Any:
    """The checks alone, as validate_job and the UI's "Execute checks" run them."""
    return materialize(
        ASSETS,
        selection=AssetSelection.checks_for_assets(document_chunks_v2),
        resources={"reingest": reingest},
        instance=instance,
        tags={"dagster/partition": KEY},
        raise_on_error=False,
    )


def test_a_healthy_partition_passes_every_check_in_the_materializing_run(
    reingest: ReingestResource, corpus: Corpus
) -> None:
    result = materialize(
        ASSETS,
        partition_key=KEY,
        resources={"reingest": reingest},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    checks = evaluations(result)
    assert set(checks) == {
        "completeness",
        "uuid_determinism",
        "token_bounds",
        "title_once",
        "metadata_present",
        "failure_rate",
    }
    assert all(c.passed for c in checks.values())
    assert checks["completeness"].metadata["registry_documents"].value == 30
    assert checks["uuid_determinism"].metadata["sampled_documents"].value == 20


def test_chunks_deleted_behind_the_pipeline_fail_completeness_with_the_offenders(
    reingest: ReingestResource, corpus: Corpus, pg_url: str
) -> None:
    instance = DagsterInstance.ephemeral()
    assert materialize(
        ASSETS, partition_key=KEY, resources={"reingest": reingest}, instance=instance
    ).success
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "DELETE FROM reingest.document_chunk_v2 WHERE parent_uid IN ('pubmed:7', 'pubmed:12')"
        )
    before = store_snapshot(pg_url)

    result = validate(reingest, instance)
    assert not result.success  # blocking ERROR check: the run fails, downstream would not run
    checks = evaluations(result)
    completeness = checks["completeness"]
    assert not completeness.passed and completeness.severity.value == "ERROR"
    assert isinstance(completeness.metadata["offenders"], TableMetadataValue)
    offenders = plain(completeness.metadata["offenders"])
    assert sorted(offenders["documents_missing_chunks"]) == ["pubmed:12", "pubmed:7"]
    assert completeness.metadata["documents_missing_chunks"].value == 2
    assert checks["token_bounds"].passed and checks["uuid_determinism"].passed
    assert store_snapshot(pg_url) == before  # validation writes nothing


def test_orphan_and_malformed_chunks_are_named(pg_url: str, tmp_path: Path) -> None:
    corpus = make_corpus(pg_url, tmp_path)
    for pmid in range(1, 6):
        corpus.put_record(record(pmid, sentences=60))
    reingest = make_resource(pg_url, tmp_path)
    assert materialize(
        ASSETS[:2],
        partition_key=KEY,
        resources={"reingest": reingest},
        instance=DagsterInstance.ephemeral(),
    ).success
    with psycopg.connect(pg_url) as conn:
        # A foreign chunk under pubmed:2, a second title header in pubmed:3's chunk 1, an
        # over-long chunk and an empty one in pubmed:4.
        conn.execute(
            "INSERT INTO reingest.document_chunk_v2 SELECT gen_random_uuid(), parent_uid, source,"
            " title, text, section, published_at, year, tokens, n_sentences, quality_total, meta,"
            " vector FROM reingest.document_chunk_v2 WHERE parent_uid = 'pubmed:2' LIMIT 1"
        )
        conn.execute(
            "UPDATE reingest.document_chunk_v2 SET text = '[Title] again ' || text"
            " WHERE parent_uid = 'pubmed:3' AND (meta->>'chunk_index')::int = 1"
        )
        conn.execute(
            "UPDATE reingest.document_chunk_v2 SET tokens = 451"
            " WHERE parent_uid = 'pubmed:4' AND (meta->>'chunk_index')::int = 0"
        )
        conn.execute(
            "UPDATE reingest.document_chunk_v2 SET text = ' '"
            " WHERE parent_uid = 'pubmed:4' AND (meta->>'chunk_index')::int = 1"
        )
    registry = PostgresRegistry(pg_url)
    store = PgVectorChunkStore(pg_url)
    report = validate_partition(
        registry,
        store,
        LocalObjectStore(tmp_path / "objects"),
        Partition.from_key(KEY),
        sample_size=5,
    )
    checks = {c.name: c for c in report.checks}
    assert not report.passed
    assert checks["completeness"].counts["orphan_chunks"] == 1
    assert checks["uuid_determinism"].counts["uuid_formula_mismatch"] == 1  # the foreign uuid
    assert checks["title_once"].counts["repeated_title"] == 1
    assert checks["token_bounds"].counts["over_max_tokens"] == 1
    assert checks["token_bounds"].counts["empty_chunks"] == 1
    assert checks["metadata_present"].passed and checks["failure_rate"].passed


def test_failure_rate_over_the_threshold_warns(pg_url: str, tmp_path: Path) -> None:
    corpus = make_corpus(pg_url, tmp_path)
    for pmid in range(1, 20):
        corpus.put_record(record(pmid))
    corpus.put(99, b'{"pmid": "99", "title": "truncated')
    reingest = make_resource(pg_url, tmp_path)
    result = materialize(
        ASSETS,
        partition_key=KEY,
        resources={"reingest": reingest},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success  # a WARN does not block
    checks = evaluations(result)
    assert not checks["failure_rate"].passed and checks["failure_rate"].severity.value == "WARN"
    assert checks["completeness"].passed  # the failed document is accounted for, not missing


def test_a_runs_checks_cover_every_chunk_id_it_wrote_and_the_content_of_a_sample(
    pg_url: str, tmp_path: Path
) -> None:
    corpus = make_corpus(pg_url, tmp_path)
    for pmid in range(1, 11):
        corpus.put_record(record(pmid, sentences=60))
    reingest = make_resource(pg_url, tmp_path)
    run = materialize(
        ASSETS[:2],
        partition_key=KEY,
        resources={"reingest": reingest},
        instance=DagsterInstance.ephemeral(),
    )
    assert run.success
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "DELETE FROM reingest.document_chunk_v2"
            " WHERE parent_uid = 'pubmed:7' AND (meta->>'chunk_index')::int = 1"
        )
        conn.execute("UPDATE reingest.document_chunk_v2 SET tokens = 451")
        chunks_per_doc = conn.execute(
            "SELECT count(*) FROM reingest.document_chunk_v2 WHERE parent_uid = 'pubmed:1'"
        ).fetchone()

    def checks(content_sample: int) -> dict[str, Any]:
        report = validate_partition(
            PostgresRegistry(pg_url),
            PgVectorChunkStore(pg_url),
            LocalObjectStore(tmp_path / "objects"),
            Partition.from_key(KEY),
            sample_size=0,
            content_sample=content_sample,
            run_id=run.run_id,
        )
        return {c.name: c for c in report.checks}

    sampled = checks(content_sample=1)
    # every chunk id the run wrote is checked, so the deleted chunk is found...
    assert sampled["completeness"].counts["missing_chunks"] == 1
    assert sampled["completeness"].samples["documents_missing_chunks"] == ["pubmed:7"]
    # ...while content is read for the sampled document only
    assert chunks_per_doc is not None
    assert sampled["token_bounds"].counts["checked_chunks"] in (
        chunks_per_doc[0],
        chunks_per_doc[0] - 1,
    )
    assert (
        sampled["token_bounds"].counts["over_max_tokens"]
        == sampled["token_bounds"].counts["checked_chunks"]
    )

    everything = checks(content_sample=10)
    assert everything["token_bounds"].counts["over_max_tokens"] == 10 * chunks_per_doc[0] - 1


def test_the_content_sample_is_uniform_over_the_written_documents() -> None:
    entries = [
        LedgerEntry(f"pubmed:{i}", "pubmed", "2026-11-01", "h", "c", "e", []) for i in range(50)
    ]
    picked: Counter[str] = Counter()
    for seed in range(4000):
        sample = _Reservoir(5, random.Random(seed))
        for page in (entries[:3], entries[3:20], entries[20:21], entries[21:]):  # pages vary
            sample.offer(page)
        assert len({e.uid for e in sample.items}) == 5
        picked.update(e.uid for e in sample.items)
    # each document is in 5/50 of the samples: 400 of 4,000, standard deviation 19
    assert set(picked) == {e.uid for e in entries}
    assert all(300 < n < 500 for n in picked.values()), picked.most_common(3)
    small = _Reservoir(5, random.Random(0))
    small.offer(entries[:3])
    assert small.items == entries[:3]

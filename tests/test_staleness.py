"""Staleness in the Dagster UI follows the data through the whole chain: a change in the
registry, once observed, marks both normalized_documents and document_chunks_v2 stale for that
partition (what ``reingest status`` says too), and a run of the partition makes both fresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test, materialize
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.definitions.observe import observe  # not re-exported at the top level
from dagster._core.loader import LoadingContextForTest

from reingest_assets.assets import document_chunks_v2, normalized_documents, raw_documents
from reingest_assets.dagster_resources import ReingestResource
from reingest_assets.definitions import defs
from reingest_assets.domain.chunker import CHUNKER_VERSION
from support.pipeline import Corpus, record

KEY = "2026-11-03|pubmed"
OTHER = "2026-11-04|pubmed"
CHAIN = ("normalized_documents", "document_chunks_v2")


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def statuses(instance: DagsterInstance, partition: str) -> dict[str, StaleStatus]:
    """What the UI shows for each asset of the chain in this partition (its GraphQL resolves
    stale status with this resolver over the code location's asset graph)."""
    resolver = CachingStaleStatusResolver(
        instance, defs.get_repository_def().asset_graph, LoadingContextForTest(instance)
    )
    return {name: resolver.get_status(AssetKey(name), partition) for name in CHAIN}


def status_says_stale(corpus: Corpus, partition: str) -> bool:
    """``reingest status``'s stale column: documents a run would still write."""
    day, source = partition.split("|")
    counts = corpus.registry.partition_status(
        "pgvector:reingest.document_chunk_v2",
        [source],
        day,
        day,
        chunker_version=CHUNKER_VERSION,
        embedder_id="none",
    )
    return counts[partition].pending > 0


def observe_registry(instance: DagsterInstance, reingest: ReingestResource) -> None:
    assert observe([raw_documents], resources={"reingest": reingest}, instance=instance).success


def run(instance: DagsterInstance, reingest: ReingestResource, partition: str) -> None:
    assert materialize(
        [raw_documents, normalized_documents, document_chunks_v2],
        selection=[normalized_documents, document_chunks_v2],
        partition_key=partition,
        resources={"reingest": reingest},
        instance=instance,
    ).success


def test_a_registry_change_makes_the_whole_chain_stale_until_it_runs(
    instance: DagsterInstance, reingest: ReingestResource, corpus: Corpus
) -> None:
    corpus.put_record(record(1))
    corpus.put_record(record(2), day="2026-11-04")
    observe_registry(instance, reingest)
    for partition in (KEY, OTHER):
        run(instance, reingest, partition)
    fresh = {name: StaleStatus.FRESH for name in CHAIN}
    assert statuses(instance, KEY) == fresh
    assert not status_says_stale(corpus, KEY)

    observe_registry(instance, reingest)  # nothing changed: nothing turns stale
    assert statuses(instance, KEY) == fresh

    corpus.put_record(record(1, sentences=2))  # an edited document, then the hourly observation
    observe_registry(instance, reingest)
    assert statuses(instance, KEY) == {name: StaleStatus.STALE for name in CHAIN}
    assert status_says_stale(corpus, KEY)
    assert statuses(instance, OTHER) == fresh

    run(instance, reingest, KEY)
    assert statuses(instance, KEY) == fresh
    assert not status_says_stale(corpus, KEY)

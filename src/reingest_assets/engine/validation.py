"""Validation of one partition of DocumentChunk_v2: the checks behind the Dagster asset checks
and ``reingest validate``. Read-only.

One streaming pass over the partition's registry rows in pages: each page costs one ledger
lookup, one failure lookup and one store fetch, so memory stays bounded whatever the partition
size. Offenders are counted in full but only a bounded sample of their ids is kept. The UUID
recomputation from the source (fetch, normalize, chunk) runs on a reservoir sample of documents.

Two depths. A whole-partition validation (``validate_job``, "Execute checks", ``reingest
validate``, cutover) reads every chunk. The check inside a materializing run (``run_id``) reads
the ids of every chunk the run wrote (completeness is exact) but the content of a random sample
of its documents only (``content_sample``): reading every chunk back cost a quarter of a full
load, for checks of properties the chunker gives by construction.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reingest_assets.domain.chunker import CHUNKER_VERSION, ChunkerConfig, count_tokens_reference
from reingest_assets.domain.failures import Failure
from reingest_assets.engine.damage import (
    EMPTY,
    MISSING_METADATA,
    OVER_MAX_TOKENS,
    REPEATED_TITLE,
    UUID_FORMULA,
    chunk_problems,
)
from reingest_assets.engine.runner import Partition, fetch_raw
from reingest_assets.engine.workers import (
    ChunkedItem,
    NormalizedItem,
    chunk_rows,
    normalize_items,
    slices,
)
from reingest_assets.resources.object_store import ObjectStore
from reingest_assets.resources.registry import LedgerEntry, Registry, RegistryRow
from reingest_assets.resources.stores import ChunkStore, StoredChunk

SAMPLE_LIMIT = 10  # offender ids kept per kind of problem

Severity = Literal["error", "warn"]

CHECKS: dict[str, tuple[Severity, str]] = {
    "completeness": (
        "error",
        "every registry document is in the ledger (or has a recorded failure) and the store "
        "holds exactly the ledger's chunks: no missing documents, no missing or orphan chunks",
    ),
    "uuid_determinism": (
        "error",
        "chunk UUIDs are uuid5(namespace, parent_uid:chunk_id), and re-chunking a sample of "
        "documents from their raw source gives the stored UUIDs",
    ),
    "token_bounds": (
        "error",
        "every chunk has text and between 1 and max_tokens tokens (recounted on the sample by "
        "tiktoken itself)",
    ),
    "title_once": ("error", "the [Title] header appears in the first chunk of a document only"),
    "metadata_present": (
        "error",
        "every chunk has parent_uid, source and meta with chunk_id, chunk_index, "
        "chunker_version, tokenizer and max_tokens",
    ),
    "failure_rate": (
        "warn",
        "unresolved ingestion failures stay under the configured share of the partition's "
        "documents",
    ),
}


@dataclass
class Offenders:
    """How many of something went wrong, with the first few ids."""

    count: int = 0
    sample: list[str] = field(default_factory=list)

    def add(self, ids: Iterable[str]) -> None:
        for i in ids:
            self.count += 1
            if len(self.sample) < SAMPLE_LIMIT:
                self.sample.append(i)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: Severity
    summary: str
    counts: dict[str, float]
    samples: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "severity": self.severity,
            "summary": self.summary,
            "counts": self.counts,
            "samples": self.samples,
        }


@dataclass(frozen=True)
class PartitionValidation:
    partition: str
    documents: int
    checks: list[CheckOutcome]

    @property
    def passed(self) -> bool:
        return all(c.passed or c.severity == "warn" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "documents": self.documents,
            "passed": self.passed,
            "checks": [c.as_dict() for c in self.checks],
        }


class _Reservoir:
    """A uniform random sample of at most ``size`` of the ledger entries offered, in O(size)
    memory. Algorithm L: it draws random numbers only for the entries it takes, about
    size * log(offered / size) of them, not one per document."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rng = rng
        self.items: list[LedgerEntry] = []
        self.offered = 0
        self._weight = 1.0
        self._next = size - 1  # the last filling entry, then (see _advance) the next to take

    def offer(self, entries: Sequence[LedgerEntry]) -> None:
        start = self.offered
        self.offered += len(entries)
        room = min(self.size - len(self.items), len(entries))
        if room > 0:
            self.items += entries[:room]
            if len(self.items) == self.size:
                self._advance()
        while self.size and self._next < self.offered:
            self.items[self.rng.randrange(self.size)] = entries[self._next - start]
            self._advance()

    def _advance(self) -> None:
        # 1 - random() is in (0, 1]: log never sees 0.
        self._weight *= math.exp(math.log(1.0 - self.rng.random()) / self.size)
        skip = math.floor(math.log(1.0 - self.rng.random()) / math.log1p(-self._weight))
        self._next += skip + 1


@dataclass
class _Tally:
    documents: int = 0
    ledger_documents: int = 0
    chunks: int = 0
    checked_chunks: int = 0  # chunks whose content was checked
    failed_documents: int = 0
    missing_documents: Offenders = field(default_factory=Offenders)
    documents_missing_chunks: Offenders = field(default_factory=Offenders)
    missing_chunks: Offenders = field(default_factory=Offenders)
    orphan_chunks: Offenders = field(default_factory=Offenders)
    ledger_without_registry: Offenders = field(default_factory=Offenders)
    uuid_formula: Offenders = field(default_factory=Offenders)
    recomputed_mismatch: Offenders = field(default_factory=Offenders)
    recompute_failed: Offenders = field(default_factory=Offenders)
    empty_chunks: Offenders = field(default_factory=Offenders)
    over_max_tokens: Offenders = field(default_factory=Offenders)
    token_count_mismatch: Offenders = field(default_factory=Offenders)
    repeated_title: Offenders = field(default_factory=Offenders)
    missing_metadata: Offenders = field(default_factory=Offenders)
    sampled_documents: int = 0


def validate_partition(
    registry: Registry,
    store: ChunkStore,
    objects: ObjectStore,
    part: Partition,
    *,
    chunker: ChunkerConfig | None = None,
    sample_size: int = 20,
    content_sample: int = 1000,
    max_failure_rate: float = 0.01,
    batch_size: int = 1000,
    run_id: str | None = None,
) -> PartitionValidation:
    """Run every check of :data:`CHECKS` over one partition, or, given ``run_id``, over the
    documents that run wrote in it (what a materializing run checks: O(written), so a run that
    changed nothing validates nothing again), reading the content of ``content_sample`` of
    them."""
    chunker = chunker or ChunkerConfig()
    tally = _Tally()
    # Seeded by the partition: the same partition re-validated samples the same documents.
    rng = random.Random(part.key)
    if run_id is None:
        sample = _Reservoir(sample_size, rng)
        _check_partition(tally, registry, store, part, batch_size, chunker, sample)
    else:
        sample = _Reservoir(max(sample_size, content_sample), rng)
        _check_run(tally, registry, store, part, batch_size, run_id, sample)
        for page in slices([s.uid for s in sample.items], batch_size):
            _check_chunks(tally, list(store.fetch(page)), chunker.max_tokens)
    tally.ledger_without_registry.add(
        registry.removed_documents(store.target, part.source, part.ingest_date)
    )
    recompute = sample.items
    if len(recompute) > sample_size:
        recompute = rng.sample(recompute, sample_size)
    _recompute_sample(tally, registry, store, objects, part, recompute, chunker)
    counts = registry.failure_counts(part.source, part.ingest_date)
    return PartitionValidation(
        part.key, tally.documents, _outcomes(tally, counts, max_failure_rate, chunker)
    )


def validate_run(
    registry: Registry,
    store: ChunkStore,
    objects: ObjectStore,
    source: str,
    days: Sequence[str],
    run_id: str,
    *,
    chunker: ChunkerConfig | None = None,
    sample_size: int = 20,
    content_sample: int = 1000,
    max_failure_rate: float = 0.01,
    batch_size: int = 1000,
) -> list[PartitionValidation]:
    """What a materializing run checks, set-based over its partitions of one source: the
    partitions among ``days`` where ``run_id`` wrote documents or recorded failures, each
    validated as ``validate_partition(run_id=...)`` does, in one walk of the run's ledger rows.
    Partitions the run did not touch get no validation (nothing of theirs changed). The content
    sample and the recomputed sample are spread over the run's partitions in proportion to what
    it wrote in each, at least one document each: a run over a year of small partitions reads
    about ``content_sample`` documents back, not that many per partition."""
    chunker = chunker or ChunkerConfig()
    wanted = set(days)
    touched = {
        day: n
        for day, n in registry.run_touched_dates(store.target, source, run_id).items()
        if day in wanted
    }
    if not touched:
        return []
    total = max(sum(touched.values()), 1)
    tallies = {day: _Tally() for day in touched}
    rngs = {day: random.Random(Partition(source, day).key) for day in touched}
    recompute_sizes = {day: _share(sample_size, n, total) for day, n in touched.items()}
    samples = {
        day: _Reservoir(max(recompute_sizes[day], _share(content_sample, n, total)), rngs[day])
        for day, n in touched.items()
    }
    for entries in registry.iter_run_ledger(store.target, source, run_id, batch_size=batch_size):
        stored: dict[str, set[str]] = defaultdict(set)
        for uuid, parent_uid in store.fetch_ids([e.uid for e in entries]):
            stored[parent_uid].add(uuid)
        for day, group in itertools.groupby(entries, key=lambda e: e.ingest_date):
            if day not in tallies:
                continue
            tally, sample, group_entries = tallies[day], samples[day], list(group)
            tally.documents += len(group_entries)
            if all(stored.get(e.uid) == set(e.chunk_uuids) for e in group_entries):
                tally.ledger_documents += len(group_entries)
                tally.chunks += sum(len(e.chunk_uuids) for e in group_entries)
                sample.offer(group_entries)
            else:
                for entry in group_entries:
                    _compare(tally, entry, stored.get(entry.uid, set()), sample)
    day_of = {e.uid: day for day, sample in samples.items() for e in sample.items}
    for page in slices(list(day_of), batch_size):
        by_day: dict[str, list[StoredChunk]] = defaultdict(list)
        for chunk in store.fetch(page):
            by_day[day_of[chunk.parent_uid]].append(chunk)
        for day, chunks in by_day.items():
            _check_chunks(tallies[day], chunks, chunker.max_tokens)
    recompute = [
        entry
        for day, sample in samples.items()
        for entry in (
            rngs[day].sample(sample.items, recompute_sizes[day])
            if len(sample.items) > recompute_sizes[day]
            else sample.items
        )
    ]
    first, last = min(touched), max(touched)
    _recompute_entries(tallies, registry, store, objects, source, first, last, recompute, chunker)
    removed = registry.removed_documents_by_date(store.target, source, first, last)
    failures = registry.failure_counts_by_date(source, first, last)
    results = []
    for day in sorted(touched):
        tallies[day].ledger_without_registry.add(removed.get(day, []))
        outcomes = _outcomes(tallies[day], failures.get(day, {}), max_failure_rate, chunker)
        results.append(
            PartitionValidation(Partition(source, day).key, tallies[day].documents, outcomes)
        )
    return results


def _share(size: int, part: int, total: int) -> int:
    """A sample of ``size`` spread over partitions: this one's share, at least one."""
    return max(1, math.ceil(size * part / total)) if size else 0


def _recompute_entries(
    tallies: dict[str, _Tally],
    registry: Registry,
    store: ChunkStore,
    objects: ObjectStore,
    source: str,
    first: str,
    last: str,
    sample: list[LedgerEntry],
    chunker: ChunkerConfig,
) -> None:
    """``_recompute_sample`` over many partitions at once: one registry query, one store fetch,
    the raw objects fetched together; each finding goes to its partition's tally."""
    if not sample:
        return
    by_uid = {s.uid: s for s in sample}
    rows = [
        row
        for page in registry.iter_partition(
            source,
            first,
            last_date=last,
            target=store.target,
            chunker_version=CHUNKER_VERSION,
            embedder_id="",
            batch_size=len(sample),
            uids=list(by_uid),
        )
        for row in page
    ]
    stored: dict[str, list[StoredChunk]] = defaultdict(list)
    for chunk in store.fetch(list(by_uid)):
        stored[chunk.parent_uid].append(chunk)
    # Each finding to its partition's tally (a document the ledger holds under another day is
    # the first partition's, as when one partition is validated).
    day_of = {s.uid: s.ingest_date if s.ingest_date in tallies else first for s in sample}
    raw, unfetched = fetch_raw(objects, rows)
    for f in unfetched:
        tallies[day_of[f.uid]].recompute_failed.add([f.uid])
    normalized = []
    for result in normalize_items(raw):
        if isinstance(result, NormalizedItem):
            normalized.append(result.row)
        else:
            tallies[day_of[result.uid]].recompute_failed.add([result.uid])
    for item in chunk_rows(normalized, chunker):
        tally = tallies[day_of[item.uid]]
        if isinstance(item, Failure):
            tally.recompute_failed.add([item.uid])
            continue
        assert isinstance(item, ChunkedItem)
        tally.sampled_documents += 1
        if set(item.chunk_uuids) != set(by_uid[item.uid].chunk_uuids):
            tally.recomputed_mismatch.add([item.uid])
        for chunk in stored[item.uid]:
            text = chunk.properties.get("text") or ""
            if count_tokens_reference(text) != chunk.properties.get("tokens"):
                tally.token_count_mismatch.add([chunk.uuid])


def _check_partition(
    tally: _Tally,
    registry: Registry,
    store: ChunkStore,
    part: Partition,
    batch_size: int,
    chunker: ChunkerConfig,
    sample: _Reservoir,
) -> None:
    """Every registry document of the partition: in the ledger or failed, and every chunk."""
    for rows in _partition_rows(registry, store, part, batch_size, None):
        uids = [r.uid for r in rows]
        ledger = registry.ledger_lookup(store.target, uids)
        failed = registry.unresolved_failure_uids(uids)
        chunks = list(store.fetch(uids))
        _check_chunks(tally, chunks, chunker.max_tokens)
        stored: dict[str, set[str]] = defaultdict(set)
        for chunk in chunks:
            stored[chunk.parent_uid].add(chunk.uuid)
        tally.documents += len(rows)
        tally.failed_documents += len(failed & set(uids))
        for uid in uids:
            actual = stored.get(uid, set())
            entry = ledger.get(uid)
            if entry is None:
                tally.chunks += len(actual)
                if uid not in failed:
                    tally.missing_documents.add([uid])
                tally.orphan_chunks.add(sorted(actual))
            else:
                _compare(tally, entry, actual, sample)


def _check_run(
    tally: _Tally,
    registry: Registry,
    store: ChunkStore,
    part: Partition,
    batch_size: int,
    run_id: str,
    sample: _Reservoir,
) -> None:
    """The documents ``run_id`` wrote in the partition (its ledger rows): the store holds
    exactly their chunks, compared by id."""
    for entries in registry.iter_ledger(
        store.target,
        source=part.source,
        ingest_date=part.ingest_date,
        run_id=run_id,
        batch_size=batch_size,
    ):
        tally.documents += len(entries)
        actual = set(store.fetch_ids([e.uid for e in entries]))
        if actual == {(u, e.uid) for e in entries for u in e.chunk_uuids}:  # the common case
            tally.ledger_documents += len(entries)
            tally.chunks += len(actual)
            sample.offer(entries)
            continue
        stored: dict[str, set[str]] = defaultdict(set)
        for uuid, parent_uid in actual:
            stored[parent_uid].add(uuid)
        for entry in entries:
            _compare(tally, entry, stored.get(entry.uid, set()), sample)


def _compare(tally: _Tally, entry: LedgerEntry, actual: set[str], sample: _Reservoir) -> None:
    """A document the ledger holds: its stored chunks must be the ledger's."""
    tally.chunks += len(actual)
    tally.ledger_documents += 1
    expected = set(entry.chunk_uuids)
    if expected - actual:
        tally.documents_missing_chunks.add([entry.uid])
        tally.missing_chunks.add(sorted(expected - actual))
    tally.orphan_chunks.add(sorted(actual - expected))
    sample.offer([entry])


def _partition_rows(
    registry: Registry,
    store: ChunkStore,
    part: Partition,
    batch_size: int,
    uids: list[str] | None,
) -> Iterator[list[RegistryRow]]:
    return registry.iter_partition(
        part.source,
        part.ingest_date,
        target=store.target,
        chunker_version=CHUNKER_VERSION,
        embedder_id="",
        batch_size=batch_size,
        uids=uids,
    )


def _check_chunks(tally: _Tally, chunks: list[StoredChunk], max_tokens: int) -> None:
    tally.checked_chunks += len(chunks)
    offenders = {
        MISSING_METADATA: tally.missing_metadata,
        UUID_FORMULA: tally.uuid_formula,
        EMPTY: tally.empty_chunks,
        OVER_MAX_TOKENS: tally.over_max_tokens,
        REPEATED_TITLE: tally.repeated_title,
    }
    for chunk in chunks:
        for problem in chunk_problems(chunk, max_tokens):
            offenders[problem].add([chunk.uuid])


def _recompute_sample(
    tally: _Tally,
    registry: Registry,
    store: ChunkStore,
    objects: ObjectStore,
    part: Partition,
    sample: list[LedgerEntry],
    chunker: ChunkerConfig,
) -> None:
    """Fetch, normalize and chunk the sampled documents again, in memory: their UUIDs must be
    the ones the ledger says were written (whether the store still holds them is completeness'
    business), and the stored token counts the real ones."""
    _recompute_entries(
        {part.ingest_date: tally},
        registry,
        store,
        objects,
        part.source,
        part.ingest_date,
        part.ingest_date,
        sample,
        chunker,
    )


def _outcome(
    name: str, problems: dict[str, Offenders], counts: dict[str, float], summary: str
) -> CheckOutcome:
    severity, _ = CHECKS[name]
    passed = all(o.count == 0 for o in problems.values())
    return CheckOutcome(
        name=name,
        passed=passed,
        severity=severity,
        summary=summary if not passed else "ok",
        counts={**counts, **{k: o.count for k, o in problems.items()}},
        samples={k: o.sample for k, o in problems.items() if o.sample},
    )


def _problems_summary(problems: dict[str, Offenders]) -> str:
    return ", ".join(f"{o.count} {k.replace('_', ' ')}" for k, o in problems.items() if o.count)


def _outcomes(
    t: _Tally, failure_counts: dict[str, int], max_failure_rate: float, chunker: ChunkerConfig
) -> list[CheckOutcome]:
    completeness = {
        "missing_documents": t.missing_documents,
        "documents_missing_chunks": t.documents_missing_chunks,
        "missing_chunks": t.missing_chunks,
        "orphan_chunks": t.orphan_chunks,
        "ledger_without_registry": t.ledger_without_registry,
    }
    determinism = {
        "uuid_formula_mismatch": t.uuid_formula,
        "recomputed_mismatch": t.recomputed_mismatch,
        "recompute_failed": t.recompute_failed,
    }
    tokens = {
        "empty_chunks": t.empty_chunks,
        "over_max_tokens": t.over_max_tokens,
        "token_count_mismatch": t.token_count_mismatch,
    }
    title = {"repeated_title": t.repeated_title}
    metadata = {"missing_metadata": t.missing_metadata}
    unresolved = sum(failure_counts.values())
    rate = unresolved / t.documents if t.documents else 0.0
    failure_rate = CheckOutcome(
        name="failure_rate",
        passed=rate <= max_failure_rate,
        severity=CHECKS["failure_rate"][0],
        summary=(
            "ok"
            if rate <= max_failure_rate
            else f"{unresolved} of {t.documents} documents failed ({rate:.2%} > "
            f"{max_failure_rate:.2%})"
        ),
        counts={
            "documents": t.documents,
            "open_failures": failure_counts.get("open", 0),
            "permanent_failures": failure_counts.get("permanent", 0),
            "failure_rate": round(rate, 6),
            "max_failure_rate": max_failure_rate,
        },
        samples={},
    )
    return [
        _outcome(
            "completeness",
            completeness,
            {
                "registry_documents": t.documents,
                "ledger_documents": t.ledger_documents,
                "failed_documents": t.failed_documents,
                "stored_chunks": t.chunks,
            },
            _problems_summary(completeness),
        ),
        _outcome(
            "uuid_determinism",
            determinism,
            {"sampled_documents": t.sampled_documents, "checked_chunks": t.checked_chunks},
            _problems_summary(determinism),
        ),
        _outcome(
            "token_bounds",
            tokens,
            {"checked_chunks": t.checked_chunks, "max_tokens": chunker.max_tokens},
            _problems_summary(tokens),
        ),
        _outcome(
            "title_once", title, {"checked_chunks": t.checked_chunks}, _problems_summary(title)
        ),
        _outcome(
            "metadata_present",
            metadata,
            {"checked_chunks": t.checked_chunks},
            _problems_summary(metadata),
        ),
        failure_rate,
    ]

"""Behaviour every registry must have (``resources.registry``'s protocols), as a class of tests
bound to a ``registry`` fixture: a fresh, empty, migrated registry per test. A backend's test
module subclasses :class:`RegistryContract`, defines ``registry`` and ``drop_documents`` (the
existing service deleting registry rows, which the pipeline itself never does)::

    class TestPostgresRegistry(RegistryContract):
        @pytest.fixture
        def registry(self, ...) -> Iterator[Registry]: ...
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from reingest_assets.domain.failures import Failure, Kind, Stage
from reingest_assets.resources.registry import Registry

TARGET = "test:DocumentChunk_v2"
CV, EID = "chunker-1", "none"
DAY = "2026-11-03"


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


def register(
    registry: Registry,
    uid: str,
    content_hash: str | None = "h1",
    *,
    updated: datetime | None = None,
    source: str = "pubmed",
) -> None:
    stamp = updated or at(DAY)
    registry.upsert_documents(
        [(uid, source, uid.split(":")[-1], None, None, f"s3://b/{uid}", content_hash, stamp, stamp)]
    )


def written(
    registry: Registry,
    uid: str,
    content_hash: str = "h1",
    *,
    day: str = DAY,
    uuids: Sequence[str] = ("00000000-0000-0000-0000-000000000001",),
    run_id: str = "run-1",
    chunker_version: str = CV,
    embedder_id: str = EID,
    target: str = TARGET,
) -> None:
    registry.record_written(
        target,
        [(uid, "pubmed", day, content_hash, list(uuids))],
        chunker_version=chunker_version,
        embedder_id=embedder_id,
        run_id=run_id,
    )


def failure(
    uid: str,
    *,
    kind: Kind = "data",
    content_hash: str | None = "h1",
    stage: Stage = "parse",
    day: str = DAY,
) -> Failure:
    return Failure(uid, "pubmed", day, stage, kind, "ValueError", "bad record", content_hash)


def failed(registry: Registry, *failures: Failure, repair: bool = False, run_id: str = "r") -> None:
    registry.record_failures(list(failures), run_id=run_id, max_attempts=3, repair=repair)


def unchanged_flags(registry: Registry, day: str = DAY, target: str = TARGET) -> dict[str, bool]:
    return {
        row.uid: row.unchanged
        for page in registry.iter_partition(
            "pubmed", day, target=target, chunker_version=CV, embedder_id=EID, batch_size=100
        )
        for row in page
    }


def uuid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


class RegistryContract:
    def drop_documents(self, registry: Registry, uids: Sequence[str]) -> None:
        raise NotImplementedError

    # -- documents ----------------------------------------------------------------------------

    def test_keyset_pages_return_every_row_once_in_order(self, registry: Registry) -> None:
        # ties on updated_at (ordered by uid), other days and another source around them
        for i in range(23):
            register(registry, f"pubmed:{i:03d}", updated=at(DAY, 12, i % 4))
        register(registry, "pubmed:900", updated=at("2026-11-02", 23, 59))
        register(registry, "pubmed:901", updated=at("2026-11-04", 0, 0))
        register(registry, "other:1", source="other")
        pages = list(
            registry.iter_partition(
                "pubmed", DAY, target=TARGET, chunker_version=CV, embedder_id=EID, batch_size=5
            )
        )
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        rows = [r for p in pages for r in p]
        expected = sorted((at(DAY, 12, i % 4), f"pubmed:{i:03d}") for i in range(23))
        assert [(r.updated_at, r.uid) for r in rows] == expected
        assert all(r.source == "pubmed" and r.s3_raw_uri == f"s3://b/{r.uid}" for r in rows)

        span = [
            r.uid
            for p in registry.iter_partition(
                "pubmed",
                "2026-11-02",
                last_date="2026-11-04",
                target=TARGET,
                chunker_version=CV,
                embedder_id=EID,
                batch_size=4,
            )
            for r in p
        ]
        assert span == ["pubmed:900", *(uid for _, uid in expected), "pubmed:901"]

        some = registry.iter_partition(
            "pubmed",
            DAY,
            uids=["pubmed:003", "pubmed:017", "pubmed:900"],
            target=TARGET,
            chunker_version=CV,
            embedder_id=EID,
            batch_size=1,
        )
        assert sorted(r.uid for p in some for r in p) == ["pubmed:003", "pubmed:017"]

    def test_an_exact_page_multiple_ends_with_no_empty_page(self, registry: Registry) -> None:
        for i in range(4):
            register(registry, f"pubmed:{i}")
        pages = list(
            registry.iter_partition(
                "pubmed", DAY, target=TARGET, chunker_version=CV, embedder_id=EID, batch_size=2
            )
        )
        assert [len(p) for p in pages] == [2, 2]

    def test_registering_again_changes_a_document_only_when_its_content_does(
        self, registry: Registry
    ) -> None:
        register(registry, "pubmed:1", "h1", updated=at(DAY, 10))
        count, digest = registry.partition_summary("pubmed", DAY)
        assert count == 1 and digest
        register(registry, "pubmed:1", "h1", updated=at("2026-11-05"))  # same content: kept
        assert registry.partition_summary("pubmed", DAY) == (1, digest)
        register(registry, "pubmed:1", "h2", updated=at(DAY, 11))  # new content
        assert registry.partition_summary("pubmed", DAY)[1] not in (None, digest)
        register(registry, "pubmed:1", "h3", updated=at("2026-11-05"))  # moved to a later day
        assert registry.partition_summary("pubmed", DAY) == (0, None)
        assert registry.partition_summary("pubmed", "2026-11-05")[0] == 1

    def test_partition_summaries_are_data_versions_of_every_partition_since(
        self, registry: Registry
    ) -> None:
        register(registry, "pubmed:1", updated=at("2026-11-01"))
        register(registry, "pubmed:2", updated=at(DAY))
        register(registry, "pubmed:3", updated=at(DAY))
        register(registry, "other:1", source="other")
        summaries = registry.partition_summaries(["pubmed"], "2026-11-02")
        assert set(summaries) == {f"{DAY}|pubmed"}
        assert summaries[f"{DAY}|pubmed"] == registry.partition_summary("pubmed", DAY)
        assert summaries[f"{DAY}|pubmed"][0] == 2
        register(registry, "pubmed:3", "h2")
        assert registry.partition_summaries(["pubmed"], DAY) != summaries

    # -- the skip rule (domain.skip) ----------------------------------------------------------

    def test_the_skip_rule(self, registry: Registry) -> None:
        cases = {
            "pubmed:1": "unchanged: the ledger holds this content, chunker and embedder",
            "pubmed:2": "new: no ledger row",
            "pubmed:3": "changed content",
            "pubmed:4": "another chunker version wrote it",
            "pubmed:5": "another embedder wrote it",
            "pubmed:6": "written to another target only",
            "pubmed:7": "unchanged: this very content failed as bad data",
            "pubmed:8": "bad data of older content: the source was fixed",
            "pubmed:9": "a transient failure is retried",
            "pubmed:10": "a resolved bad-data failure does not hold it back",
            "pubmed:11": "no hash: never taken as written",
            "pubmed:12": "unchanged: no hash, and bad data with no hash",
            "pubmed:13": "unchanged: permanent bad data of this content",
        }
        for uid in cases:
            register(registry, uid, None if uid in ("pubmed:11", "pubmed:12") else "h1")
        written(registry, "pubmed:1")
        written(registry, "pubmed:3", "h0")
        written(registry, "pubmed:4", chunker_version="chunker-0")
        written(registry, "pubmed:5", embedder_id="other-embedder")
        written(registry, "pubmed:6", target="other:target")
        written(registry, "pubmed:11", "h1")
        failed(
            registry,
            failure("pubmed:7"),
            failure("pubmed:8", content_hash="h0"),
            failure("pubmed:9", kind="transient", stage="fetch"),
            failure("pubmed:10"),
            failure("pubmed:12", content_hash=None),
        )
        written(registry, "pubmed:10", "h0")  # resolves its failure, with older content
        for _ in range(3):
            failed(registry, failure("pubmed:13"), repair=True)
        unchanged = {"pubmed:1", "pubmed:7", "pubmed:12", "pubmed:13"}
        flags = unchanged_flags(registry)
        assert {uid: flags[uid] for uid in cases} == {uid: uid in unchanged for uid in cases}
        status = registry.partition_status(
            TARGET, ["pubmed"], DAY, DAY, chunker_version=CV, embedder_id=EID
        )
        assert status[f"{DAY}|pubmed"].pending == len(cases) - len(unchanged)

    # -- the ledger ---------------------------------------------------------------------------

    def test_writing_again_replaces_the_ledger_row(self, registry: Registry) -> None:
        register(registry, "pubmed:1")
        written(registry, "pubmed:1", "h1", uuids=[uuid(1), uuid(2)], run_id="run-1")
        written(registry, "pubmed:1", "h2", uuids=[uuid(3)], run_id="run-2")
        entry = registry.ledger_lookup(TARGET, ["pubmed:1", "pubmed:404"])
        assert list(entry) == ["pubmed:1"]
        assert entry["pubmed:1"].content_hash == "h2"
        assert entry["pubmed:1"].chunk_uuids == [uuid(3)]
        assert [len(p) for p in registry.iter_ledger(TARGET)] == [1]
        assert list(registry.iter_ledger(TARGET, run_id="run-1")) == []
        assert [e.uid for p in registry.iter_ledger(TARGET, run_id="run-2") for e in p] == [
            "pubmed:1"
        ]
        assert registry.ledger_lookup("other:target", ["pubmed:1"]) == {}

    def test_forget_deletes_only_those_ledger_rows(self, registry: Registry) -> None:
        for n in (1, 2):
            written(registry, f"pubmed:{n}")
        written(registry, "pubmed:1", target="other:target")
        registry.forget(TARGET, ["pubmed:1", "pubmed:404"])
        assert set(registry.ledger_lookup(TARGET, ["pubmed:1", "pubmed:2"])) == {"pubmed:2"}
        assert set(registry.ledger_lookup("other:target", ["pubmed:1"])) == {"pubmed:1"}

    def test_ledger_walks_page_in_order_and_survive_deletes(self, registry: Registry) -> None:
        for n in range(7):
            written(registry, f"pubmed:{n}", day="2026-11-02" if n % 2 else DAY, run_id="run-1")
        written(registry, "pubmed:9", run_id="run-2")
        walked: list[str] = []
        for page in registry.iter_ledger(TARGET, source="pubmed", run_id="run-1", batch_size=2):
            assert len(page) <= 2
            walked += [e.uid for e in page]
            registry.forget(TARGET, [e.uid for e in page])  # rollback deletes as it goes
        assert walked == [f"pubmed:{n}" for n in range(7)]

        for n in range(7):
            written(registry, f"pubmed:{n}", day="2026-11-02" if n % 2 else DAY, run_id="run-1")
        by_run = [
            (e.ingest_date, e.uid)
            for p in registry.iter_run_ledger(TARGET, "pubmed", "run-1", batch_size=3)
            for e in p
        ]
        assert by_run == sorted(by_run) and len(by_run) == 7
        partition = registry.iter_ledger(TARGET, source="pubmed", ingest_date=DAY, batch_size=3)
        assert [e.uid for p in partition for e in p] == [f"pubmed:{n}" for n in (0, 2, 4, 6, 9)]

    def test_removed_documents_are_ledger_rows_the_registry_no_longer_has(
        self, registry: Registry
    ) -> None:
        for n in (1, 2, 3):
            register(registry, f"pubmed:{n}")
            written(registry, f"pubmed:{n}")
        register(registry, "pubmed:4", updated=at("2026-11-02"))
        written(registry, "pubmed:4", day="2026-11-02")
        self.drop_documents(registry, ["pubmed:2", "pubmed:4"])
        register(registry, "pubmed:3", "h2", updated=at("2026-11-05"))  # moved: not removed
        assert registry.removed_documents(TARGET, "pubmed", DAY) == ["pubmed:2"]
        assert registry.removed_documents("other:target", "pubmed", DAY) == []
        assert registry.removed_documents_by_date(TARGET, "pubmed", "2026-11-01", DAY) == {
            "2026-11-02": ["pubmed:4"],
            DAY: ["pubmed:2"],
        }

    def test_run_touched_dates_count_written_documents_and_failure_dates(
        self, registry: Registry
    ) -> None:
        written(registry, "pubmed:1", run_id="run-1")
        written(registry, "pubmed:2", run_id="run-1")
        written(registry, "pubmed:3", run_id="run-2")
        failed(registry, failure("pubmed:4", day="2026-11-02"), run_id="run-1")
        failed(registry, failure("pubmed:5", day="2026-11-01"), run_id="run-2")
        assert registry.run_touched_dates(TARGET, "pubmed", "run-1") == {
            DAY: 2,
            "2026-11-02": 0,
        }
        assert registry.run_touched_dates(TARGET, "other", "run-1") == {}

    # -- failures -----------------------------------------------------------------------------

    def test_a_later_success_resolves_the_failure(self, registry: Registry) -> None:
        register(registry, "pubmed:1")
        failed(registry, failure("pubmed:1", kind="transient", stage="store"))
        assert registry.unresolved_failure_uids(["pubmed:1", "pubmed:2"]) == {"pubmed:1"}
        assert registry.failure_counts("pubmed", DAY) == {"open": 1}
        written(registry, "pubmed:1", run_id="run-2")
        assert registry.unresolved_failure_uids(["pubmed:1"]) == set()
        assert registry.failure_counts("pubmed", DAY) == {}
        assert registry.repairable_failures() == []
        failed(registry, failure("pubmed:1"))  # a new failure after that is a new open one
        assert registry.failure_counts("pubmed", DAY) == {"open": 1}

    def test_one_open_failure_per_document(self, registry: Registry) -> None:
        register(registry, "pubmed:1")
        for _ in range(4):
            failed(registry, failure("pubmed:1", kind="transient", stage="fetch"))
        [repairable] = registry.repairable_failures()
        assert repairable.uid == "pubmed:1" and repairable.repair_attempts == 0
        assert registry.failure_counts_by_date("pubmed", "2026-11-01", DAY) == {DAY: {"open": 1}}

    def test_only_repairs_count_towards_the_attempt_limit(self, registry: Registry) -> None:
        register(registry, "pubmed:1")
        transient = failure("pubmed:1", kind="transient", stage="fetch")
        for _ in range(5):  # the first run, then forced or plain re-runs failing it again
            failed(registry, transient)
        for repairs in (1, 2):
            failed(registry, transient, repair=True)
            [repairable] = registry.repairable_failures()
            assert repairable.repair_attempts == repairs
        failed(registry, transient, repair=True)  # the third repair: max_attempts=3
        assert registry.repairable_failures() == []
        assert registry.failure_counts("pubmed", DAY) == {"permanent": 1}
        failed(registry, transient)  # and it stays permanent
        assert registry.failure_counts("pubmed", DAY) == {"permanent": 1}
        assert registry.unresolved_failure_uids(["pubmed:1"]) == {"pubmed:1"}

    def test_repairable_failures(self, registry: Registry) -> None:
        register(registry, "pubmed:1")  # transient: repairable
        register(registry, "pubmed:2")  # bad data of this content: waits for a fix
        register(registry, "pubmed:3", "h2")  # bad data of older content: repairable
        register(registry, "pubmed:4", "h2", updated=at("2026-11-05"))  # fixed on a later day
        register(registry, "other:1", source="other")  # transient, another source
        failed(
            registry,
            failure("pubmed:1", kind="transient", stage="fetch"),
            failure("pubmed:2"),
            failure("pubmed:3"),
            failure("pubmed:4"),
            failure("pubmed:5", kind="transient"),  # gone from the registry: left out
            Failure("other:1", "other", DAY, "fetch", "transient", "E", "m", "h1"),
        )
        repairable = registry.repairable_failures()
        assert [(f.uid, f.source, f.ingest_date, f.kind) for f in repairable] == [
            ("other:1", "other", DAY, "transient"),
            ("pubmed:1", "pubmed", DAY, "transient"),
            ("pubmed:3", "pubmed", DAY, "data"),
            ("pubmed:4", "pubmed", "2026-11-05", "data"),
        ]
        assert repairable[3].partition_key == "2026-11-05|pubmed"
        assert len({f.id for f in repairable}) == 4
        assert [f.uid for f in registry.repairable_failures(limit=2)] == ["other:1", "pubmed:1"]

    # -- status -------------------------------------------------------------------------------

    def test_partition_status_counts(self, registry: Registry) -> None:
        for n in range(5):
            register(registry, f"pubmed:{n}")
        register(registry, "pubmed:9", updated=at("2026-11-02"))
        register(registry, "pubmed:10", updated=at("2026-11-10"))  # after the range
        written(registry, "pubmed:0", uuids=[uuid(1), uuid(2)])
        written(registry, "pubmed:1", uuids=[uuid(3)])
        written(registry, "pubmed:2", "h0", uuids=[uuid(4)])  # older content: pending
        written(registry, "pubmed:7", uuids=[uuid(5)], day="2026-11-02")  # removed since
        failed(registry, failure("pubmed:3"), failure("pubmed:9", day="2026-11-02"))
        failed(registry, failure("pubmed:4", kind="transient"))
        for _ in range(3):
            failed(registry, failure("pubmed:9", day="2026-11-02"), repair=True)
        status = registry.partition_status(
            TARGET, ["pubmed", "other"], "2026-11-01", DAY, chunker_version=CV, embedder_id=EID
        )
        assert set(status) == {f"{DAY}|pubmed", "2026-11-02|pubmed"}
        day = status[f"{DAY}|pubmed"]
        assert (day.documents, day.pending) == (5, 2)  # pubmed:2 (older) and :4 (transient)
        assert (day.ledger_documents, day.ledger_chunks) == (3, 4)
        assert (day.open_failures, day.permanent_failures) == (2, 0)
        before = status["2026-11-02|pubmed"]
        assert (before.documents, before.pending) == (1, 0)
        assert (before.ledger_documents, before.ledger_chunks) == (1, 1)
        assert (before.open_failures, before.permanent_failures) == (0, 1)

"""Dagster's Postgres event log, made cheap per partition.

A run over a range of partitions stores several events per partition (materialization planned,
materialized, six check evaluations). dagster-postgres opens a new connection for every one
(``NullPool``: an instance should not hoard connections), and stores a batch of
"materialization planned" events, which every run creation emits for each of its partitions,
one event at a time. Over a year of daily partitions that was seconds of every run. This
storage keeps one connection open (a run process has one instance; the webserver does the same)
writes each asset's planned events of a batch as one insert, exactly as dagster-postgres
already writes a batch of materializations, and serializes a planned check evaluation once
instead of once per partition row (it holds the run's whole partition subset: quadratic in the
partitions).

Check evaluations are the most numerous events of a range run (six per partition), and Dagster
stores each on its own: an event insert, a NOTIFY and an update of the check's execution row,
each its own commit (~5 ms an evaluation, most of a small partition's cost). With
``DAGSTER_EVENT_BATCH_SIZE`` set, as for the materializations, this storage holds a run's
partitioned evaluations back until the batch is full or anything else touches the storage
(the step's next event, any read), then writes them in one transaction: one insert, one update.
Nothing in the process reads the event log without them, and the rows written are the same.
``dagster.yaml`` names it as the event log storage.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

import sqlalchemy as db
from dagster import AssetCheckEvaluation, DagsterEventType
from dagster import _check as check
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
)
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._serdes import ConfigurableClassData, serialize_value
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from sqlalchemy.engine import Connection

# Event types whose batch is one insert plus one index transaction (the last event updates the
# asset's row): the types dagster-postgres batches already, and the planned materializations.
_ONE_INSERT = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_OBSERVATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
}


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` with an open connection and batched planned events."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        # Check evaluations not yet written (see the module docstring). Reentrant: writing them
        # opens a connection, which writes what is pending first.
        self._evaluations: list[EventLogEntry] = []
        self._evaluations_lock = threading.RLock()
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._engine.dispose()
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=4,
            pool_recycle=3600,
            pool_pre_ping=True,
        )

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def store_event(self, event: EventLogEntry) -> None:
        if not _batched_evaluation(event):
            super().store_event(event)  # its connection writes the pending evaluations first
            return
        with self._evaluations_lock:
            self._evaluations.append(event)
            full = len(self._evaluations) >= _event_batch_size()
        if full:
            self.flush_check_evaluations()

    def _connect(self) -> AbstractContextManager[Connection]:
        # Every read and write goes through here: none sees the log without the evaluations.
        self.flush_check_evaluations()
        return super()._connect()

    def dispose(self) -> None:
        self.flush_check_evaluations()
        super().dispose()

    def flush_check_evaluations(self) -> None:
        """Write the check evaluations held back, in one transaction (one by one, as Dagster
        does for a batch it could not write, if that fails)."""
        with self._evaluations_lock:
            events, self._evaluations = self._evaluations, []
            if not events:
                return
            try:
                self._store_check_evaluations(events)
            except Exception as exc:
                sys.stderr.write(f"Exception while storing check evaluations: {exc}\n")
                for event in events:
                    super().store_event(event)

    def _store_check_evaluations(self, events: list[EventLogEntry]) -> None:
        """Dagster's ``store_event`` of each evaluation (the event row, then its planned
        execution row updated, or inserted when none was planned) for many at once. The NOTIFY
        is left out, as dagster-postgres's own batch writes leave it out: nothing listens."""
        rows = [self._event_to_row(event) for event in events]
        with self.index_transaction() as conn:
            executions = [
                _execution_row(event, row["event"], row["timestamp"], event_id)
                for event, row, event_id in zip(
                    events, rows, _insert_events(conn, rows), strict=True
                )
            ]
            columns = {name: [e[name] for e in executions] for name in executions[0]}
            done = {tuple(r) for r in conn.execute(_UPDATE_PLANNED_EXECUTIONS, columns)}
            unplanned = [e for e in executions if tuple(e[k] for k in _KEY) not in done]
            if unplanned:
                conn.execute(AssetCheckExecutionsTable.insert(), unplanned)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        self.flush_check_evaluations()

        def kind(event: EventLogEntry) -> tuple[DagsterEventType, str]:
            dagster_event = event.get_dagster_event()
            key = dagster_event.asset_key
            return dagster_event.event_type, key.to_string() if key else ""

        for (event_type, asset_key), group in itertools.groupby(events, key=kind):
            same = list(group)
            if event_type in _ONE_INSERT and asset_key and len(same) > 1:
                self._store_one_insert(same)
            else:
                super().store_event_batch(same)

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        planned = cast(
            AssetCheckEvaluationPlanned, check.not_none(event.dagster_event).event_specific_data
        )
        partition_keys: Iterable[str | None] = (
            planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        )
        serialized = serialize_value(event)
        timestamp = self._event_insert_timestamp(event)
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert().values(
                    [
                        dict(
                            asset_key=planned.asset_key.to_string(),
                            check_name=planned.check_name,
                            partition=partition_key,
                            run_id=event.run_id,
                            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                            evaluation_event=serialized,
                            evaluation_event_timestamp=timestamp,
                            evaluation_event_storage_id=event_id,
                        )
                        for partition_key in partition_keys
                    ]
                )
            )

    def _store_one_insert(self, events: list[EventLogEntry]) -> None:
        """dagster-postgres's own batch path for materializations, for any ``_ONE_INSERT``."""
        with self._connect() as conn:
            event_ids = _insert_events(conn, [self._event_to_row(event) for event in events])
        if any(event_id is None for event_id in event_ids):
            raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
        with self.index_transaction() as conn:
            self._store_asset_event_tags(conn, events, event_ids)
            self._store_asset_event(conn, events[-1], event_ids[-1])


def _insert_events(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert event rows (``_event_to_row``); their ids, in order. One compiled statement sent
    as multi-row inserts (SQLAlchemy's insertmanyvalues), not a statement of every row's
    values compiled anew for each batch."""
    table = SqlEventLogStorageTable
    insert = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [cast("int", event_id) for event_id in conn.execute(insert, rows).scalars()]


# The columns that identify an evaluation's planned execution row.
_KEY = ("asset_key", "check_name", "run_id", "partition")
# Dagster's update of each evaluation's planned execution row, for many rows in one statement:
# one array per column of ``_execution_row``; returns the keys of the rows it found.
_UPDATE_PLANNED_EXECUTIONS = db.text(
    """
    UPDATE asset_check_executions AS x SET
        execution_status = v.execution_status,
        evaluation_event = v.evaluation_event,
        evaluation_event_timestamp = v.evaluation_event_timestamp,
        evaluation_event_storage_id = v.evaluation_event_storage_id,
        materialization_event_storage_id = v.materialization_event_storage_id
    FROM unnest(
        CAST(:asset_key AS text[]), CAST(:check_name AS text[]), CAST(:run_id AS text[]),
        CAST(:partition AS text[]), CAST(:execution_status AS text[]),
        CAST(:evaluation_event AS text[]), CAST(:evaluation_event_timestamp AS timestamp[]),
        CAST(:evaluation_event_storage_id AS bigint[]),
        CAST(:materialization_event_storage_id AS bigint[])
    ) AS v(asset_key, check_name, run_id, partition, execution_status, evaluation_event,
           evaluation_event_timestamp, evaluation_event_storage_id,
           materialization_event_storage_id)
    WHERE x.asset_key = v.asset_key AND x.check_name = v.check_name AND x.run_id = v.run_id
      AND x.partition = v.partition
    RETURNING x.asset_key, x.check_name, x.run_id, x.partition
    """
)


def _event_batch_size() -> int:
    """Dagster's own switch for batched event writes (``DAGSTER_EVENT_BATCH_SIZE``, 0: off)."""
    return int(os.getenv("DAGSTER_EVENT_BATCH_SIZE", "0"))


def _batched_evaluation(event: EventLogEntry) -> bool:
    """A run's evaluation of a partitioned check: what this storage writes in batches (a
    run-less or unpartitioned one goes Dagster's way)."""
    dagster_event = event.dagster_event
    return (
        _event_batch_size() > 1
        and bool(event.run_id)
        and dagster_event is not None
        and dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and cast(AssetCheckEvaluation, dagster_event.event_specific_data).partition is not None
    )


def _execution_row(
    event: EventLogEntry, serialized: str, timestamp: Any, event_id: int
) -> dict[str, Any]:
    """The ``asset_check_executions`` row of a stored evaluation, as Dagster writes it."""
    evaluation = cast(AssetCheckEvaluation, check.not_none(event.dagster_event).event_specific_data)
    status = (
        AssetCheckExecutionRecordStatus.SUCCEEDED
        if evaluation.passed
        else AssetCheckExecutionRecordStatus.FAILED
    )
    target = evaluation.target_materialization_data
    return {
        "asset_key": evaluation.asset_key.to_string(),
        "check_name": evaluation.check_name,
        "run_id": event.run_id,
        "partition": evaluation.partition,
        "execution_status": status.value,
        "evaluation_event": serialized,
        "evaluation_event_timestamp": timestamp,
        "evaluation_event_storage_id": event_id,
        "materialization_event_storage_id": target.storage_id if target else None,
    }

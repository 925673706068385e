"""Dagster's Postgres event log, made cheap per partition.

A run over a range of partitions stores several events per partition (materialization planned,
materialized, check evaluations). dagster-postgres opens a new connection for every one
(``NullPool``: an instance should not hoard connections), and stores a batch of
"materialization planned" events, which every run creation emits for each of its partitions,
one event at a time. Over a year of daily partitions that was seconds of every run. This
storage keeps one connection open (a run process has one instance; the webserver does the same)
writes each asset's planned events of a batch as one insert, exactly as dagster-postgres
already writes a batch of materializations, and serializes a planned check evaluation once
instead of once per partition row (it holds the run's whole partition subset: quadratic in the
partitions). The rows written are the same. ``dagster.yaml`` names it as the event log
storage.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from dagster import DagsterEventType
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

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
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
        statement = self.prepare_insert_event_batch(events)
        with self._connect() as conn:
            result = conn.execute(statement.returning(SqlEventLogStorageTable.c.id))
            event_ids = [cast("int", row[0]) for row in result.fetchall()]
        if any(event_id is None for event_id in event_ids):
            raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
        with self.index_transaction() as conn:
            self._store_asset_event_tags(conn, events, event_ids)
            self._store_asset_event(conn, events[-1], event_ids[-1])

"""Tables in the UI where the data is a table: figures by name (stage seconds, failures by
stage) and samples by kind (check offenders, dry-run samples) as ``MetadataValue.table``; and
back to plain values for the CLI's JSON and for tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue, TableColumn, TableMetadataValue, TableRecord, TableSchema


def figures_table(figures: Mapping[str, float], name: str, value: str) -> TableMetadataValue:
    """One row per figure: ``name`` (e.g. stage) and its number under ``value``."""
    kind = "float" if any(isinstance(v, float) for v in figures.values()) else "int"
    return MetadataValue.table(
        records=[TableRecord({name: k, value: v}) for k, v in figures.items()],
        schema=TableSchema(columns=[TableColumn(name, "string"), TableColumn(value, kind)]),
    )


def samples_table(samples: Mapping[str, Sequence[str]], id_name: str) -> TableMetadataValue:
    """One row per sampled id, with the kind of problem (or plan action) it stands for."""
    return MetadataValue.table(
        records=[TableRecord({"kind": k, id_name: i}) for k, ids in samples.items() for i in ids],
        schema=TableSchema(columns=[TableColumn("kind", "string"), TableColumn(id_name, "string")]),
    )


def plain(value: Any) -> Any:
    """A metadata value as plain data: a figures table as ``{name: number}``, a samples table
    as ``{kind: [id, ...]}``, anything else as its value."""
    if not isinstance(value, TableMetadataValue):
        return value.value
    key, column = value.schema.columns
    if column.type == "string":
        grouped: dict[str, list[Any]] = {}
        for record in value.records:
            grouped.setdefault(str(record.data[key.name]), []).append(record.data[column.name])
        return grouped
    return {str(r.data[key.name]): r.data[column.name] for r in value.records}

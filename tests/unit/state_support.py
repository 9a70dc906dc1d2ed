"""Helpers of the state job's tests: lines to publish, and a version's tables read back with
pyarrow from its manifest (not with the job's own reader)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from bench.state_history import CURATED_SCHEMA
from duffbeer import naming
from duffbeer.state import STATE_TABLES

CHANNEL = "point_of_sale_channel"


@dataclass(frozen=True)
class Line:
    """One curated line as a test writes it (lineage is stamped by write_run)."""

    order_id: int
    product_id: int
    client_id: int = 1
    status: str = "created"
    channel: str = "Retail"
    day: str = "2026-11-01"
    units: int = 1
    price: str = "1.00"
    volume: str = "0.500"
    client_name: str | None = None
    description: str | None = None

    def row(self) -> dict[str, Any]:
        price, volume = Decimal(self.price), Decimal(self.volume)
        return {
            "client_id": self.client_id,
            "client_name": self.client_name or f"Client {self.client_id}",
            "order_id": self.order_id,
            "product_id": self.product_id,
            "product_description": self.description or f"Duff {self.product_id}",
            "product_price": price,
            "product_ccf": self.units,
            "product_volume": volume,
            "status": self.status,
            "line_total": price * self.units,
            "line_volume_l": volume * self.units,
            CHANNEL: self.channel,
            "order_date": date.fromisoformat(self.day),
        }


def lines_table(lines: list[Line]) -> pa.Table:
    data = [line.row() for line in lines]
    schema = pa.schema(
        [
            *(f for f in CURATED_SCHEMA if f.name not in ("batch_id", "source_event_time")),
            pa.field(CHANNEL, pa.string()),
            pa.field("order_date", pa.date32()),
        ]
    )
    return pa.Table.from_pylist(data, schema=schema)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 2, hour, minute, tzinfo=UTC)


def current_version(root: Path) -> dict[str, Any]:
    pointer = json.loads((root / naming.STATE_POINTER_KEY).read_text())
    return json.loads((root / pointer["state_manifest"]).read_text())


def _partition_values(location: str, levels: int) -> dict[str, str]:
    names = location.rstrip("/").split("/")[-levels:]
    return dict((unquote(part.split("=", 1)[0]), unquote(part.split("=", 1)[1])) for part in names)


def _read_dir(path: Path, columns: list[str]) -> list[dict[str, Any]]:
    """A directory's Parquet rows; every file holds exactly the table's data columns."""
    files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith(("_", ".")))
    rows: list[dict[str, Any]] = []
    for file in files:
        data = pq.read_table(file)
        assert data.column_names == columns, file
        rows.extend(data.to_pylist())
    return rows


def read_version(root: Path, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every table of a version as rows (partition values included, typed as the table
    declares them), read from the locations its manifest lists; checks each partition's
    directory names its values and holds its row count."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, table in STATE_TABLES.items():
        location = manifest["tables"][name]
        columns = [column for column, _ in table.columns]
        if not table.partitioned:
            rows = _read_dir(root / location["location"], columns)
        else:
            rows = []
            for partition in location["partitions"]:
                values = partition["values"]
                assert _partition_values(partition["location"], len(table.partition_keys)) == values
                part = _read_dir(root / partition["location"], columns)
                assert len(part) == partition["rows"], partition
                typed = {
                    key: (
                        int(values[key])
                        if kind == "int"
                        else date.fromisoformat(values[key])
                        if kind == "date"
                        else values[key]
                    )
                    for key, kind in table.partition_keys
                }
                rows.extend({**row, **typed} for row in part)
        assert len(rows) == location["rows"], name
        tables[name] = rows
    return tables


def rows_of(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of some columns (None sorts first)."""
    return sorted(
        (tuple(row[c] for c in columns) for row in rows),
        key=lambda t: tuple((v is not None, v) for v in t),
    )

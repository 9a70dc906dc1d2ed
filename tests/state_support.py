"""Helpers of the state's tests: uploads processed by the real steps, the state read back with
pyiceberg (an outside Iceberg client), and the contract evaluated over the whole history in
plain Python (the oracle the maintained tables must equal)."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from pyiceberg.catalog import load_catalog
from pyspark.sql import SparkSession

from duffbeer import manifest, naming, state, utc
from duffbeer.contract import INPUT_COLUMN_NAMES, STATUSES
from glue_jobs import maintain_state, transform_orders
from glue_jobs.state.job import MergeOutcome
from lambdas.publish_batch.publish import publish_run

INPUT_BUCKET = "duffbeer-input-orders"
# The Iceberg tables of every test live under this bucket's warehouse prefix.
WAREHOUSE_BUCKET = "duffbeer-tests-warehouse"
REGION = "us-east-1"
CHANNEL = "point_of_sale_channel"


@dataclass(frozen=True)
class Line:
    """One order line of an uploaded file."""

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

    def fields(self) -> dict[str, str]:
        """The line as the CSV's fields."""
        return {
            "client_id": str(self.client_id),
            "client_name": self.client_name or f"Client {self.client_id}",
            "order_id": str(self.order_id),
            "product_id": str(self.product_id),
            "product_description": self.description or f"Duff {self.product_id}",
            "product_price": self.price,
            "product_ccf": str(self.units),
            "product_volume": self.volume,
            CHANNEL: self.channel,
            "status": self.status,
            "order_date": self.day,
        }

    def row(self) -> dict[str, Any]:
        """The line as the curated row the contract derives from it."""
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


def csv_text(lines: Sequence[Line]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(INPUT_COLUMN_NAMES), lineterminator="\n")
    writer.writeheader()
    writer.writerows(line.fields() for line in lines)
    return out.getvalue()


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 2, hour, minute, tzinfo=UTC)


def new_state_database(endpoint: str) -> str:
    """A new Glue database for state tables (and the warehouse bucket, which a test that
    resets moto may have removed)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
    if WAREHOUSE_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=WAREHOUSE_BUCKET)
    name = f"state_{uuid.uuid4().hex[:10]}"
    boto3.client("glue", endpoint_url=endpoint, region_name=REGION).create_database(
        DatabaseInput={"Name": name}
    )
    return name


class Steps:
    """The steps of executions, as the workflow runs them: the transform job (on a local
    processed root), the Store step (publish_run, against the S3 endpoint, which then
    holds the run and the pointer) and the state job. Every step is the shipped code."""

    def __init__(
        self,
        spark: SparkSession,
        root: Path,
        *,
        endpoint: str,
        database: str,
    ) -> None:
        self.spark = spark
        self.root = root
        self.database = database
        # A processed bucket of the test's own: batch pointers are per key, so tests that
        # upload the same keys must not see one another's.
        bucket = self.bucket = f"processed-{database.replace('_', '-')}"
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        if bucket not in {b["Name"] for b in self.s3.list_buckets()["Buckets"]}:
            self.s3.create_bucket(Bucket=bucket)

    def transform(
        self,
        key: str,
        lines: Sequence[Line],
        event_time: datetime,
        *,
        run_id: str,
        sequencer: str = "",
        rerun_at: str = "",
    ) -> manifest.Manifest:
        """The transform job on `lines` uploaded as `key`, its run uploaded to the bucket."""
        batch_id = naming.batch_id_for(INPUT_BUCKET, key)
        source = self.root.parent / f"{run_id}.csv"
        source.write_text(csv_text(lines))
        run = transform_orders.main(
            [
                "transform_orders.py",
                *("--JOB_NAME", "transform_orders", "--input_path", str(source)),
                *("--output_path", str(self.root), "--batch_id", batch_id, "--run_id", run_id),
                *("--source_event_time", utc.iso(event_time), "--source_uri"),
                f"s3://{INPUT_BUCKET}/{key}",
                *(("--source_sequencer", sequencer) if sequencer else ()),
                *(("--rerun_at", rerun_at) if rerun_at else ()),
            ],
            spark=self.spark,
        )
        prefix = naming.run_prefix(batch_id, run_id)
        for path in sorted((self.root / prefix).rglob("*")):
            if path.is_file() and not path.name.endswith(".crc"):
                self.s3.upload_file(str(path), self.bucket, path.relative_to(self.root).as_posix())
        return run

    def publish(self, run: manifest.Manifest, now: datetime | None = None) -> str:
        """The Store step; the pointer it leaves is copied to the local root, where the
        state job reads it. Returns the outcome (published, superseded, ...)."""
        batch_id, run_id = run["batch_id"], run["run_id"]
        result = publish_run(
            batch_id=batch_id,
            run_id=run_id,
            bucket=self.bucket,
            client=self.s3,
            now=now or utc.now(),
        )
        key = naming.manifest_key(batch_id)
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(self.bucket, key, str(self.root / key))
        return result.outcome

    def merge(
        self, batch_id: str, execution: str, spark: SparkSession | None = None
    ) -> MergeOutcome:
        """The state job, on the local root, listing the pointers in the bucket it stands
        for (as a local run of the job does)."""
        return maintain_state.main(
            [
                "maintain_state.py",
                *("--JOB_NAME", "maintain_state", "--processed_path", str(self.root)),
                *("--processed_uri", f"s3://{self.bucket}/", "--database", self.database),
                *("--batch_id", batch_id, "--run_id", execution),
            ],
            spark=spark or self.spark,
            s3=self.s3,
        )

    def process(
        self, key: str, lines: Sequence[Line], event_time: datetime, run_id: str
    ) -> MergeOutcome:
        """One execution of an upload: transform, Store, MergeState."""
        run = self.transform(key, lines, event_time, run_id=run_id)
        self.publish(run)
        return self.merge(run["batch_id"], f"exec-{run_id}")


# --- Reading the state with pyiceberg -------------------------------------------------------


class StateReader:
    """The state's tables as an outside Iceberg client sees them (pyiceberg, Glue catalog)."""

    def __init__(self, endpoint: str, database: str) -> None:
        self.database = database
        self.catalog = load_catalog(
            "tests",
            **{
                "type": "glue",
                "glue.endpoint": endpoint,
                "glue.region": "us-east-1",
                "s3.endpoint": endpoint,
                "s3.region": "us-east-1",
            },
        )

    def publications(self) -> list[state.Publication]:
        table = self.catalog.load_table(f"{self.database}.{state.PUBLICATIONS_TABLE}")
        return state.publications(
            state.SnapshotInfo(
                s.snapshot_id,
                s.timestamp_ms,
                dict(s.summary.additional_properties) if s.summary else {},
            )
            for s in table.metadata.snapshots
        )

    def rows(self, table: str, snapshot_id: int | None = None) -> list[dict[str, Any]]:
        """A table's rows at a snapshot (default: the latest publication's)."""
        if snapshot_id is None:
            snapshot_id = self.publications()[-1].snapshots[table]
        loaded = self.catalog.load_table(f"{self.database}.{table}")
        rows: list[dict[str, Any]] = loaded.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
        return rows

    def main_rows(self, table: str) -> list[dict[str, Any]]:
        """A table's rows at its main branch: what a query by table name reads."""
        loaded = self.catalog.load_table(f"{self.database}.{table}")
        rows: list[dict[str, Any]] = loaded.scan().to_arrow().to_pylist()
        return rows


def rows_of(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of some columns (None sorts first); times as aware UTC."""

    def value(v: Any) -> Any:
        if isinstance(v, datetime) and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v.astimezone(UTC) if isinstance(v, datetime) else v

    return sort([tuple(value(row[c]) for c in columns) for row in rows])


def sort(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda t: tuple((v is not None, v) for v in t))


# --- The oracle: the contract over the whole history ------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A successful upload as the oracle sees it: its batch, creation time and lines."""

    batch_id: str
    event_time: datetime
    lines: tuple[Line, ...]


def recency(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["source_event_time"], row["batch_id"], row["order_id"], row["product_id"])


def current_lines(live: Iterable[Upload]) -> list[dict[str, Any]]:
    """The current version of every line key over the live uploads (one per batch)."""
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for upload in live:
        for line in upload.lines:
            row = {
                **line.row(),
                "batch_id": upload.batch_id,
                "source_event_time": upload.event_time,
            }
            key = (line.order_id, line.product_id)
            if key not in best or recency(row) > recency(best[key]):
                best[key] = row
    return list(best.values())


def group(
    rows: Iterable[dict[str, Any]], *keys: str
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return groups


def sales(rows: list[dict[str, Any]]) -> Decimal:
    return sum((r["line_total"] for r in rows), Decimal("0.00"))


def figures(rows: list[dict[str, Any]]) -> tuple[int, int, int, Decimal]:
    """Distinct orders, lines, units, sales."""
    return (
        len({r["order_id"] for r in rows}),
        len(rows),
        sum(r["product_ccf"] for r in rows),
        sales(rows),
    )


def expected_tables(lines: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every state table's rows, computed from the current lines by the contract's rules."""
    report, summary, client_orders = [], [], []
    for (client,), rows in group(lines, "client_id").items():
        name = max(rows, key=recency)["client_name"]
        report.append((client, None, None, 1, 1, name, *figures(rows)))
        orders, _, _, total = figures(rows)
        summary.append((client, name, orders, float(total)))
        for (status,), part in group(rows, "status").items():
            report.append((client, status, None, 0, 1, name, *figures(part)))
        for (channel,), part in group(rows, CHANNEL).items():
            report.append((client, None, channel, 1, 0, name, *figures(part)))
        for (order,), part in group(rows, "order_id").items():
            latest = max(part, key=recency)
            client_orders.append(
                (
                    client,
                    order,
                    min(r["order_date"] for r in part),
                    min(r[CHANNEL] for r in part),
                    len(part),
                    sum(r["product_ccf"] for r in part),
                    sales(part),
                    *(sum(r["status"] == s for r in part) for s in STATUSES),
                    latest["client_name"],
                    latest["source_event_time"],
                    latest["batch_id"],
                    latest["product_id"],
                )
            )
    order_cells = [
        (client, order, channel, day, len(rows), sum(r["product_ccf"] for r in rows), sales(rows))
        for (client, order, channel, day), rows in group(
            lines, "client_id", "order_id", CHANNEL, "order_date"
        ).items()
    ]
    products = []
    for (product, channel, day), rows in group(lines, "product_id", CHANNEL, "order_date").items():
        latest = max(rows, key=recency)
        products.append(
            (
                product,
                channel,
                day,
                latest["product_description"],
                latest["source_event_time"],
                latest["batch_id"],
                latest["order_id"],
                len(rows),
                sum(r["product_ccf"] for r in rows),
                sales(rows),
                sum((r["line_volume_l"] for r in rows), Decimal("0.000")),
            )
        )
    status = []
    for (channel, day), rows in group(lines, CHANNEL, "order_date").items():
        orders, count, _, total = figures(rows)
        status.append((None, channel, day, 1, orders, count, total))
        for (name,), part in group(rows, "status").items():
            orders, count, _, total = figures(part)
            status.append((name, channel, day, 0, orders, count, total))
    spanning = []
    for (order,), rows in group(lines, "order_id").items():
        cells = {(r[CHANNEL], r["order_date"]) for r in rows}
        if len(cells) > 1:
            spanning.extend((order, None, channel, day) for channel, day in cells)
            spanning.extend({(order, r["status"], r[CHANNEL], r["order_date"]) for r in rows})
    return {
        state.CURRENT_LINES_TABLE: rows_of(
            lines, state.STATE_TABLES[state.CURRENT_LINES_TABLE].column_names
        ),
        state.CLIENT_REPORT_TABLE: sort(report),
        state.CLIENT_ORDERS_TABLE: sort(client_orders),
        state.CLIENT_ORDER_CELLS_TABLE: sort(order_cells),
        state.PRODUCT_DAILY_TABLE: sort(products),
        state.STATUS_DAILY_TABLE: sort(status),
        state.SPANNING_ORDER_CELLS_TABLE: sort(spanning),
        state.ORDERS_SUMMARY_TABLE: sort(summary),
    }


def assert_state_equals(reader: StateReader, lines: list[dict[str, Any]]) -> None:
    """Every table of the latest publication equals the oracle over `lines`."""
    expected = expected_tables(lines)
    for name, table in state.STATE_TABLES.items():
        assert rows_of(reader.rows(name), table.column_names) == expected[name], name

"""Generated order lines for the state benchmarks: batches written as the transform writes a
run (curated lines with pyarrow, one file per partition, and the run manifest) and published
with the batch pointer the Store step writes, in a local processed root.

The data has the shape of a busy shop (1000 clients, 10 products, 5 channels, 30 days, 3
lines per order); after the first batch, `update_share` of each batch's lines are new
versions of existing lines picked uniformly, the rest new orders.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from duffbeer import manifest, naming, utc
from duffbeer.contract import CURATED_DATA_COLUMNS, KNOWN_CHANNELS

INPUT_BUCKET = "bench-input-orders"
FIRST_EVENT = datetime(2026, 11, 1, tzinfo=UTC)

# bench/bench_api.py's data shape (not imported: that bench may import this module).
CHANNELS = (*KNOWN_CHANNELS, "Kiosk")
DAYS = 30
FIRST_DAY = date(2026, 10, 1)
CLIENTS = 1_000
PRODUCTS = 10
LINES_PER_ORDER = 3
_PRICE_CENTS = np.array([250, 200, 300, 400, 375, 510, 199, 120, 125, 99])
_MILLILITRES = np.array([330, 500, 250, 1000, 500, 750, 330, 330, 355, 2000])
_STATUSES = ("created", "delivered", "broken")

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int32(),
    "string": pa.string(),
    "decimal(12,2)": pa.decimal128(12, 2),
    "decimal(8,3)": pa.decimal128(8, 3),
    "decimal(18,2)": pa.decimal128(18, 2),
    "decimal(18,3)": pa.decimal128(18, 3),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
CURATED_SCHEMA = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in CURATED_DATA_COLUMNS])
# Characters Spark escapes in a partition directory name (ExternalCatalogUtils.escapePathName).
_ESCAPED = frozenset("\"#%'*/:=?\\{[]^\x7f") | frozenset(chr(c) for c in range(0x20))


def escape_partition_value(value: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in value)


# --- The workflow's steps, locally --------------------------------------------------------


def write_run(
    root: Path,
    batch_id: str,
    run_id: str,
    event_time: datetime,
    lines: pa.Table,
    *,
    source_key: str | None = None,
) -> manifest.Manifest:
    """A successful run's curated lines and run manifest, as the transform writes them.

    `lines` holds the curated data columns (batch_id and source_event_time are stamped
    here) plus `point_of_sale_channel` (text) and `order_date` (date): one file per
    partition directory."""
    prefix = naming.run_prefix(batch_id, run_id)
    lines_prefix = f"{prefix}{naming.ORDER_LINES_DIR}/"
    rows = lines.num_rows
    stamped = lines.drop_columns(
        [c for c in ("batch_id", "source_event_time") if c in lines.column_names]
    )
    stamped = stamped.append_column("batch_id", pa.repeat(pa.scalar(batch_id), rows))
    stamped = stamped.append_column(
        "source_event_time", pa.repeat(pa.scalar(event_time, pa.timestamp("us", tz="UTC")), rows)
    )
    ordered = stamped.sort_by([("point_of_sale_channel", "ascending"), ("order_date", "ascending")])
    data = ordered.select(CURATED_SCHEMA.names).cast(CURATED_SCHEMA)
    partitions: list[manifest.Partition] = []
    for start, end in _runs(ordered):
        channel = ordered["point_of_sale_channel"][start].as_py()
        day = ordered["order_date"][start].as_py().isoformat()
        location = (
            f"{lines_prefix}point_of_sale_channel={escape_partition_value(channel)}/"
            f"order_date={day}/"
        )
        directory = root / location
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(data.slice(start, end - start), directory / "part-00000.snappy.parquet")
        partitions.append(
            manifest.Partition(
                point_of_sale_channel=channel, order_date=day, location=location, rows=end - start
            )
        )
    (root / lines_prefix).mkdir(parents=True, exist_ok=True)
    key = source_key or f"{batch_id}.csv"
    outputs = manifest.Outputs(
        order_lines=lines_prefix,
        reports={r: f"{prefix}{naming.REPORTS_DIR}/{r}/" for r in naming.BATCH_REPORTS},
        rejects=f"{prefix}{naming.REJECTS_DIR}/",
    )
    when = utc.iso(event_time)
    run = manifest.Manifest(
        manifest_version=manifest.MANIFEST_VERSION,
        batch_id=batch_id,
        run_id=run_id,
        status=naming.STATUS_SUCCEEDED,
        error=None,
        source=manifest.SourceObject(
            path=f"s3://{INPUT_BUCKET}/{key}",
            bucket=INPUT_BUCKET,
            key=key,
            size=None,
            event_time=when,
        ),
        ingest_date=when[:10],
        started_at=when,
        finished_at=when,
        timings={},
        rows_read=rows,
        rows_valid=rows,
        rows_rejected=0,
        rejects_by_reason={},
        duplicates=0,
        total_sales="0.00",
        total_units=0,
        partitions=partitions,
        outputs=outputs,
        warnings=[],
        published=None,
    )
    _write_json(root / naming.run_manifest_key(batch_id, run_id), manifest.dumps(run))
    return run


def _runs(ordered: pa.Table) -> list[tuple[int, int]]:
    """The [start, end) row ranges of equal (channel, date) in lines sorted by both."""
    if ordered.num_rows == 0:
        return []
    channel = pc.dictionary_encode(ordered["point_of_sale_channel"]).combine_chunks().indices
    codes = np.asarray(channel.to_numpy(zero_copy_only=False), dtype=np.int64)
    days = np.asarray(ordered["order_date"].cast(pa.int32()).to_numpy(), dtype=np.int64)
    cuts = np.flatnonzero((codes[1:] != codes[:-1]) | (days[1:] != days[:-1])) + 1
    bounds = [0, *cuts.tolist(), ordered.num_rows]
    return list(itertools.pairwise(bounds))


# --- Generated history ----------------------------------------------------------------------


@dataclass
class _Lines:
    """Every line key generated so far, with what an update keeps of it."""

    order_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    product: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    client: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    channel: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    day: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    next_order: int = 100_000

    def add_orders(self, lines: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        orders = -(-lines // LINES_PER_ORDER)
        index = np.repeat(np.arange(orders), LINES_PER_ORDER)[:lines]
        first = rng.integers(0, PRODUCTS, orders)[index]
        new = {
            "order_id": (self.next_order + index).astype(np.int32),
            "product": (
                (first + np.tile(np.arange(LINES_PER_ORDER), orders)[:lines]) % PRODUCTS
            ).astype(np.int32),
            "client": rng.integers(1, CLIENTS + 1, orders)[index].astype(np.int32),
            "channel": rng.integers(0, len(CHANNELS), orders)[index].astype(np.int32),
            "day": rng.integers(0, DAYS, orders)[index].astype(np.int32),
        }
        self.next_order += orders
        for name, values in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), values]))
        return new

    def pick(self, lines: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        chosen = rng.choice(len(self.order_id), size=lines, replace=False)
        return {
            name: getattr(self, name)[chosen]
            for name in ("order_id", "product", "client", "channel", "day")
        }


def generated_lines(keys: Mapping[str, np.ndarray], rng: np.random.Generator) -> pa.Table:
    """Curated lines (without lineage) for these keys: fresh status and units."""
    rows = len(keys["order_id"])
    product = keys["product"]
    units = rng.integers(1, 25, rows)
    price = pa.array(_PRICE_CENTS[product] / 100).cast(pa.decimal128(12, 2))
    volume = pa.array(_MILLILITRES[product] / 1000).cast(pa.decimal128(8, 3))
    quantity = pa.array(units, pa.int32())
    client = keys["client"]
    return pa.table(
        {
            "client_id": pa.array(client, pa.int32()),
            "client_name": pc.binary_join_element_wise(
                "Client ", pa.array(client).cast(pa.string()), ""
            ),
            "order_id": pa.array(keys["order_id"], pa.int32()),
            "product_id": pa.array(100 + product, pa.int32()),
            "product_description": pc.binary_join_element_wise(
                "Duff ", pa.array(product).cast(pa.string()), ""
            ),
            "product_price": price,
            "product_ccf": quantity,
            "product_volume": volume,
            "status": pc.take(pa.array(_STATUSES), pa.array(rng.integers(0, 3, rows))),
            "line_total": pc.multiply(price, quantity).cast(pa.decimal128(18, 2)),
            "line_volume_l": pc.multiply(volume, quantity).cast(pa.decimal128(18, 3)),
            "point_of_sale_channel": pc.take(pa.array(CHANNELS), pa.array(keys["channel"])),
            "order_date": pa.array(
                [FIRST_DAY + timedelta(days=int(d)) for d in range(DAYS)], pa.date32()
            ).take(pa.array(keys["day"])),
        }
    )


class History:
    """Batches of generated lines: the first all new orders, later ones `update_share`
    updates of existing lines (picked uniformly) and new orders for the rest."""

    def __init__(self, root: Path, *, seed: int = 1) -> None:
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.lines = _Lines()
        self.index = 0

    def next_batch(self, lines: int, update_share: float) -> dict[str, Any]:
        """Write and publish the next batch; returns its facts."""
        self.index += 1
        existing = len(self.lines.order_id)
        updates = min(existing, round(lines * update_share)) if existing else 0
        parts = []
        if updates:
            parts.append(generated_lines(self.lines.pick(updates, self.rng), self.rng))
        parts.append(generated_lines(self.lines.add_orders(lines - updates, self.rng), self.rng))
        table = pa.concat_tables(parts)
        key = f"history/orders-{self.index:04d}.csv"
        batch_id = naming.batch_id_for(INPUT_BUCKET, key)
        run_id = f"{batch_id}-run-1"
        event_time = FIRST_EVENT + timedelta(hours=self.index)
        run = write_run(self.root, batch_id, run_id, event_time, table, source_key=key)
        publish(self.root, run, event_time + timedelta(minutes=1))
        return {
            "batch": self.index,
            "batch_id": batch_id,
            "run_id": run_id,
            "lines": table.num_rows,
            "updates": updates,
            "new_lines": table.num_rows - updates,
            "event_time": utc.iso(event_time),
        }


def publish(root: Path, run: manifest.Manifest, published_at: datetime) -> None:
    """The batch pointer naming `run`, as the Store step writes it (the bench's batches are
    each the newest upload of their key)."""
    pointer = manifest.publish(run, utc.iso(published_at))
    _write_json(root / naming.manifest_key(run["batch_id"]), manifest.dumps(pointer))


def _write_json(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text)
    partial.replace(path)

"""Property: after any sequence of uploads, the maintained state equals the contract applied
to the whole history (a pure-Python oracle), whatever the arrival order."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from bench.state_history import merge_and_publish, publish_run, write_run
from duffbeer import naming
from duffbeer.contract import STATUSES
from duffbeer.state import STATE_TABLES, client_bucket
from tests.unit.state_support import Line, current_version, lines_table, read_version, rows_of

pytestmark = pytest.mark.spark

BUCKET = "duffbeer-input-orders"
FIRST = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
CLIENT_BUCKETS = 64


@dataclass(frozen=True)
class Upload:
    key: str
    minute: int  # the S3 event time: FIRST + minutes; arrival order is the list order
    lines: tuple[Line, ...]
    failed: bool

    @property
    def batch_id(self) -> str:
        return naming.batch_id_for(BUCKET, self.key)

    @property
    def event_time(self) -> datetime:
        return FIRST + timedelta(minutes=self.minute)


lines_strategy = st.builds(
    Line,
    order_id=st.integers(1, 6),
    product_id=st.integers(1, 3),
    client_id=st.integers(1, 3),
    status=st.sampled_from(STATUSES),
    channel=st.sampled_from(("Retail", "Online")),
    day=st.sampled_from(("2026-11-01", "2026-11-02")),
    units=st.integers(1, 3),
    price=st.sampled_from(("0.50", "1.25", "2.00")),
    volume=st.sampled_from(("0.330", "0.500")),
    client_name=st.sampled_from(("Moe", "Barney", "Homer")),
    description=st.sampled_from(("Duff", "Duff Lite")),
)
uploads_strategy = st.lists(
    st.builds(
        Upload,
        key=st.sampled_from(("orders/a.csv", "orders/b.csv", "orders/c.csv")),
        minute=st.integers(0, 6),
        lines=st.lists(
            lines_strategy, min_size=1, max_size=5, unique_by=lambda x: (x.order_id, x.product_id)
        ).map(tuple),
        failed=st.sampled_from((False, False, False, True)),
    ),
    min_size=1,
    max_size=4,
)


# --- The oracle: the contract over the whole history -----------------------------------------


def live_uploads(uploads: list[Upload]) -> dict[str, Upload]:
    """Per batch, the successful upload readers see: the latest created; of uploads
    created at the same moment, the one processed last (a re-run replaces)."""
    live: dict[str, Upload] = {}
    for upload in uploads:
        if upload.failed:
            continue
        seen = live.get(upload.batch_id)
        if seen is None or upload.event_time >= seen.event_time:
            live[upload.batch_id] = upload
    return live


def current_lines(live: dict[str, Upload]) -> list[dict[str, Any]]:
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for batch_id, upload in live.items():
        for line in upload.lines:
            row = {**line.row(), "batch_id": batch_id, "source_event_time": upload.event_time}
            key = (line.order_id, line.product_id)
            if key not in best or recency(row) > recency(best[key]):
                best[key] = row
    return list(best.values())


def recency(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["source_event_time"], row["batch_id"], row["order_id"], row["product_id"])


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
    report, summary, client_orders = [], [], []
    for (client,), rows in group(lines, "client_id").items():
        name = max(rows, key=recency)["client_name"]
        bucket = client_bucket(client, CLIENT_BUCKETS)
        report.append((client, None, None, 1, 1, name, *figures(rows), bucket))
        orders, _, _, total = figures(rows)
        summary.append((client, name, orders, float(total)))
        for (status,), part in group(rows, "status").items():
            report.append((client, status, None, 0, 1, name, *figures(part), bucket))
        for (channel,), part in group(rows, "point_of_sale_channel").items():
            report.append((client, None, channel, 1, 0, name, *figures(part), bucket))
        for (order,), part in group(rows, "order_id").items():
            latest = max(part, key=recency)
            client_orders.append(
                (
                    client,
                    order,
                    min(r["order_date"] for r in part),
                    min(r["point_of_sale_channel"] for r in part),
                    len(part),
                    sum(r["product_ccf"] for r in part),
                    sales(part),
                    *(sum(r["status"] == s for r in part) for s in STATUSES),
                    latest["client_name"],
                    latest["source_event_time"],
                    latest["batch_id"],
                    latest["product_id"],
                    bucket,
                )
            )
    products = []
    for (product, channel, day), rows in group(
        lines, "product_id", "point_of_sale_channel", "order_date"
    ).items():
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
    for (channel, day), rows in group(lines, "point_of_sale_channel", "order_date").items():
        orders, count, _, total = figures(rows)
        status.append((None, channel, day, 1, orders, count, total))
        for (state,), part in group(rows, "status").items():
            orders, count, _, total = figures(part)
            status.append((state, channel, day, 0, orders, count, total))
    spanning = []
    for (order,), rows in group(lines, "order_id").items():
        cells = {(r["point_of_sale_channel"], r["order_date"]) for r in rows}
        if len(cells) > 1:
            spanning.extend((order, None, channel, day) for channel, day in cells)
            spanning.extend(
                {(order, r["status"], r["point_of_sale_channel"], r["order_date"]) for r in rows}
            )
    line_columns = tuple(name for name, _ in columns("order_lines_current"))
    return {
        "order_lines_current": rows_of(lines, line_columns),
        "client_report": sort(report),
        "client_orders": sort(client_orders),
        "product_daily": sort(products),
        "status_daily": sort(status),
        "spanning_order_cells": sort(spanning),
        "orders_summary": sort(summary),
    }


def columns(name: str) -> tuple[tuple[str, str], ...]:
    table = STATE_TABLES[name]
    return (*table.columns, *table.partition_keys)


def sort(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda t: tuple((v is not None, v) for v in t))


# --- The property ------------------------------------------------------------------------------


def process(spark: SparkSession, root: Path, uploads: list[Upload]) -> None:
    """What the workflow does with each upload, in arrival order: transform (here: the
    run's lines written as the transform writes them), Store (publish unless a newer upload
    is published), then PlanState, MergeState (the real job) and PublishState."""
    for index, upload in enumerate(uploads):
        if upload.failed:
            continue
        run = write_run(
            root,
            upload.batch_id,
            f"{upload.batch_id}-run-{index}",
            upload.event_time,
            lines_table(list(upload.lines)),
            source_key=upload.key,
        )
        now = FIRST + timedelta(hours=1, minutes=index)
        publish_run(root, run, now)
        merge_and_publish(root, run_id=f"exec-{index}", token=f"{index:08x}", now=now, spark=spark)


@settings(
    max_examples=6,
    database=None,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(uploads=uploads_strategy)
@example(
    # b.csv corrected without line (1, 1), whose older version is a.csv's; c.csv, created
    # before both, arrives last; a failed upload of a.csv is never published.
    uploads=[
        Upload("orders/a.csv", 1, (Line(1, 1), Line(2, 1, client_id=2)), failed=False),
        Upload("orders/b.csv", 3, (Line(1, 1, status="delivered"), Line(1, 2)), failed=False),
        Upload("orders/b.csv", 5, (Line(1, 2, status="broken", channel="Online"),), failed=False),
        Upload("orders/c.csv", 0, (Line(1, 1, status="broken"), Line(2, 1, units=3)), failed=False),
        Upload("orders/a.csv", 6, (Line(1, 1, client_id=3),), failed=True),
    ]
)
def test_state_equals_the_contract_over_the_whole_history(
    spark: SparkSession, uploads: list[Upload]
) -> None:
    with tempfile.TemporaryDirectory(prefix="state-property-") as scratch:
        root = Path(scratch)
        # Given uploads processed in arrival order (event times in another order)
        process(spark, root, uploads)
        live = live_uploads(uploads)
        if not live:
            assert not (root / naming.STATE_POINTER_KEY).exists()
            return
        # Then the published version holds the live batches and every table equals the oracle
        manifest = current_version(root)
        assert set(manifest["batches"]) == set(live)
        assert {b: v["run_id"].rsplit("-", 1)[0] for b, v in manifest["batches"].items()} == {
            b: f"{b}-run" for b in live
        }
        lines = current_lines(live)
        expected = expected_tables(lines)
        actual = read_version(root, manifest)
        for name in STATE_TABLES:
            names = tuple(column for column, _ in columns(name))
            assert rows_of(actual[name], names) == expected[name], name
        assert manifest["counts"] == {
            "lines": len(lines),
            "orders": len({r["order_id"] for r in lines}),
            "clients": len({r["client_id"] for r in lines}),
        }


def test_the_oracle_on_a_hand_computed_history() -> None:
    # Given b.csv uploaded at 8:05, then a.csv at 8:03 and a re-upload of b.csv at 8:04
    # (older than the first b.csv: it never replaces it)
    first = Upload("orders/b.csv", 5, (Line(1, 1, status="delivered"),), failed=False)
    older = Upload("orders/a.csv", 3, (Line(1, 1, status="broken"), Line(1, 2)), failed=False)
    stale = Upload("orders/b.csv", 4, (Line(1, 1, status="created"),), failed=False)
    live = live_uploads([first, older, stale])
    # Then b.csv's first upload and a.csv are live, and line (1, 1) is b.csv's delivered one
    assert live == {first.batch_id: first, older.batch_id: older}
    lines = {(r["order_id"], r["product_id"]): r["status"] for r in current_lines(live)}
    assert lines == {(1, 1): "delivered", (1, 2): "created"}
    assert date(2026, 11, 1) == current_lines(live)[0]["order_date"]

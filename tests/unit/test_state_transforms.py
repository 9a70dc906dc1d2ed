"""The state job's transforms as DataFrame in, DataFrame out: which version of a line is
current, what a withdrawal brings back, and how each report table moves by the difference
of the touched orders' lines. Expected rows are worked out by hand in each test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession

from duffbeer.contract import (
    CLIENT_REPORT_COLUMNS,
    PRODUCT_DAILY_COLUMNS,
    STATUS_DAILY_COLUMNS,
)
from duffbeer.state import Columns
from glue_jobs.state import merge, reports
from glue_jobs.state.tables import LINE_COLUMNS, ddl

pytestmark = pytest.mark.spark

AssertRows = Callable[[DataFrame, Sequence[Row]], None]
D1, D2 = date(2026, 11, 1), date(2026, 11, 2)
T8, T9, T10 = (datetime(2026, 11, 2, h, tzinfo=UTC) for h in (8, 9, 10))


def line(
    order: int,
    product: int,
    batch: str,
    at: datetime,
    *,
    client: int = 1,
    status: str = "created",
    units: int = 1,
    price: str = "2.00",
    channel: str = "Retail",
    day: date = D1,
    name: str = "Moe",
) -> tuple[Any, ...]:
    """A curated line in LINE_COLUMNS order (volume 0.5 l per unit)."""
    total = Decimal(price) * units
    return (
        client,
        name,
        order,
        product,
        f"Duff {product}",
        Decimal(price),
        units,
        Decimal("0.500"),
        status,
        total,
        Decimal("0.500") * units,
        batch,
        at,
        channel,
        day,
    )


def lines(spark: SparkSession, *rows: tuple[Any, ...]) -> DataFrame:
    return spark.createDataFrame(list(rows), ddl(LINE_COLUMNS))


def keys(frame: DataFrame, *columns: str) -> list[tuple[Any, ...]]:
    """Some columns of every row, sorted (None first)."""
    values = [tuple(row[c] for c in columns) for row in frame.collect()]
    return sorted(values, key=lambda t: tuple((v is not None, v) for v in t))


def rows(columns: Columns, *values: tuple[Any, ...]) -> list[Row]:
    return [Row(**dict(zip((name for name, _ in columns), v, strict=True))) for v in values]


def test_the_latest_upload_wins_and_a_withdrawn_batch_gives_way(spark: SparkSession) -> None:
    # Given the base: (1,1) from a at 8, (1,2) and (2,1) from b at 9 (b held line (1,2) last)
    before = lines(
        spark, line(1, 1, "a", T8), line(1, 2, "b", T9), line(2, 1, "b", T9, status="delivered")
    )
    # And b re-uploaded at 10 with (1,1) only, and a's older (1,2) found again
    new = lines(spark, line(1, 1, "b", T10, status="broken"))
    fallback = lines(spark, line(1, 2, "a", T8, units=5))
    # When the current lines are chosen among the candidates, b withdrawn
    after = merge.current_lines(merge.candidates(before, new, fallback, ["b"]))
    # Then (1,1) is b's newer version, (1,2) falls back to a's, (2,1) is gone
    assert keys(after, "order_id", "product_id", "batch_id", "status", "product_ccf") == [
        (1, 1, "b", "broken", 1),
        (1, 2, "a", "created", 5),
    ]
    # And both are new in this merge: every base line of the touched orders is replaced
    assert keys(after, merge.ORIGIN_COLUMN) == [(merge.FROM_BATCHES,)] * 2
    assert keys(merge.replaced_lines(before, after), "order_id", "product_id") == [
        (1, 1),
        (1, 2),
        (2, 1),
    ]


def test_only_keys_without_an_as_recent_new_version_need_older_versions(
    spark: SparkSession,
) -> None:
    # Given b's base versions of (1,1) and (1,2) at 9, b re-uploaded holding (1,1) at 10
    before = lines(spark, line(1, 1, "b", T9), line(1, 2, "b", T9), line(3, 1, "a", T8))
    new = lines(spark, line(1, 1, "b", T10))
    # When the orphans of the withdrawal are asked for
    orphans = merge.orphan_keys(before, new, ["b"])
    # Then only (1,2) may have an older version that is current again
    assert keys(orphans, "order_id", "product_id") == [(1, 2)]
    # And the touched orders are the new lines' and the withdrawn lines' orders
    assert keys(merge.touched_orders(new, before, ["b"]), "order_id") == [(1,)]


def test_client_report_moves_by_the_touched_orders_difference(
    spark: SparkSession, assert_rows: AssertRows
) -> None:
    # Given client 1's report: order 1 (two lines, created, Retail, 2 x 2.00), and client 2's
    report = spark.createDataFrame(
        [
            (1, None, None, 1, 1, "Moe", 1, 2, 2, Decimal("4.00")),
            (1, "created", None, 0, 1, "Moe", 1, 2, 2, Decimal("4.00")),
            (1, None, "Retail", 1, 0, "Moe", 1, 2, 2, Decimal("4.00")),
            (2, None, None, 1, 1, "Barney", 1, 1, 1, Decimal("9.00")),
        ],
        ddl(CLIENT_REPORT_COLUMNS),
    )
    # When order 1's line (1,2) becomes delivered Online with 3 units (line (1,1) unchanged)
    before = lines(spark, line(1, 1, "a", T8), line(1, 2, "a", T8))
    after = lines(
        spark,
        line(1, 1, "a", T8),
        line(1, 2, "b", T9, status="delivered", units=3, channel="Online"),
    )
    changes = reports.signed_lines(before, after)
    clients = spark.createDataFrame([(1,)], "client_id int")
    names = spark.createDataFrame([(1, "Moe's")], "client_id int, client_name string")
    moved = reports.client_report(report, changes, clients=clients, names=names)
    # Then order 1 still counts once in total, once per status and channel it has a line in;
    # client 2 is kept as it was
    assert_rows(
        moved,
        rows(
            CLIENT_REPORT_COLUMNS,
            (1, None, None, 1, 1, "Moe's", 1, 2, 4, Decimal("8.00")),
            (1, "created", None, 0, 1, "Moe's", 1, 1, 1, Decimal("2.00")),
            (1, "delivered", None, 0, 1, "Moe's", 1, 1, 3, Decimal("6.00")),
            (1, None, "Retail", 1, 0, "Moe's", 1, 1, 1, Decimal("2.00")),
            (1, None, "Online", 1, 0, "Moe's", 1, 1, 3, Decimal("6.00")),
            (2, None, None, 1, 1, "Barney", 1, 1, 1, Decimal("9.00")),
        ),
    )
    # And orders_summary takes each client's totals row
    summary = reports.orders_summary(moved)
    assert keys(summary, "client_id", "client_name", "total_orders", "total_sales") == [
        (1, "Moe's", 1, 8.0),
        (2, "Barney", 1, 9.0),
    ]


def test_status_daily_drops_a_cell_its_last_line_leaves(
    spark: SparkSession, assert_rows: AssertRows
) -> None:
    # Given one order with one line in (Retail, D1), created
    base = spark.createDataFrame(
        [
            ("created", "Retail", D1, 0, 1, 1, Decimal("2.00")),
            (None, "Retail", D1, 1, 1, 1, Decimal("2.00")),
        ],
        ddl(STATUS_DAILY_COLUMNS),
    )
    # When the line moves to (Online, D2) and is broken
    changes = reports.signed_lines(
        lines(spark, line(1, 1, "a", T8)),
        lines(spark, line(1, 1, "b", T9, status="broken", channel="Online", day=D2)),
    )
    # Then the old cell is gone and the new one counts the order
    assert_rows(
        reports.status_daily(base, changes),
        rows(
            STATUS_DAILY_COLUMNS,
            ("broken", "Online", D2, 0, 1, 1, Decimal("2.00")),
            (None, "Online", D2, 1, 1, 1, Decimal("2.00")),
        ),
    )


def test_product_daily_keeps_the_latest_line_only_when_it_is_certain(
    spark: SparkSession,
) -> None:
    # Given product 1 in (Retail, D1): latest line order 5 of batch a at 8, two lines, and
    # product 2 in the same cell whose latest line is order 7 of a at 8
    base = spark.createDataFrame(
        [
            (1, "Retail", D1, "Duff 1", T8, "a", 5, 2, 2, Decimal("4.00"), Decimal("1.000")),
            (2, "Retail", D1, "Duff 2", T8, "a", 7, 1, 1, Decimal("2.00"), Decimal("0.500")),
        ],
        ddl(PRODUCT_DAILY_COLUMNS),
    )
    # When order 6's line of product 1 arrives from b at 9, and order 7's line of product 2
    # is withdrawn with nothing newer in the touched orders
    changes = reports.signed_lines(
        lines(spark, line(7, 2, "a", T8)),
        lines(spark, line(6, 1, "b", T9, units=3)),
    )
    replaced = spark.createDataFrame(
        [(7, 2, "Retail", D1)],
        "order_id int, product_id int, point_of_sale_channel string, order_date date",
    )
    figures = reports.product_daily_figures(base, changes, replaced)
    per_product = {row["product_id"]: row for row in figures.collect()}
    # Then product 1 moves by the new line and its latest is b's order 6, for certain
    one = per_product[1]
    assert (one["orders"], one["units"], one["total_sales"]) == (3, 5, Decimal("10.00"))
    assert (one["_latest"]["latest_batch_id"], one["_latest"]["latest_order_id"]) == ("b", 6)
    assert one["_settled"]
    # And product 2 lost its only line: its row is gone (no lines left to name a latest)
    assert set(per_product) == {1}


def test_client_orders_and_spanning_cells_from_an_orders_lines(spark: SparkSession) -> None:
    # Given order 1 with a created line in (Retail, D1) from a at 8 and a broken line in
    # (Online, D2) from b at 9 under a new client name, and order 2 in one cell
    current = lines(
        spark,
        line(1, 1, "a", T8),
        line(1, 2, "b", T9, status="broken", channel="Online", day=D2, name="Moe's"),
        line(2, 1, "a", T8, client=2, name="Barney"),
    )
    # When client_orders and spanning_cells are computed
    orders = {row["order_id"]: row for row in reports.client_orders(current).collect()}
    # Then order 1 reports its earliest day and channel, both lines and the latest name
    one = orders[1]
    assert (one["order_date"], one["point_of_sale_channel"]) == (D1, "Online")
    assert (one["lines"], one["units"], one["total_sales"]) == (2, 2, Decimal("4.00"))
    assert (one["created_lines"], one["broken_lines"], one["client_name"]) == (1, 1, "Moe's")
    assert (one["latest_batch_id"], one["latest_product_id"]) == ("b", 2)
    # And only order 1 spans cells: a row per cell, and per cell and status
    assert keys(reports.spanning_cells(current), "order_id", "status", "order_date") == [
        (1, None, D1),
        (1, None, D2),
        (1, "broken", D2),
        (1, "created", D1),
    ]

"""Curated order lines and the three per-batch reports, as pure DataFrame -> DataFrame steps."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from duffbeer.contract import (
    BATCH_ID_COLUMN,
    CLIENT_SALES_COLUMNS,
    CURATED_DATA_COLUMNS,
    CURATED_PARTITION_COLUMNS,
    LINE_TOTAL_TYPE,
    LINE_VOLUME_TYPE,
    ORDER_STATUS_COLUMNS,
    PRODUCT_CHANNEL_SALES_COLUMNS,
    SOURCE_EVENT_TIME_COLUMN,
)
from duffbeer.naming import (
    CLIENT_SALES_REPORT,
    ORDER_STATUS_REPORT,
    PRODUCT_CHANNEL_SALES_REPORT,
)
from glue_jobs.orders.read import ROW_ID_COLUMN
from glue_jobs.orders.validate import REASON_COLUMN, line_total, line_volume, typed

PARTITION_NAMES: tuple[str, ...] = tuple(name for name, _ in CURATED_PARTITION_COLUMNS)
_DERIVED = ("line_total", "line_volume_l", BATCH_ID_COLUMN, SOURCE_EVENT_TIME_COLUMN)


def _conform(df: DataFrame, columns: tuple[tuple[str, str], ...]) -> DataFrame:
    """Exactly the contract's column names, order and types."""
    return df.select(*(F.col(name).cast(kind).alias(name) for name, kind in columns))


def curated_lines(checked: DataFrame, *, batch_id: str, source_event_time: datetime) -> DataFrame:
    """Valid rows with normalised values, derived amounts and lineage, in the curated schema
    (data columns, then the two partition columns)."""
    valid = checked.where(F.col(REASON_COLUMN).isNull())
    values: dict[str, Column] = {
        name: F.col(typed(name))
        for name, _ in (*CURATED_DATA_COLUMNS, *CURATED_PARTITION_COLUMNS)
        if name not in _DERIVED
    }
    lines = valid.select(
        *(column.alias(name) for name, column in values.items()),
        line_total().alias("line_total"),
        line_volume().alias("line_volume_l"),
        F.lit(batch_id).alias(BATCH_ID_COLUMN),
        F.lit(source_event_time).cast("timestamp").alias(SOURCE_EVENT_TIME_COLUMN),
        F.col(ROW_ID_COLUMN),
    )
    return lines


def whole_units(column: str, per_unit: int) -> str:
    """SQL for a line amount in whole cents (100) or millilitres (1000), a bigint, exact.
    Why: Spark sums decimals through a BigDecimal per row; bigints made the reports 3x faster.
    A batch whose totals could overflow a bigint sum is refused before (TotalsOutOfRangeError)."""
    return f"CAST({column} * {per_unit} AS BIGINT)"


def from_whole_units(total: Column, per_unit: int, kind: str) -> Column:
    """A sum of whole cents or millilitres back as an exact decimal of the contract type."""
    return (total.cast("decimal(38,0)") / per_unit).cast(kind)


def conform_curated(lines: DataFrame) -> DataFrame:
    return _conform(lines, (*CURATED_DATA_COLUMNS, *CURATED_PARTITION_COLUMNS))


# The report a row of `report_totals` belongs to.
REPORT_COLUMN = "_report"
_KEYS = {
    CLIENT_SALES_REPORT: ("client_id",),
    ORDER_STATUS_REPORT: ("status",),
    PRODUCT_CHANNEL_SALES_REPORT: ("product_id", "point_of_sale_channel"),
}
# Every report's key columns, once each: the columns of a `report_totals` row's key.
_KEY_COLUMNS = tuple(dict.fromkeys(column for keys in _KEYS.values() for column in keys))


def report_totals(lines: DataFrame) -> DataFrame:
    """The figures of all three reports, one row per report key (a few thousand rows),
    from two passes over the lines: one aggregation and one name look-up.

    First level, one grouping-sets aggregation (one scan, one shuffle): per (client, order)
    and per (status, order), since those reports count distinct orders, and per (product,
    channel), which needs no per-order level (the line key makes a product's orders its
    lines). Only numbers are aggregated (counts, whole cents and millilitres, the read
    position of the first line), so Spark hash-aggregates instead of sorting the lines.
    Second level: per report key. Then the client name and product description as on the
    key's first line read (they can vary between rows of a batch): the small result is
    broadcast and the lines are scanned once for both texts.
    """
    first_level = lines.sparkSession.sql(
        f"""
        SELECT
          CASE WHEN grouping(client_id) = 0 THEN '{CLIENT_SALES_REPORT}'
               WHEN grouping(status) = 0 THEN '{ORDER_STATUS_REPORT}'
               ELSE '{PRODUCT_CHANNEL_SALES_REPORT}' END AS {REPORT_COLUMN},
          {", ".join(_KEY_COLUMNS)},
          count(1) AS lines,
          sum(product_ccf) AS units,
          sum({whole_units("line_total", 100)}) AS cents,
          sum({whole_units("line_volume_l", 1000)}) AS ml,
          min({ROW_ID_COLUMN}) AS {ROW_ID_COLUMN}
        FROM {{lines}}
        GROUP BY GROUPING SETS (
          (client_id, order_id), (status, order_id), (product_id, point_of_sale_channel)
        )
        """,
        lines=lines,
    )
    per_key = first_level.groupBy(REPORT_COLUMN, *_KEY_COLUMNS).agg(
        F.count(F.lit(1)).alias("orders"),
        F.sum("lines").alias("lines"),
        F.sum("units").alias("units"),
        F.sum("cents").alias("cents"),
        F.sum("ml").alias("ml"),
        F.min(ROW_ID_COLUMN).alias(ROW_ID_COLUMN),
    )
    names = lines.select(ROW_ID_COLUMN, "client_name", "product_description")
    return F.broadcast(per_key).join(names, on=ROW_ID_COLUMN, how="inner")


def _report(totals: DataFrame, name: str) -> DataFrame:
    return totals.where(F.col(REPORT_COLUMN) == name)


def client_sales(totals: DataFrame) -> DataFrame:
    """Per client: distinct orders, lines, units and sales, from `report_totals`."""
    report = _report(totals, CLIENT_SALES_REPORT).select(
        "client_id",
        "client_name",
        F.col("orders").alias("total_orders"),
        F.col("lines").alias("total_lines"),
        F.col("units").alias("total_units"),
        from_whole_units(F.col("cents"), 100, LINE_TOTAL_TYPE).alias("total_sales"),
    )
    return _conform(report, CLIENT_SALES_COLUMNS)


def product_channel_sales(totals: DataFrame) -> DataFrame:
    """Per product and channel: orders (its lines, see `report_totals`), units, sales and
    volume, from `report_totals`."""
    report = _report(totals, PRODUCT_CHANNEL_SALES_REPORT).select(
        "product_id",
        "product_description",
        "point_of_sale_channel",
        F.col("lines").alias("orders"),
        "units",
        from_whole_units(F.col("cents"), 100, LINE_TOTAL_TYPE).alias("total_sales"),
        from_whole_units(F.col("ml"), 1000, LINE_VOLUME_TYPE).alias("total_volume_l"),
    )
    return _conform(report, PRODUCT_CHANNEL_SALES_COLUMNS)


def order_status(totals: DataFrame) -> DataFrame:
    """Per status: distinct orders with at least one line in it, its lines and their sales
    (an order with lines in two statuses counts under both), from `report_totals`."""
    report = _report(totals, ORDER_STATUS_REPORT).select(
        "status",
        "orders",
        "lines",
        from_whole_units(F.col("cents"), 100, LINE_TOTAL_TYPE).alias("total_sales"),
    )
    return _conform(report, ORDER_STATUS_COLUMNS)


REPORT_BUILDERS = {
    name: (build, _KEYS[name])
    for name, build in (
        (CLIENT_SALES_REPORT, client_sales),
        (PRODUCT_CHANNEL_SALES_REPORT, product_channel_sales),
        (ORDER_STATUS_REPORT, order_status),
    )
}

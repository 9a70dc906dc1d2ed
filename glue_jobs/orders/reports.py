"""Curated order lines and the three per-batch reports, as pure DataFrame -> DataFrame steps."""

from __future__ import annotations

from collections.abc import Sequence
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
from glue_jobs.orders.validate import REASON_COLUMN, line_cents, line_millilitres, typed

PARTITION_NAMES: tuple[str, ...] = tuple(name for name, _ in CURATED_PARTITION_COLUMNS)
_DERIVED = ("line_total", "line_volume_l", BATCH_ID_COLUMN, SOURCE_EVENT_TIME_COLUMN)
# Internal columns of the curated lines (dropped by conform_curated): the line's total in
# cents and its volume in millilitres, as whole numbers for the report sums. Spark sums a
# decimal(18,s) into a decimal(28,s) buffer held as a BigInteger in every aggregation slot
# (an allocation and a byte-array copy per row); a bigint sum is a plain add. Spark would
# let a bigint sum wrap around silently, so the job refuses a batch whose totals exceed
# contract.MAX_BATCH_TOTAL_SALES / MAX_BATCH_TOTAL_VOLUME_L before any report is built.
LINE_CENTS_COLUMN = "_line_cents"
LINE_ML_COLUMN = "_line_ml"


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
        # Exact decimals: (12,2) x int and (8,3) x int fit the (18,2)/(18,3) contract types.
        (F.col(typed("product_price")) * F.col(typed("product_ccf")))
        .cast(LINE_TOTAL_TYPE)
        .alias("line_total"),
        (F.col(typed("product_volume")) * F.col(typed("product_ccf")))
        .cast(LINE_VOLUME_TYPE)
        .alias("line_volume_l"),
        F.lit(batch_id).alias(BATCH_ID_COLUMN),
        F.lit(source_event_time).cast("timestamp").alias(SOURCE_EVENT_TIME_COLUMN),
        F.col(ROW_ID_COLUMN),
        line_cents().alias(LINE_CENTS_COLUMN),
        line_millilitres().alias(LINE_ML_COLUMN),
    )
    return lines


def _from_whole(total: Column, per_unit: int, kind: str) -> Column:
    """A sum of whole cents or millilitres back as an exact decimal of the contract type."""
    return (total.cast("decimal(38,0)") / per_unit).cast(kind)


def conform_curated(lines: DataFrame) -> DataFrame:
    return _conform(lines, (*CURATED_DATA_COLUMNS, *CURATED_PARTITION_COLUMNS))


def _per_order(lines: DataFrame, keys: Sequence[str]) -> DataFrame:
    """First level: one row per (keys, order) with its lines, units, sales in cents and the
    read position of its first line.

    Counting distinct orders as a second aggregation over this is much cheaper in Spark
    than countDistinct next to other aggregates (which expands every row). Only fixed-width
    values are aggregated, so Spark can hash-aggregate instead of sorting every line."""
    return lines.groupBy(*keys, "order_id").agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum("product_ccf").alias("units"),
        F.sum(LINE_CENTS_COLUMN).alias("cents"),
        F.min(ROW_ID_COLUMN).alias(ROW_ID_COLUMN),
    )


def _with_first_seen(report: DataFrame, lines: DataFrame, name: str) -> DataFrame:
    """Add the text column `name` as on the report row's first line read: within a batch a
    name/description can vary between rows. The report (one row per key) is broadcast and
    the lines are scanned once, instead of carrying strings through the aggregations."""
    return F.broadcast(report).join(
        lines.select(ROW_ID_COLUMN, name), on=ROW_ID_COLUMN, how="inner"
    )


def client_sales(lines: DataFrame) -> DataFrame:
    report = (
        _per_order(lines, ["client_id"])
        .groupBy("client_id")
        .agg(
            F.count(F.lit(1)).alias("total_orders"),
            F.sum("lines").alias("total_lines"),
            F.sum("units").alias("total_units"),
            _from_whole(F.sum("cents"), 100, LINE_TOTAL_TYPE).alias("total_sales"),
            F.min(ROW_ID_COLUMN).alias(ROW_ID_COLUMN),
        )
    )
    return _conform(_with_first_seen(report, lines, "client_name"), CLIENT_SALES_COLUMNS)


def product_channel_sales(lines: DataFrame) -> DataFrame:
    """Per product and channel: orders, units, sales and volume.

    No per-order level here: the line key (order_id, product_id) is unique among curated
    lines, so an order has at most one line per product and the product's distinct orders
    are its lines. (A per-order aggregation would have as many groups as lines.)"""
    keys = ["product_id", "point_of_sale_channel"]
    report = lines.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("orders"),
        F.sum("product_ccf").alias("units"),
        _from_whole(F.sum(LINE_CENTS_COLUMN), 100, LINE_TOTAL_TYPE).alias("total_sales"),
        _from_whole(F.sum(LINE_ML_COLUMN), 1000, LINE_VOLUME_TYPE).alias("total_volume_l"),
        F.min(ROW_ID_COLUMN).alias(ROW_ID_COLUMN),
    )
    return _conform(
        _with_first_seen(report, lines, "product_description"), PRODUCT_CHANNEL_SALES_COLUMNS
    )


def order_status(lines: DataFrame) -> DataFrame:
    """Per status: distinct orders with at least one line in it, its lines and their sales
    (an order with lines in two statuses counts under both)."""
    report = (
        _per_order(lines, ["status"])
        .groupBy("status")
        .agg(
            F.count(F.lit(1)).alias("orders"),
            F.sum("lines").alias("lines"),
            _from_whole(F.sum("cents"), 100, LINE_TOTAL_TYPE).alias("total_sales"),
        )
    )
    return _conform(report, ORDER_STATUS_COLUMNS)


REPORT_BUILDERS = {
    CLIENT_SALES_REPORT: (client_sales, ("client_id",)),
    PRODUCT_CHANNEL_SALES_REPORT: (product_channel_sales, ("product_id", "point_of_sale_channel")),
    ORDER_STATUS_REPORT: (order_status, ("status",)),
}

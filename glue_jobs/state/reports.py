"""The state's report tables from the touched orders' lines before and after a merge.

Additive figures (lines, units, sales, and distinct orders, since every line of a touched
order is in both `before` and `after`) move by the difference after - before of the
touched orders' contributions, so a merge never re-reads the untouched orders' lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from duffbeer.contract import (
    BATCH_ID_COLUMN,
    CLIENT_BUCKET_COLUMN,
    CLIENT_ORDERS_COLUMNS,
    CLIENT_REPORT_COLUMNS,
    ORDERS_SUMMARY_COLUMNS,
    PRODUCT_DAILY_COLUMNS,
    SOURCE_EVENT_TIME_COLUMN,
    SPANNING_ORDER_CELLS_COLUMNS,
    STATUS_DAILY_COLUMNS,
    STATUSES,
    SUM_MONEY_TYPE,
    SUM_VOLUME_TYPE,
)
from glue_jobs.state.tables import PARTITION_NAMES, conform

CELL: tuple[str, ...] = PARTITION_NAMES
CLIENT_REPORT_KEYS = (
    "client_id",
    "status",
    "point_of_sale_channel",
    "all_statuses",
    "all_channels",
)
CLIENT_REPORT_MEASURES = ("orders", "lines", "units", "total_sales")
STATUS_DAILY_KEYS = ("status", *CELL, "all_statuses")
STATUS_DAILY_MEASURES = ("orders", "lines", "total_sales")
PRODUCT_DAILY_KEYS = ("product_id", *CELL)
PRODUCT_DAILY_MEASURES = ("orders", "units", "total_sales", "total_volume_l")
_NO_TEXT = F.lit(None).cast("string")


def client_bucket(buckets: int) -> Column:
    """The client_bucket partition of a row (duffbeer.state.client_bucket's Spark twin)."""
    return F.pmod(F.col("client_id"), F.lit(buckets)).cast("int")


def with_client_bucket(frame: DataFrame, buckets: int) -> DataFrame:
    return frame.withColumn(CLIENT_BUCKET_COLUMN, client_bucket(buckets))


def _sales() -> Column:
    return F.sum("line_total").cast(SUM_MONEY_TYPE)


# --- Additive figures: contributions and their difference ---------------------------------


def apply_difference(
    base: DataFrame,
    before: DataFrame,
    after: DataFrame,
    keys: Sequence[str],
    measures: Sequence[str],
) -> DataFrame:
    """base + after - before per key, without the keys left with no line. The three inputs
    share `keys` and `measures`; a union and a grouping treat null keys as equal (a join
    would not)."""
    signed = (
        base.select(*keys, *measures)
        .unionByName(after.select(*keys, *measures))
        .unionByName(before.select(*keys, *(F.negative(F.col(m)).alias(m) for m in measures)))
    )
    return (
        signed.groupBy(*keys)
        .agg(*(F.sum(m).alias(m) for m in measures))
        .where(F.col("lines" if "lines" in measures else "orders") > 0)
    )


def client_contributions(lines: DataFrame) -> DataFrame:
    """Per client: totals, per status and per channel (CLIENT_REPORT_KEYS), of some lines."""

    def group(status: Column, channel: Column, all_statuses: int, all_channels: int) -> DataFrame:
        return lines.groupBy(
            "client_id",
            status.alias("status"),
            channel.alias("point_of_sale_channel"),
            F.lit(all_statuses).alias("all_statuses"),
            F.lit(all_channels).alias("all_channels"),
        ).agg(
            F.countDistinct("order_id").alias("orders"),
            F.count(F.lit(1)).alias("lines"),
            F.sum("product_ccf").cast("bigint").alias("units"),
            _sales().alias("total_sales"),
        )

    return (
        group(_NO_TEXT, _NO_TEXT, 1, 1)
        .unionByName(group(F.col("status"), _NO_TEXT, 0, 1))
        .unionByName(group(_NO_TEXT, F.col("point_of_sale_channel"), 1, 0))
    )


def status_contributions(lines: DataFrame) -> DataFrame:
    """Per (channel, day) cell, per status (all_statuses = 0) and over all (= 1)."""

    def group(status: Column, all_statuses: int) -> DataFrame:
        return lines.groupBy(
            status.alias("status"), *CELL, F.lit(all_statuses).alias("all_statuses")
        ).agg(
            F.countDistinct("order_id").alias("orders"),
            F.count(F.lit(1)).alias("lines"),
            _sales().alias("total_sales"),
        )

    return group(F.col("status"), 0).unionByName(group(_NO_TEXT, 1))


def product_contributions(lines: DataFrame) -> DataFrame:
    """Per product and cell: lines (= orders, by the line key), units, sales, volume."""
    return lines.groupBy(*PRODUCT_DAILY_KEYS).agg(
        F.count(F.lit(1)).alias("orders"),
        F.sum("product_ccf").cast("bigint").alias("units"),
        _sales().alias("total_sales"),
        F.sum("line_volume_l").cast(SUM_VOLUME_TYPE).alias("total_volume_l"),
    )


# --- Tables --------------------------------------------------------------------------------


def client_orders(lines: DataFrame, buckets: int) -> DataFrame:
    """Per client and order, from all of the order's current lines (CLIENT_ORDERS_COLUMNS,
    plus client_bucket)."""
    latest = F.max(
        F.struct(SOURCE_EVENT_TIME_COLUMN, BATCH_ID_COLUMN, "product_id", "client_name")
    ).alias("_latest")
    rows = lines.groupBy("client_id", "order_id").agg(
        F.min("order_date").alias("order_date"),
        F.min("point_of_sale_channel").alias("point_of_sale_channel"),
        F.count(F.lit(1)).alias("lines"),
        F.sum("product_ccf").alias("units"),
        _sales().alias("total_sales"),
        *(
            F.sum(F.when(F.col("status") == status, 1).otherwise(0)).alias(f"{status}_lines")
            for status in STATUSES
        ),
        latest,
    )
    named = rows.select(
        "*",
        F.col("_latest.client_name").alias("client_name"),
        F.col(f"_latest.{SOURCE_EVENT_TIME_COLUMN}").alias("latest_event_time"),
        F.col(f"_latest.{BATCH_ID_COLUMN}").alias("latest_batch_id"),
        F.col("_latest.product_id").alias("latest_product_id"),
    )
    return with_client_bucket(conform(named, CLIENT_ORDERS_COLUMNS), buckets)


def client_names(orders: DataFrame) -> DataFrame:
    """Each client's name: the one on its most recent current line, i.e. on its client_orders
    row with the greatest (latest_event_time, latest_batch_id, order_id, latest_product_id)."""
    latest = F.max(
        F.struct(
            "latest_event_time", "latest_batch_id", "order_id", "latest_product_id", "client_name"
        )
    )
    return (
        orders.groupBy("client_id")
        .agg(latest.alias("_n"))
        .select("client_id", F.col("_n.client_name").alias("client_name"))
    )


def client_report(
    base: DataFrame,
    before: DataFrame,
    after: DataFrame,
    *,
    clients: DataFrame,
    names: DataFrame,
    buckets: int,
) -> DataFrame:
    """The client_report rows of the touched buckets: the base rows of untouched clients as
    they were, the touched clients' base rows moved by their orders' difference, named
    from `names` (CLIENT_REPORT_COLUMNS, plus client_bucket)."""
    touched = F.broadcast(clients)
    kept = base.join(touched, on="client_id", how="left_anti")
    moved = apply_difference(
        base.join(touched, on="client_id", how="left_semi"),
        client_contributions(before),
        client_contributions(after),
        CLIENT_REPORT_KEYS,
        CLIENT_REPORT_MEASURES,
    ).join(names, on="client_id", how="left")
    return with_client_bucket(
        conform(kept, CLIENT_REPORT_COLUMNS).unionByName(conform(moved, CLIENT_REPORT_COLUMNS)),
        buckets,
    )


def status_daily(base: DataFrame, before: DataFrame, after: DataFrame) -> DataFrame:
    moved = apply_difference(
        base,
        status_contributions(before),
        status_contributions(after),
        STATUS_DAILY_KEYS,
        STATUS_DAILY_MEASURES,
    )
    return conform(moved, STATUS_DAILY_COLUMNS)


# product_daily's latest line of a cell, as one comparable value.
_LATEST_FIELDS = ("latest_event_time", "latest_batch_id", "latest_order_id", "product_description")


def _latest_of_lines() -> Column:
    return F.max(
        F.struct(
            F.col(SOURCE_EVENT_TIME_COLUMN).alias("latest_event_time"),
            F.col(BATCH_ID_COLUMN).alias("latest_batch_id"),
            F.col("order_id").alias("latest_order_id"),
            "product_description",
        )
    )


def product_latest(lines: DataFrame) -> DataFrame:
    """Per product and cell, the most recent line's recency and description (`_latest`)."""
    return lines.groupBy(*PRODUCT_DAILY_KEYS).agg(_latest_of_lines().alias("_latest"))


def product_latest_checked(base: DataFrame, orders: DataFrame, after: DataFrame) -> DataFrame:
    """Per product and cell of the new version: the most recent line found without reading
    the untouched lines, and whether that is certain (`_settled`).

    The base row's latest line stays the cell's most recent unless it belonged to a touched
    order and is no longer current there; every untouched line is older than it. So the new
    latest is the greater of the base's (when still current) and the touched orders'
    current lines'; when the base's is gone and nothing newer replaces it, the cell must
    be recomputed from its lines.
    """
    still_there = after.select(
        F.col("order_id").alias("latest_order_id"),
        "product_id",
        F.col(BATCH_ID_COLUMN).alias("latest_batch_id"),
        F.col(SOURCE_EVENT_TIME_COLUMN).alias("latest_event_time"),
        *CELL,
        F.lit(True).alias("_current"),
    )
    touched = orders.select(
        F.col("order_id").alias("latest_order_id"), F.lit(True).alias("_touched")
    )
    checked = (
        base.join(F.broadcast(touched), on="latest_order_id", how="left")
        .join(
            still_there,
            on=["latest_order_id", "product_id", "latest_batch_id", "latest_event_time", *CELL],
            how="left",
        )
        .select(
            *PRODUCT_DAILY_KEYS,
            F.struct(*_LATEST_FIELDS).alias("_base"),
            (F.col("_touched").isNull() | F.col("_current").isNotNull()).alias("_kept"),
        )
    )
    merged = checked.join(product_latest(after), on=list(PRODUCT_DAILY_KEYS), how="full")
    base_wins = F.col("_kept") & (F.col("_latest").isNull() | (F.col("_base") > F.col("_latest")))
    return merged.select(
        *PRODUCT_DAILY_KEYS,
        F.when(base_wins, F.col("_base")).otherwise(F.col("_latest")).alias("_latest"),
        (
            F.col("_base").isNull()
            | F.col("_kept")
            | (F.col("_latest").isNotNull() & (F.col("_latest") > F.col("_base")))
        ).alias("_settled"),
    )


def product_daily(figures: DataFrame, latest: DataFrame) -> DataFrame:
    """product_daily from its additive figures and its cells' latest lines."""
    rows = figures.join(latest, on=list(PRODUCT_DAILY_KEYS), how="left").select(
        *PRODUCT_DAILY_KEYS,
        *(F.col(f"_latest.{name}").alias(name) for name in _LATEST_FIELDS),
        *PRODUCT_DAILY_MEASURES,
    )
    return conform(rows, PRODUCT_DAILY_COLUMNS)


def spanning_cells(lines: DataFrame) -> DataFrame:
    """The cells of the orders whose lines lie in more than one (channel, day) cell: one row
    per order and cell (status null) and per order, cell and status."""
    cells = lines.select("order_id", *CELL).distinct()
    spanning = cells.groupBy("order_id").count().where(F.col("count") > 1).select("order_id")
    spread = lines.join(spanning, on="order_id", how="left_semi")
    per_cell = spread.select("order_id", _NO_TEXT.alias("status"), *CELL)
    per_status = spread.select("order_id", "status", *CELL)
    return conform(per_cell.unionByName(per_status).distinct(), SPANNING_ORDER_CELLS_COLUMNS)


def orders_summary(totals: DataFrame) -> DataFrame:
    """The seed's summary from client_report's totals rows."""
    rows = totals.where((F.col("all_statuses") == 1) & (F.col("all_channels") == 1)).select(
        "client_id",
        "client_name",
        F.col("orders").alias("total_orders"),
        F.col("total_sales"),
    )
    return conform(rows, ORDERS_SUMMARY_COLUMNS)

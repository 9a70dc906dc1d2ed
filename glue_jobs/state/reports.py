"""The state's report tables from the touched orders' lines before and after a merge.

Additive figures (lines, units, sales, and distinct orders, since every line of a touched
order is in both `before` and `after`) move by the difference after - before of the
touched orders' contributions, so a merge never re-reads the untouched orders' lines. The
difference is taken from one frame of signed lines (`signed_lines`: before -1, after +1).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from duffbeer.contract import (
    BATCH_ID_COLUMN,
    CLIENT_ORDER_CELLS_COLUMNS,
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
CHANNEL = "point_of_sale_channel"
SIGN = "_sign"
CLIENT_GROUP = ("status", CHANNEL, "all_statuses", "all_channels")
STATUS_GROUP = ("status", *CELL, "all_statuses")
PRODUCT_KEYS = ("product_id", *CELL)
# product_daily's latest line of a cell, as one comparable value.
_LATEST_FIELDS = ("latest_event_time", "latest_batch_id", "latest_order_id", "product_description")


def _no_text() -> Column:
    return F.lit(None).cast("string")


def signed_lines(before: DataFrame, after: DataFrame) -> DataFrame:
    """The touched orders' lines before (sign -1) and after (sign +1) the merge."""
    columns = (
        "client_id",
        "order_id",
        "product_id",
        "product_description",
        "status",
        *CELL,
        "product_ccf",
        "line_total",
        "line_volume_l",
        BATCH_ID_COLUMN,
        SOURCE_EVENT_TIME_COLUMN,
    )
    return before.select(*columns, F.lit(-1).alias(SIGN)).unionByName(
        after.select(*columns, F.lit(1).alias(SIGN))
    )


def _signed(value: Column) -> Column:
    """A figure of an aggregated signed group, negative for the lines before."""
    return F.when(F.col(SIGN) < 0, F.negative(value)).otherwise(value)


def _grouped(frame: DataFrame, keys: Sequence[str], measures: Sequence[str]) -> DataFrame:
    """Sum the measures per key and drop the keys left with no line; a grouping treats null
    keys as equal (a join would not)."""
    counted = "lines" if "lines" in measures else "orders"
    return (
        frame.groupBy(*keys).agg(*(F.sum(m).alias(m) for m in measures)).where(F.col(counted) > 0)
    )


def _per_order_difference(
    changes: DataFrame, owner: Sequence[str], groups: Column, group_keys: Sequence[str]
) -> DataFrame:
    """Per owner key and group: after - before of distinct orders, lines, units and sales.
    Each line counts in every group of `groups` (an array of structs with `group_keys`)."""
    per_order = (
        changes.select(
            *owner, "order_id", SIGN, "product_ccf", "line_total", F.explode(groups).alias("_g")
        )
        .select(
            *owner,
            "order_id",
            SIGN,
            "product_ccf",
            "line_total",
            *(F.col(f"_g.{k}").alias(k) for k in group_keys),
        )
        .groupBy(SIGN, *owner, *group_keys, "order_id")
        .agg(
            F.count(F.lit(1)).alias("lines"),
            F.sum("product_ccf").alias("units"),
            F.sum("line_total").alias("total_sales"),
        )
    )
    return per_order.select(
        *owner,
        *group_keys,
        F.col(SIGN).cast("bigint").alias("orders"),
        _signed(F.col("lines")).alias("lines"),
        _signed(F.col("units")).alias("units"),
        _signed(F.col("total_sales")).cast(SUM_MONEY_TYPE).alias("total_sales"),
    )


def client_report(
    base: DataFrame, changes: DataFrame, *, clients: DataFrame, names: DataFrame
) -> DataFrame:
    """The client_report rows of the touched clients, moved by their orders' difference
    and named from `names` (`base` holds their rows before; any other client's rows in it
    are kept as they were)."""
    touched = F.broadcast(clients)
    groups = F.array(
        F.struct(
            _no_text().alias("status"),
            _no_text().alias(CHANNEL),
            F.lit(1).alias("all_statuses"),
            F.lit(1).alias("all_channels"),
        ),
        F.struct(
            F.col("status").alias("status"),
            _no_text().alias(CHANNEL),
            F.lit(0).alias("all_statuses"),
            F.lit(1).alias("all_channels"),
        ),
        F.struct(
            _no_text().alias("status"),
            F.col(CHANNEL).alias(CHANNEL),
            F.lit(1).alias("all_statuses"),
            F.lit(0).alias("all_channels"),
        ),
    )
    measures = ("orders", "lines", "units", "total_sales")
    keys = ("client_id", *CLIENT_GROUP)
    difference = _per_order_difference(changes, ("client_id",), groups, CLIENT_GROUP)
    moved = _grouped(
        base.join(touched, on="client_id", how="left_semi")
        .select(*keys, *measures)
        .unionByName(difference),
        keys,
        measures,
    ).join(names, on="client_id", how="left")
    kept = base.join(touched, on="client_id", how="left_anti")
    return conform(kept, CLIENT_REPORT_COLUMNS).unionByName(conform(moved, CLIENT_REPORT_COLUMNS))


def status_daily(base: DataFrame, changes: DataFrame) -> DataFrame:
    """Per status and cell (all_statuses = 0) and per cell (= 1): distinct orders, lines,
    sales, moved by the touched orders' difference."""
    groups = F.array(
        F.struct(
            F.col("status").alias("status"),
            *(F.col(c).alias(c) for c in CELL),
            F.lit(0).alias("all_statuses"),
        ),
        F.struct(
            _no_text().alias("status"),
            *(F.col(c).alias(c) for c in CELL),
            F.lit(1).alias("all_statuses"),
        ),
    )
    measures = ("orders", "lines", "total_sales")
    difference = _per_order_difference(changes, (), groups, STATUS_GROUP)
    moved = _grouped(
        base.select(*STATUS_GROUP, *measures).unionByName(
            difference.select(*STATUS_GROUP, *measures)
        ),
        STATUS_GROUP,
        measures,
    )
    return conform(moved, STATUS_DAILY_COLUMNS)


def _latest_struct(time: str, batch: str, order: str) -> Column:
    return F.struct(
        F.col(time).alias("latest_event_time"),
        F.col(batch).alias("latest_batch_id"),
        F.col(order).alias("latest_order_id"),
        F.col("product_description").alias("product_description"),
    )


def product_daily_figures(base: DataFrame, changes: DataFrame, replaced: DataFrame) -> DataFrame:
    """Per product and cell: the figures moved by the difference, the most recent line
    found without reading untouched lines (`_latest`) and whether it is certain
    (`_settled`).

    Every untouched line of a cell is older than the base row's latest line. If that line
    is still current, the cell's latest is the greater of it and the touched orders'
    current lines (the +1 lines); if it was replaced or removed (`replaced`: line keys),
    the touched orders' most recent line is the answer only when it is newer still.
    Otherwise (rare: a withdrawn batch held the latest line) the cell is recomputed from
    its lines by the caller.
    """
    gone = base.join(
        F.broadcast(
            replaced.select(F.col("order_id").alias("latest_order_id"), "product_id").withColumn(
                "_gone", F.lit(True)
            )
        ),
        on=["latest_order_id", "product_id"],
        how="left",
    ).select(
        *PRODUCT_KEYS,
        "orders",
        "units",
        "total_sales",
        "total_volume_l",
        F.when(F.col("_gone").isNull(), _latest_struct(*_LATEST_FIELDS[:3])).alias("_kept"),
        F.when(F.col("_gone"), _latest_struct(*_LATEST_FIELDS[:3])).alias("_gone"),
    )
    new_latest = _latest_struct(SOURCE_EVENT_TIME_COLUMN, BATCH_ID_COLUMN, "order_id")
    moved = changes.select(
        *PRODUCT_KEYS,
        F.col(SIGN).cast("bigint").alias("orders"),
        _signed(F.col("product_ccf").cast("bigint")).alias("units"),
        _signed(F.col("line_total")).cast(SUM_MONEY_TYPE).alias("total_sales"),
        _signed(F.col("line_volume_l")).cast(SUM_VOLUME_TYPE).alias("total_volume_l"),
        F.when(F.col(SIGN) > 0, new_latest).alias("_kept"),
        F.lit(None).cast(new_latest_type()).alias("_gone"),
    )
    figures = (
        gone.unionByName(moved)
        .groupBy(*PRODUCT_KEYS)
        .agg(
            F.sum("orders").alias("orders"),
            F.sum("units").alias("units"),
            F.sum("total_sales").alias("total_sales"),
            F.sum("total_volume_l").alias("total_volume_l"),
            F.max("_kept").alias("_latest"),
            F.max("_gone").alias("_gone"),
        )
        .where(F.col("orders") > 0)
    )
    return figures.select(
        *PRODUCT_KEYS,
        "orders",
        "units",
        "total_sales",
        "total_volume_l",
        "_latest",
        F.coalesce(
            F.col("_gone").isNull() | (F.col("_latest") > F.col("_gone")), F.lit(False)
        ).alias("_settled"),
    )


def new_latest_type() -> str:
    return (
        "struct<latest_event_time:timestamp,latest_batch_id:string,"
        "latest_order_id:int,product_description:string>"
    )


def product_latest(lines: DataFrame) -> DataFrame:
    """Per product and cell, the most recent line's recency and description (`_latest`)."""
    return lines.groupBy(*PRODUCT_KEYS).agg(
        F.max(_latest_struct(SOURCE_EVENT_TIME_COLUMN, BATCH_ID_COLUMN, "order_id")).alias(
            "_latest"
        )
    )


def product_daily(figures: DataFrame) -> DataFrame:
    rows = figures.select(
        *PRODUCT_KEYS,
        *(F.col(f"_latest.{name}").alias(name) for name in _LATEST_FIELDS),
        "orders",
        "units",
        "total_sales",
        "total_volume_l",
    )
    return conform(rows, PRODUCT_DAILY_COLUMNS)


def client_orders(lines: DataFrame) -> DataFrame:
    """Per client and order, from all of the order's current lines (CLIENT_ORDERS_COLUMNS)."""
    latest = F.max(
        F.struct(SOURCE_EVENT_TIME_COLUMN, BATCH_ID_COLUMN, "product_id", "client_name")
    ).alias("_latest")
    rows = lines.groupBy("client_id", "order_id").agg(
        F.min("order_date").alias("order_date"),
        F.min(CHANNEL).alias(CHANNEL),
        F.count(F.lit(1)).alias("lines"),
        F.sum("product_ccf").alias("units"),
        F.sum("line_total").cast(SUM_MONEY_TYPE).alias("total_sales"),
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
    return conform(named, CLIENT_ORDERS_COLUMNS)


def client_order_cells(lines: DataFrame) -> DataFrame:
    """Per client, order and cell, from all of the order's current lines
    (CLIENT_ORDER_CELLS_COLUMNS)."""
    rows = lines.groupBy("client_id", "order_id", *CELL).agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum("product_ccf").alias("units"),
        F.sum("line_total").cast(SUM_MONEY_TYPE).alias("total_sales"),
    )
    return conform(rows, CLIENT_ORDER_CELLS_COLUMNS)


def client_latest(orders: DataFrame) -> DataFrame:
    """Per client, its client_orders row of greatest (latest_event_time, latest_batch_id,
    order_id, latest_product_id): its most recent current line's recency and name (`_n`)."""
    latest = F.max(
        F.struct(
            "latest_event_time", "latest_batch_id", "order_id", "latest_product_id", "client_name"
        )
    )
    return orders.groupBy("client_id").agg(latest.alias("_n"))


def client_names(latest: DataFrame) -> DataFrame:
    """Each client's name, from `client_latest`."""
    return latest.select("client_id", F.col("_n.client_name").alias("client_name"))


def spanning_cells(lines: DataFrame) -> DataFrame:
    """The cells of the orders whose lines lie in more than one (channel, day) cell: one row
    per order and cell (status null) and per order, cell and status (one grouping)."""
    per_order = lines.groupBy("order_id").agg(F.collect_set(F.struct("status", *CELL)).alias("_s"))
    cells = F.array_distinct(
        F.transform(
            "_s",
            lambda s: F.struct(_no_text().alias("status"), *(s[c].alias(c) for c in CELL)),
        )
    )
    rows = (
        per_order.where(F.size(cells) > 1)
        .select("order_id", F.explode(F.concat("_s", cells)).alias("_r"))
        .select("order_id", "_r.*")
    )
    return conform(rows, SPANNING_ORDER_CELLS_COLUMNS)


def orders_summary(report: DataFrame) -> DataFrame:
    """The seed's summary from client_report's totals rows."""
    rows = report.where((F.col("all_statuses") == 1) & (F.col("all_channels") == 1)).select(
        "client_id",
        "client_name",
        F.col("orders").alias("total_orders"),
        F.col("total_sales"),
    )
    return conform(rows, ORDERS_SUMMARY_COLUMNS)

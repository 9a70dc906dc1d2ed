"""One aggregate over the checked rows gives every figure the job needs on the driver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from glue_jobs.orders.read import (
    BLOCK_COLUMN,
    CORRUPT_COLUMN,
    FILE_COLUMN,
    ROW_ID_COLUMN,
    quoted_line_break,
)
from glue_jobs.orders.validate import (
    BAD_UTF8_COLUMN,
    REASON_COLUMN,
    line_total,
    line_volume,
    typed,
)

BASE_ROW_COLUMN = "_base_row"
FIRST_ROW_ID_COLUMN = "_first_row_id"


@dataclass(frozen=True)
class BlockOffset:
    """Where one input split starts among its file's data rows (for 1-based row numbers)."""

    file_id: int
    block_start: int
    base_row: int
    first_row_id: int


@dataclass(frozen=True)
class BatchStats:
    rows_read: int
    rows_valid: int
    rejects_by_reason: dict[str, int]
    total_sales: Decimal
    total_volume_l: Decimal
    total_units: int
    partition_rows: dict[tuple[str, date], int]
    undecodable_rows: int
    # Malformed lines that are the ends of a quoted field cut at a line break: the file
    # must be parsed again as multi-line records.
    quoted_line_breaks: int
    blocks: tuple[BlockOffset, ...]

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejects_by_reason.values())


def batch_stats(checked: DataFrame) -> BatchStats:
    """Counts per reason, totals, rows per output partition and per input split, in one
    Spark action whose result has a handful of rows (splits x (reasons + partitions))."""
    valid = F.col(REASON_COLUMN).isNull()
    grouped = checked.groupBy(
        FILE_COLUMN,
        BLOCK_COLUMN,
        REASON_COLUMN,
        F.when(valid, F.col(typed("point_of_sale_channel"))).alias("channel"),
        F.when(valid, F.col(typed("order_date"))).alias("order_date"),
    ).agg(
        F.count(F.lit(1)).alias("rows"),
        F.min(ROW_ID_COLUMN).alias("first_row_id"),
        F.sum(F.when(valid, line_total())).alias("sales"),
        F.sum(F.when(valid, line_volume())).alias("volume_l"),
        F.sum(F.when(valid, F.col(typed("product_ccf")).cast("bigint"))).alias("units"),
        F.sum(F.col(BAD_UTF8_COLUMN).cast("int")).alias("undecodable"),
        F.sum(quoted_line_break(F.col(CORRUPT_COLUMN)).cast("int")).alias("quoted_breaks"),
    )
    rows = grouped.collect()

    rejects: dict[str, int] = {}
    partitions: dict[tuple[str, date], int] = {}
    blocks: dict[tuple[int, int], tuple[int, int]] = {}  # (rows, first row id)
    sales = Decimal("0.00")
    volume_l = Decimal("0.000")
    units = 0
    undecodable = 0
    quoted_breaks = 0
    for row in rows:
        count = int(row["rows"])
        reason = row[REASON_COLUMN]
        if reason is None:
            key = (str(row["channel"]), row["order_date"])
            partitions[key] = partitions.get(key, 0) + count
            sales += row["sales"] or 0
            volume_l += row["volume_l"] or 0
            units += int(row["units"] or 0)
        else:
            rejects[reason] = rejects.get(reason, 0) + count
        undecodable += int(row["undecodable"] or 0)
        quoted_breaks += int(row["quoted_breaks"] or 0)
        block = (int(row[FILE_COLUMN]), int(row[BLOCK_COLUMN]))
        seen_rows, seen_first = blocks.get(block, (0, int(row["first_row_id"])))
        blocks[block] = (seen_rows + count, min(seen_first, int(row["first_row_id"])))
    rows_read = sum(partitions.values()) + sum(rejects.values())
    return BatchStats(
        rows_read=rows_read,
        rows_valid=sum(partitions.values()),
        rejects_by_reason=rejects,
        total_sales=sales,
        total_volume_l=volume_l,
        total_units=units,
        partition_rows=partitions,
        undecodable_rows=undecodable,
        quoted_line_breaks=quoted_breaks,
        blocks=block_offsets(blocks),
    )


def block_offsets(blocks: dict[tuple[int, int], tuple[int, int]]) -> tuple[BlockOffset, ...]:
    """Number each file's rows across its splits: a split starts after the rows of the
    splits before it in the same file."""
    offsets: list[BlockOffset] = []
    base: dict[int, int] = {}
    for (file_id, start), (rows, first_row_id) in sorted(blocks.items()):
        offsets.append(BlockOffset(file_id, start, base.get(file_id, 0), first_row_id))
        base[file_id] = base.get(file_id, 0) + rows
    return tuple(offsets)


def with_source_row(
    spark: SparkSession, rows: DataFrame, blocks: tuple[BlockOffset, ...]
) -> DataFrame:
    """Add `source_row`: the 1-based position of each row among its file's data rows."""
    if not blocks:  # no row was read: nothing to number
        return rows.withColumn("source_row", F.lit(None).cast("bigint"))
    # A table of literals, planned in the JVM. spark.createDataFrame on a Python list would
    # ship it through a Python RDD (starting Python workers), and spark.range pays a second
    # of Scala reflection on first use; the values are integers formatted by this code.
    values = ", ".join(
        f"({b.file_id}L, {b.block_start}L, {b.base_row}L, {b.first_row_id}L)" for b in blocks
    )
    names = ", ".join((FILE_COLUMN, BLOCK_COLUMN, BASE_ROW_COLUMN, FIRST_ROW_ID_COLUMN))
    table = spark.sql(f"SELECT * FROM VALUES {values} AS splits({names})")
    position = F.col(BASE_ROW_COLUMN) + F.col(ROW_ID_COLUMN) - F.col(FIRST_ROW_ID_COLUMN) + 1
    return (
        rows.join(F.broadcast(table), on=[FILE_COLUMN, BLOCK_COLUMN], how="inner")
        .withColumn("source_row", position.cast("bigint"))
        .drop(BASE_ROW_COLUMN, FIRST_ROW_ID_COLUMN)
    )

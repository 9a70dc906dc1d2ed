"""One aggregate over the checked rows gives every figure the job needs on the driver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from glue_jobs.orders.read import BLOCK_COLUMN, FILE_COLUMN, ROW_ID_COLUMN
from glue_jobs.orders.validate import (
    BAD_UTF8_COLUMN,
    REASON_COLUMN,
    line_cents,
    line_millilitres,
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
    blocks: tuple[BlockOffset, ...]

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejects_by_reason.values())


# The low half of a bigint; the high half is what an arithmetic shift by 32 leaves.
_LOW_32_BITS = (1 << 32) - 1


def _exact_sum(values: Column, name: str) -> tuple[Column, Column]:
    """A sum of bigints that cannot wrap, as two bigint sums: of each value's high 32 bits
    and of its low 32 bits (the total is high x 2^32 + low, added exactly on the driver).
    Whole cents and millilitres are non-negative and under 2^60 (validate.line_cents), so
    the low sum could only wrap past 2^31 rows and the high sum past 2^35, and a group lies
    within one input split (at most 128 MiB, a few million rows). Summed as decimals
    instead, every row goes through a BigDecimal (half of this query's time)."""
    return (
        F.sum(F.shiftright(values, 32)).alias(f"{name}_high"),
        F.sum(values.bitwiseAND(F.lit(_LOW_32_BITS))).alias(f"{name}_low"),
    )


def _exact_total(row: Row, name: str) -> int:
    return (int(row[f"{name}_high"] or 0) << 32) + int(row[f"{name}_low"] or 0)


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
        *_exact_sum(F.when(valid, line_cents()), "cents"),
        *_exact_sum(F.when(valid, line_millilitres()), "ml"),
        F.sum(F.when(valid, F.col(typed("product_ccf")).cast("bigint"))).alias("units"),
        F.sum(F.col(BAD_UTF8_COLUMN).cast("int")).alias("undecodable"),
    )
    rows = grouped.collect()

    rejects: dict[str, int] = {}
    partitions: dict[tuple[str, date], int] = {}
    blocks: dict[tuple[int, int], tuple[int, int]] = {}  # (rows, first row id)
    cents = 0
    millilitres = 0
    units = 0
    undecodable = 0
    for row in rows:
        count = int(row["rows"])
        reason = row[REASON_COLUMN]
        if reason is None:
            key = (str(row["channel"]), row["order_date"])
            partitions[key] = partitions.get(key, 0) + count
            cents += _exact_total(row, "cents")
            millilitres += _exact_total(row, "ml")
            units += int(row["units"] or 0)
        else:
            rejects[reason] = rejects.get(reason, 0) + count
        undecodable += int(row["undecodable"] or 0)
        block = (int(row[FILE_COLUMN]), int(row[BLOCK_COLUMN]))
        seen_rows, seen_first = blocks.get(block, (0, int(row["first_row_id"])))
        blocks[block] = (seen_rows + count, min(seen_first, int(row["first_row_id"])))
    rows_read = sum(partitions.values()) + sum(rejects.values())
    return BatchStats(
        rows_read=rows_read,
        rows_valid=sum(partitions.values()),
        rejects_by_reason=rejects,
        total_sales=Decimal(cents).scaleb(-2),
        total_volume_l=Decimal(millilitres).scaleb(-3),
        total_units=units,
        partition_rows=partitions,
        undecodable_rows=undecodable,
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

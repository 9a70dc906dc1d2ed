"""Writing a run's Parquet outputs under runs/<batch_id>/<run_id>/ (never outside it)."""

from __future__ import annotations

import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from duffbeer.contract import BATCH_ID_COLUMN, REJECT_COLUMNS
from glue_jobs.orders.reports import PARTITION_NAMES

# Rows per rejects file: one file for any normal batch, more only for a huge one.
REJECT_ROWS_PER_FILE = 1_000_000


def write_order_lines(lines: DataFrame, path: str) -> None:
    """Curated lines partitioned by channel and date, one file per partition directory
    (each partition's rows meet in one task), sorted by line key inside it."""
    (
        lines.repartition(*PARTITION_NAMES)
        .sortWithinPartitions(*PARTITION_NAMES, "order_id", "product_id")
        .write.mode("overwrite")
        .partitionBy(*PARTITION_NAMES)
        .parquet(path)
    )


def write_report(report: DataFrame, sort_keys: tuple[str, ...], path: str) -> None:
    """A report is small: one sorted file. Its rows come from the kept table of report
    figures (reports.report_totals), so one task reading that table is all the write needs
    (no shuffle); over anything not yet computed, `coalesce(1)` would run the whole
    computation back to its last shuffle in that single task."""
    report.coalesce(1).sortWithinPartitions(*sort_keys).write.mode("overwrite").parquet(path)


def conform_rejects(rejects: DataFrame, batch_id: str) -> DataFrame:
    """Original fields as text, reason, detail, row number and batch, as contract.REJECT_COLUMNS."""
    provided = {BATCH_ID_COLUMN: F.lit(batch_id)}
    return rejects.select(
        *(provided.get(name, F.col(name)).cast(kind).alias(name) for name, kind in REJECT_COLUMNS)
    )


def write_rejects(rejects: DataFrame, rows: int, path: str) -> None:
    files = max(1, math.ceil(rows / REJECT_ROWS_PER_FILE))
    (
        rejects.repartition(files)
        .sortWithinPartitions("source_row")
        .write.mode("overwrite")
        .parquet(path)
    )

"""Writing a state version's tables under state/versions/<version>/ (never outside it)."""

from __future__ import annotations

import uuid

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from duffbeer.contract import CLIENT_BUCKET_COLUMN, CURRENT_LINES_BUCKET_COLUMN
from glue_jobs.state.tables import PARTITION_NAMES


def line_bucket(buckets: int) -> Column:
    """The Spark bucket of a current line: what bucketBy computes, pmod(hash(client_id), n),
    which Athena's 'bucketing_format' = 'spark' prunes on."""
    return F.expr(f"pmod(hash({CURRENT_LINES_BUCKET_COLUMN}), {buckets})")


def write_current_lines(lines: DataFrame, path: str, *, buckets: int, tasks: int) -> None:
    """Current lines partitioned by channel and day and bucketed by client inside each
    partition: one file per partition and bucket (`..._0000<bucket>.c000.snappy.parquet`).

    Spark only writes bucketed files through a catalog table, so the lines go through a
    temporary external table of the session catalog (a unique name, dropped at once;
    dropping an external table leaves its files).
    """
    table = f"duffbeer_state_lines_{uuid.uuid4().hex}"
    spark = lines.sparkSession
    try:
        (
            # Each (partition, bucket) in one task, so that it becomes one file.
            lines.repartition(tasks, *PARTITION_NAMES, line_bucket(buckets))
            .write.mode("overwrite")
            .format("parquet")
            .partitionBy(*PARTITION_NAMES)
            # No sortBy inside the buckets: a bucket file of a partition is one row group at
            # these sizes (10M lines: ~16k rows a file), so sorting it prunes nothing, and
            # the writer's sort of the whole rewrite would compare three more columns.
            .bucketBy(buckets, CURRENT_LINES_BUCKET_COLUMN)
            .option("path", path)
            .saveAsTable(table)
        )
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {table}")


def write_client_buckets(rows: DataFrame, path: str, sort_keys: tuple[str, ...]) -> None:
    """A per-client table's rewritten client_bucket partitions, one sorted file each."""
    (
        rows.repartition(F.col(CLIENT_BUCKET_COLUMN))
        .sortWithinPartitions(CLIENT_BUCKET_COLUMN, *sort_keys)
        .write.mode("overwrite")
        .partitionBy(CLIENT_BUCKET_COLUMN)
        .parquet(path)
    )


def write_small(rows: DataFrame, path: str, sort_keys: tuple[str, ...]) -> None:
    """A small unpartitioned table: one sorted file (an empty table still gets one, with
    the schema). The rows are kept already, so one task reading them needs no shuffle."""
    rows.coalesce(1).sortWithinPartitions(*sort_keys).write.mode("overwrite").parquet(path)

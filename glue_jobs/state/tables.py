"""Reading and conforming the state's tables: schemas from duffbeer.state, partitions by key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from duffbeer.contract import CURATED_DATA_COLUMNS, CURATED_PARTITION_COLUMNS
from duffbeer.state import STATE_TABLES, Columns, PartitionLocation, StateTable, TableLocation

LINE_COLUMNS: Columns = (*CURATED_DATA_COLUMNS, *CURATED_PARTITION_COLUMNS)
PARTITION_NAMES: tuple[str, ...] = tuple(name for name, _ in CURATED_PARTITION_COLUMNS)

# A key relative to the processed root -> a path Spark opens.
Resolve = Callable[[str], str]


def names(columns: Columns) -> list[str]:
    return [name for name, _ in columns]


def ddl(columns: Columns) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in columns)


def all_columns(table: StateTable) -> Columns:
    """A table's columns as Spark reads it back: data columns, then partition columns."""
    return (*table.columns, *table.partition_keys)


def conform(frame: DataFrame, columns: Columns) -> DataFrame:
    """Exactly these columns, in this order, with these types."""
    return frame.select(*(F.col(name).cast(kind).alias(name) for name, kind in columns))


def empty(spark: SparkSession, columns: Columns) -> DataFrame:
    return spark.createDataFrame([], ddl(columns))


def partition_root(location: str, levels: int) -> str:
    """The table directory a partition location sits in (its last `levels` names removed)."""
    parts = location.rstrip("/").split("/")
    return "/".join(parts[: len(parts) - levels]) + "/"


def read_partitions(
    spark: SparkSession,
    resolve: Resolve,
    columns: Columns,
    levels: int,
    locations: Sequence[str],
) -> DataFrame:
    """The rows of some partition directories, partition columns included.

    A version reuses partitions written by earlier versions, so the directories may sit under
    several table roots; Spark's partition discovery needs one base path per read, so each
    root is one read (at most one per partition, however many versions there were) and the
    reads are unioned. Only the listed directories are listed, never a whole table.
    """
    if not locations:
        return empty(spark, columns)
    by_root: dict[str, list[str]] = {}
    for location in locations:
        by_root.setdefault(partition_root(location, levels), []).append(location)
    schema = ddl(columns)
    frames = [
        spark.read.schema(schema)
        .option("basePath", resolve(root))
        .parquet(*(resolve(location) for location in sorted(group)))
        for root, group in sorted(by_root.items())
    ]
    return reduce(DataFrame.unionByName, frames)


def read_table(
    spark: SparkSession,
    resolve: Resolve,
    name: str,
    location: TableLocation | None,
    keep: Callable[[PartitionLocation], bool] | None = None,
) -> DataFrame:
    """A state table of a version (empty when there is no version yet); of a partitioned
    table only the partitions `keep` accepts are read."""
    table = STATE_TABLES[name]
    columns = all_columns(table)
    if location is None:
        return empty(spark, columns)
    if not table.partitioned:
        return spark.read.schema(ddl(columns)).parquet(resolve(location["location"]))
    partitions = [p for p in location.get("partitions", []) if keep is None or keep(p)]
    return read_partitions(
        spark,
        resolve,
        columns,
        len(table.partition_keys),
        [p["location"] for p in partitions],
    )


def read_lines(spark: SparkSession, resolve: Resolve, lines_prefixes: Sequence[str]) -> DataFrame:
    """Published runs' curated lines (runs/<batch>/<run>/order_lines/), partition columns
    included, each run read with its own base path."""
    if not lines_prefixes:
        return empty(spark, LINE_COLUMNS)
    schema = ddl(LINE_COLUMNS)
    frames = [
        spark.read.schema(schema).option("basePath", resolve(prefix)).parquet(resolve(prefix))
        for prefix in sorted(lines_prefixes)
    ]
    return reduce(DataFrame.unionByName, frames)

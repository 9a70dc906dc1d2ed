"""Schemas of the state job's frames and the published runs' lines it reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from duffbeer.contract import CURATED_DATA_COLUMNS, CURATED_PARTITION_COLUMNS
from duffbeer.state import Columns

LINE_COLUMNS: Columns = (*CURATED_DATA_COLUMNS, *CURATED_PARTITION_COLUMNS)
PARTITION_NAMES: tuple[str, ...] = tuple(name for name, _ in CURATED_PARTITION_COLUMNS)

# A key relative to the processed root -> a path Spark opens.
Resolve = Callable[[str], str]


def names(columns: Columns) -> list[str]:
    return [name for name, _ in columns]


def ddl(columns: Columns) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in columns)


def conform(frame: DataFrame, columns: Columns) -> DataFrame:
    """Exactly these columns, in this order, with these types."""
    return frame.select(*(F.col(name).cast(kind).alias(name) for name, kind in columns))


def empty(spark: SparkSession, columns: Columns) -> DataFrame:
    return spark.createDataFrame([], ddl(columns))


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

"""The current lines of the touched orders and what they change, as DataFrame -> DataFrame steps.

Names used throughout (docs/adr/0045): S the base publication's current lines, N the
merged batch's published lines, W the withdrawn batch (the run the state held for it), T
the touched orders, S_T the base's current lines of T ("before") and S_T' their current
lines after the merge ("after").
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from duffbeer.contract import (
    BATCH_ID_COLUMN,
    LINE_KEY,
    RECENCY_KEY,
)
from glue_jobs.state.tables import LINE_COLUMNS, PARTITION_NAMES, names

# Where a candidate version of a line comes from: kept from the base, or new in this merge
# (a changed batch, or an older version found again after a withdrawal).
ORIGIN_COLUMN = "_origin"
FROM_BASE = 0
FROM_BATCHES = 1

_LINE_NAMES = names(LINE_COLUMNS)


def withdrawn(lines: DataFrame, batches: Sequence[str]) -> Column:
    return F.col(BATCH_ID_COLUMN).isin(list(batches)) if batches else F.lit(False)


def touched_orders(
    new_lines: DataFrame, base_lines: DataFrame, batches: Sequence[str]
) -> DataFrame:
    """T: the orders of the new lines and of the base lines whose batch is withdrawn."""
    orders = new_lines.select("order_id")
    if batches:
        orders = orders.unionByName(
            base_lines.where(withdrawn(base_lines, batches)).select("order_id")
        )
    return orders.distinct()


def orphan_keys(before: DataFrame, new_lines: DataFrame, batches: Sequence[str]) -> DataFrame:
    """Line keys whose base version is withdrawn and that no new version at least as recent
    replaces: only for these can an older version in a batch the merge does not otherwise
    read be current now.

    Any other live batch holding such a key is older than the withdrawn version (the base
    held the most recent one), so a new version at least as recent settles the key without
    looking back.
    """
    gone = before.where(withdrawn(before, batches)).select(
        *LINE_KEY, F.struct(*RECENCY_KEY).alias("_gone")
    )
    newest = new_lines.groupBy(*LINE_KEY).agg(F.max(F.struct(*RECENCY_KEY)).alias("_newest"))
    return (
        gone.join(newest, on=list(LINE_KEY), how="left")
        .where(F.col("_newest").isNull() | (F.col("_newest") < F.col("_gone")))
        .select(*LINE_KEY)
    )


def current_lines(candidates: DataFrame) -> DataFrame:
    """Per line key, the most recent candidate version (RECENCY_KEY: latest upload wins,
    ties broken by batch id), with its origin."""
    others = [name for name in (*_LINE_NAMES, ORIGIN_COLUMN) if name not in RECENCY_KEY]
    packed = F.struct(*RECENCY_KEY, *others)
    return (
        candidates.groupBy(*LINE_KEY)
        .agg(F.max(packed).alias("_v"))
        .select(*(F.col(f"_v.{name}").alias(name) for name in (*_LINE_NAMES, ORIGIN_COLUMN)))
    )


def candidates(
    before: DataFrame, new_lines: DataFrame, fallback: DataFrame, batches: Sequence[str]
) -> DataFrame:
    """The versions that compete for the touched orders' keys: the base's current lines
    unless withdrawn, the changed batches' lines and the older versions found again."""
    kept = before.where(~withdrawn(before, batches)).select(
        *_LINE_NAMES, F.lit(FROM_BASE).alias(ORIGIN_COLUMN)
    )
    found = new_lines.unionByName(fallback).select(
        *_LINE_NAMES, F.lit(FROM_BATCHES).alias(ORIGIN_COLUMN)
    )
    return kept.unionByName(found)


def replaced_lines(before: DataFrame, after: DataFrame) -> DataFrame:
    """The base lines of the touched orders that the merge replaces or removes (their keys
    and partitions): every one whose key is not current from the base any more."""
    unchanged = after.where(F.col(ORIGIN_COLUMN) == FROM_BASE).select(*LINE_KEY)
    return before.join(unchanged, on=list(LINE_KEY), how="left_anti").select(
        *LINE_KEY, *PARTITION_NAMES
    )

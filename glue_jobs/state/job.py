"""One merge: a batch's published run into the state's Iceberg tables, published in one commit."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from duffbeer import naming, utc
from duffbeer.contract import LINE_KEY
from duffbeer.errors import BatchNotPublishedError, StateConflictError
from duffbeer.state import (
    CLIENT_ORDER_CELLS_TABLE,
    CLIENT_ORDERS_TABLE,
    CLIENT_REPORT_TABLE,
    CURRENT_LINES_TABLE,
    KIND_MERGE,
    ORDERS_SUMMARY_TABLE,
    PRODUCT_DAILY_TABLE,
    SPANNING_ORDER_CELLS_TABLE,
    STATE_TABLES,
    STATUS_DAILY_TABLE,
    BatchRun,
    MergePlan,
    Publication,
    held_runs,
    plan_merge,
)
from glue_jobs.orders.logs import JobLogger
from glue_jobs.orders.storage import HadoopStorage
from glue_jobs.state import merge, reports
from glue_jobs.state.args import StateJobArgs
from glue_jobs.state.catalog import Base, StateCatalog, branch_name, is_commit_conflict
from glue_jobs.state.pointers import pointer_store
from glue_jobs.state.tables import LINE_COLUMNS, empty, read_lines

Clock = Callable[[], datetime]

# Touched orders up to this many are broadcast to the scans that look them up (about
# 16 bytes each on the wire); beyond it Spark joins by shuffling both sides.
BROADCAST_ORDERS = 2_000_000
# Rows per task of the shuffles over the touched orders' lines.
ROWS_PER_SHUFFLE_PARTITION = 1_000_000
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
# Session settings of a merge (the previous values are put back after it). A merge runs
# some thirty short queries over small frames and sizes its shuffles itself; adaptive
# execution makes every shuffle stage a job of its own and re-plans around it.
MERGE_SETTINGS: dict[str, str] = {"spark.sql.adaptive.enabled": "false"}
# Where a replaced line lived: the lines MERGE then scans only those partitions.
_OLD_CHANNEL, _OLD_DATE = "_old_channel", "_old_date"
# A merge that lost the publication waits before starting again: exponential backoff with
# full jitter, so that merges started together do not collide again.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0

UP_TO_DATE = "up_to_date"
PUBLISHED = "published"


def _months_of(changes: DataFrame) -> Column:
    """The whole months the changed lines' dates fall in: the rows the per-day tables
    rewrite (they are partitioned by month, so a month is rewritten whole)."""
    firsts = sorted(
        row[0] for row in changes.select(F.trunc("order_date", "month")).distinct().collect()
    )
    scope = F.lit(False)
    for first in firsts:
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        month = (F.col("order_date") >= F.lit(first)) & (F.col("order_date") < F.lit(following))
        scope = scope | month
    return scope


def tasks_for(rows: int, cores: int, per_task: int) -> int:
    """A multiple of the cores, so that every core runs the same number of tasks."""
    return cores * max(1, math.ceil(rows / (cores * per_task)))


@dataclass(frozen=True)
class Touched:
    """What a merge changes: the touched orders T (as joins look them up), their current
    lines in the base (before) and after the merge (with their origin), the base lines
    the merge replaces or removes, both sides as signed lines (reports.signed_lines), the
    base's current lines, the months the lines fall in, and the latest upload time any
    untouched line may carry."""

    orders: DataFrame
    before: DataFrame
    after: DataFrame
    replaced: DataFrame
    changes: DataFrame
    base_lines: DataFrame
    # The months the per-day tables rewrite; the latest upload time of the untouched lines.
    months: Column
    untouched_until: datetime | None


def _untouched(held: dict[str, BatchRun], plan: MergePlan) -> list[BatchRun]:
    """The runs the state holds for the batches the plan does not change."""
    return [run for batch_id, run in sorted(held.items()) if batch_id not in plan.merged]


@dataclass(frozen=True)
class MergeOutcome:
    """How the job ended: runs merged and published (`merged`: batch id -> run id; `seq`
    of the publication), or the batch already in the state (the latest publication's)."""

    outcome: str
    merged: dict[str, str]
    seq: int | None
    attempts: int
    facts: dict[str, object] = field(default_factory=dict)


class StateMerge:
    """Merges one batch's published run; `run()` retries on a newer publication."""

    def __init__(
        self,
        args: StateJobArgs,
        spark: SparkSession,
        log: JobLogger,
        *,
        storage: HadoopStorage | None = None,
        s3: Any | None = None,
        clock: Clock = utc.now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.args = args
        self.spark = spark
        self.log = log
        self.storage = storage or HadoopStorage(spark)
        self.pointers = pointer_store(args, self.storage, s3)
        self.clock = clock
        self.sleep = sleep
        self.catalog = StateCatalog(spark, args.database)
        self.timings: dict[str, float] = {}
        self._kept: list[DataFrame] = []

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.timings[name] = round(self.timings.get(name, 0.0) + time.monotonic() - start, 3)

    def _keep(self, frame: DataFrame) -> DataFrame:
        """Rows several queries read, computed by the first of them. Persisted (memory,
        spilling to disk) rather than checkpointed locally: a lost executor's blocks are
        recomputed from the plan."""
        kept = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self._kept.append(kept)
        return kept

    @contextmanager
    def _settings(self, settings: dict[str, str]) -> Iterator[None]:
        """Session settings for the merge's queries, restored afterwards (the session may
        be shared: tests, a long-lived local session)."""
        conf = self.spark.conf
        previous = {key: conf.get(key, None) for key in (*settings, SHUFFLE_PARTITIONS)}
        for key, value in settings.items():
            conf.set(key, value)
        try:
            yield
        finally:
            for key, old in previous.items():
                if old is None:
                    conf.unset(key)
                else:
                    conf.set(key, old)

    # --- Deciding and publishing -----------------------------------------------------------

    def run(self) -> MergeOutcome:
        with self._phase("tables"):
            self.catalog.ensure_tables()
        for attempt in range(1, self.args.max_attempts + 1):
            base = self.catalog.base()
            held = held_runs(self.catalog.publication_rows(base))
            plan = plan_merge(held, self._published_runs(held))
            if plan is None:
                # Already merged (a re-run, or another merge took the batch in): make sure
                # main follows the latest publication, in case a job stopped before it did.
                latest = self.catalog.follow_latest()
                self.log.info("batch already in the state", fields={"seq": base.next_seq - 1})
                return MergeOutcome(UP_TO_DATE, {}, latest.seq if latest else None, attempt)
            try:
                publication = self._merge_on_branch(plan, base, held, attempt)
            except Exception as e:
                # A table commit on the branch that lost to other merges' commits more times
                # than Iceberg retries it: nothing is published; merge again.
                if not is_commit_conflict(e):
                    raise
                self.log.warning("a commit on the branch lost", fields={"error": str(e)[:300]})
                publication = None
            if publication is not None:
                with self._phase("follow"):
                    self.catalog.follow_latest()
                facts: dict[str, object] = {"timings": dict(self.timings)}
                self.log.info(
                    "state published",
                    fields={"seq": publication.seq, "merged": plan.merged, **facts},
                )
                return MergeOutcome(PUBLISHED, plan.merged, publication.seq, attempt, facts)
            delay = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt))  # noqa: S311
            self.log.info(
                "another merge published first; merging again on its publication",
                fields={"attempt": attempt, "wait_s": round(delay, 2)},
            )
            self.sleep(delay)
        raise StateConflictError(
            f"batch {self.args.batch_id}: other merges published first "
            f"{self.args.max_attempts} times in a row"
        )

    def _merge_on_branch(
        self, plan: MergePlan, base: Base, held: dict[str, BatchRun], attempt: int
    ) -> Publication | None:
        """Write the merge on a branch, publish it; None when another publication landed
        since `base` (nothing of this attempt is visible then)."""
        self.catalog.start(branch_name(self.args.run_id, attempt))
        try:
            with self._settings(MERGE_SETTINGS):
                self._merge(plan, base, _untouched(held, plan))
            publication = Publication(
                seq=base.next_seq,
                published_at=self.clock(),
                kind=KIND_MERGE,
                snapshots=self.catalog.heads(base),
                merged=plan.merged,
            )
            with self._phase("publish"):
                landed = self.catalog.publish(publication, base, self.args.run_id, plan.changes)
        finally:
            self.catalog.drop_branches()
            for frame in self._kept:
                frame.unpersist()
            self._kept.clear()
        return publication if landed else None

    def _published_runs(self, held: dict[str, BatchRun]) -> list[BatchRun]:
        """The published runs a merge may take in: the job's own batch's, and any other
        batch's whose pointer moved since the state took it in (its ETag changed) and whose
        run this job can read. The state then catches up on batches published meanwhile,
        whatever merge runs first."""
        pointers = self.pointers
        own = pointers.read(self.args.batch_id)
        if own is None:
            raise BatchNotPublishedError(
                f"batch {self.args.batch_id} has no pointer: it is not published"
            )
        runs = [own]
        for batch_id, etag in pointers.listing():
            seen = held.get(batch_id)
            if batch_id == self.args.batch_id or (seen is not None and seen.pointer_etag == etag):
                continue
            run = pointers.read(batch_id)
            # A run published after this job's view of the bucket was made is left to its
            # own execution's merge (locally, the view is a copy made when the job started).
            key = naming.run_manifest_key(batch_id, run.run_id) if run else None
            if run is not None and key and self.storage.exists(self.args.path(key)):
                runs.append(run)
        return runs

    # --- The merge -------------------------------------------------------------------------

    def _merge(self, plan: MergePlan, base: Base, untouched: list[BatchRun]) -> None:
        """The merge on the branch; `untouched` are the runs the state holds for the batches
        the plan does not change."""
        spark, catalog = self.spark, self.catalog
        withdrawn = [run.batch_id for run in plan.withdrawn]
        with self._phase("read"):
            new_lines = read_lines(
                spark, self.args.path, [run.lines_prefix for run in plan.changes]
            )
            cores = spark.sparkContext.defaultParallelism
            # A count of Parquet files reads their footers only.
            spark.conf.set(
                SHUFFLE_PARTITIONS,
                str(tasks_for(new_lines.count(), cores, ROWS_PER_SHUFFLE_PARTITION)),
            )
            base_lines = catalog.read_at(CURRENT_LINES_TABLE, base.snapshots[CURRENT_LINES_TABLE])
        with self._phase("current_lines"):
            orders = self._keep(merge.touched_orders(new_lines, base_lines, withdrawn))
            lookup = F.broadcast(orders) if orders.count() <= BROADCAST_ORDERS else orders
            before = self._keep(base_lines.join(lookup, on="order_id", how="left_semi"))
            fallback = self._fallback(untouched, before, new_lines, withdrawn)
            after = self._keep(
                merge.current_lines(merge.candidates(before, new_lines, fallback, withdrawn))
            )
            replaced = self._keep(merge.replaced_lines(before, after))
            changes = self._keep(reports.signed_lines(before, after))
            touched = Touched(
                orders=lookup,
                before=before,
                after=after,
                replaced=replaced,
                changes=changes,
                base_lines=base_lines,
                months=_months_of(changes),
                untouched_until=max((run.source_event_time for run in untouched), default=None),
            )
        with self._phase("write"):
            self._write_lines(base, touched)
            self._write_client_tables(base, touched)
            self._write_client_order_cells(base, touched)
            self._write_product_daily(base, touched)
            self._write_status_daily(base, touched)
            self._write_spanning_cells(base, touched)

    def _fallback(
        self,
        untouched: list[BatchRun],
        before: DataFrame,
        new_lines: DataFrame,
        withdrawn: list[str],
    ) -> DataFrame:
        """The older versions of the line keys a withdrawal leaves without a current version
        (merge.orphan_keys), from the other batches the state holds: the one read of versions
        that are not current. Nothing is read without such keys."""
        nothing = empty(self.spark, LINE_COLUMNS)
        if not withdrawn:
            return nothing
        orphans = self._keep(merge.orphan_keys(before, new_lines, withdrawn))
        if not orphans.count():
            return nothing
        others = [run.lines_prefix for run in untouched]
        return self._keep(
            read_lines(self.spark, self.args.path, others).join(
                F.broadcast(orphans), on=list(LINE_KEY), how="left_semi"
            )
        )

    def _old_rows(self, base: Base, table: str, groups: DataFrame, on: list[str]) -> DataFrame:
        """The base rows of a table that belong to the touched groups."""
        rows = self.catalog.read_at(table, base.snapshots[table])
        return self._keep(rows.join(F.broadcast(groups), on=on, how="left_semi"))

    def _write_lines(self, base: Base, touched: Touched) -> None:
        self.catalog.merge_rows(
            STATE_TABLES[CURRENT_LINES_TABLE],
            base,
            touched.after.where(F.col(merge.ORIGIN_COLUMN) == merge.FROM_BATCHES),
            touched.replaced.select(
                *LINE_KEY,
                F.col("point_of_sale_channel").alias(_OLD_CHANNEL),
                F.col("order_date").alias(_OLD_DATE),
            ),
            located_by={"point_of_sale_channel": _OLD_CHANNEL, "order_date": _OLD_DATE},
        )

    def _write_client_tables(self, base: Base, touched: Touched) -> None:
        """client_orders, then client_report and orders_summary of the touched clients,
        whose names come from the client_orders rows."""
        catalog = self.catalog
        clients = self._keep(touched.changes.select("client_id").distinct())
        old_orders = catalog.read_at(CLIENT_ORDERS_TABLE, base.snapshots[CLIENT_ORDERS_TABLE]).join(
            touched.orders, on="order_id", how="left_semi"
        )
        new_orders = self._keep(reports.client_orders(touched.after))
        catalog.merge_rows(STATE_TABLES[CLIENT_ORDERS_TABLE], base, new_orders, old_orders)
        names = self._client_names(base, touched, new_orders, clients)
        old_report = self._old_rows(base, CLIENT_REPORT_TABLE, clients, ["client_id"])
        report = self._keep(
            reports.client_report(old_report, touched.changes, clients=clients, names=names)
        )
        catalog.merge_rows(STATE_TABLES[CLIENT_REPORT_TABLE], base, report, old_report)
        catalog.rewrite_rows(
            STATE_TABLES[ORDERS_SUMMARY_TABLE],
            base,
            reports.orders_summary(report),
            self._old_rows(base, ORDERS_SUMMARY_TABLE, clients, ["client_id"]),
        )

    def _write_client_order_cells(self, base: Base, touched: Touched) -> None:
        table = STATE_TABLES[CLIENT_ORDER_CELLS_TABLE]
        if base.publication is not None and table.name not in base.publication.snapshots:
            # A table added by a later release: the first merge after the upgrade builds it
            # from every current line (the untouched orders' as the base holds them).
            columns = ["client_id", "order_id", *reports.CELL, "product_ccf", "line_total"]
            lines = (
                touched.base_lines.join(touched.orders, on="order_id", how="left_anti")
                .select(*columns)
                .unionByName(touched.after.select(*columns))
            )
            rows = self._keep(reports.client_order_cells(lines))
            self.catalog.rewrite_rows(table, base, rows, rows)
            return
        old = self.catalog.read_at(table.name, base.snapshots[table.name]).join(
            touched.orders, on="order_id", how="left_semi"
        )
        self.catalog.merge_rows(table, base, reports.client_order_cells(touched.after), old)

    def _client_names(
        self, base: Base, touched: Touched, recomputed: DataFrame, clients: DataFrame
    ) -> DataFrame:
        """The touched clients' names: from the most recent of their current lines.

        A client's untouched orders' lines come from the other batches the state holds,
        uploaded at `untouched_until` at the latest; a touched line uploaded after that is
        the client's most recent. Only the clients without one (an older upload processed
        late, a client whose lines moved away) are looked up in all their client_orders
        rows after the merge.
        """
        newest = self._keep(reports.client_latest(recomputed))
        settled = newest
        if touched.untouched_until is not None:
            # The table keeps microseconds and the documents milliseconds: a millisecond more.
            horizon = touched.untouched_until + timedelta(milliseconds=1)
            settled = newest.where(F.col("_n.latest_event_time") > F.lit(horizon))
        open_clients = self._keep(clients.join(settled, on="client_id", how="left_anti"))
        names = reports.client_names(settled)
        if open_clients.count():
            rows = self.catalog.read_branch(CLIENT_ORDERS_TABLE, base).join(
                F.broadcast(open_clients), on="client_id", how="left_semi"
            )
            names = names.unionByName(reports.client_names(reports.client_latest(rows)))
        return names

    def _write_product_daily(self, base: Base, touched: Touched) -> None:
        keys = list(reports.PRODUCT_KEYS)
        changes = touched.changes
        old = self._old_rows(base, PRODUCT_DAILY_TABLE, changes.select(*keys).distinct(), keys)
        figures = self._keep(reports.product_daily_figures(old, changes, touched.replaced))
        unsettled = figures.where(~F.col("_settled")).select(*keys)
        if unsettled.count():
            figures = self._recompute_latest(touched, figures, unsettled)
        self.catalog.rewrite_rows(
            STATE_TABLES[PRODUCT_DAILY_TABLE],
            base,
            reports.product_daily(figures),
            old,
            touched.months,
        )

    def _recompute_latest(
        self, touched: Touched, figures: DataFrame, unsettled: DataFrame
    ) -> DataFrame:
        """The latest line of the cells where the base's went away and nothing newer came,
        from those cells' lines after the merge: the base's, less the touched orders', plus
        the touched orders' current lines (rare: a withdrawn batch held it)."""
        keys = list(reports.PRODUCT_KEYS)
        cells = F.broadcast(unsettled)
        untouched = touched.base_lines.join(cells, on=keys, how="left_semi").join(
            touched.orders, on="order_id", how="left_anti"
        )
        current = touched.after.join(cells, on=keys, how="left_semi").select(*untouched.columns)
        recomputed = reports.product_latest(untouched.unionByName(current))
        return (
            figures.join(
                recomputed.withColumnRenamed("_latest", "_recomputed"), on=keys, how="left"
            )
            .withColumn("_latest", F.coalesce("_recomputed", "_latest"))
            .drop("_recomputed")
        )

    def _write_status_daily(self, base: Base, touched: Touched) -> None:
        cells = list(reports.CELL)
        changes = touched.changes
        old = self._old_rows(base, STATUS_DAILY_TABLE, changes.select(*cells).distinct(), cells)
        self.catalog.rewrite_rows(
            STATE_TABLES[STATUS_DAILY_TABLE],
            base,
            reports.status_daily(old, changes),
            old,
            touched.months,
        )

    def _write_spanning_cells(self, base: Base, touched: Touched) -> None:
        self.catalog.rewrite_rows(
            STATE_TABLES[SPANNING_ORDER_CELLS_TABLE],
            base,
            reports.spanning_cells(touched.after),
            self._old_rows(base, SPANNING_ORDER_CELLS_TABLE, touched.orders, ["order_id"]),
        )

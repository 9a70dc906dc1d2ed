"""One merge: read the plan, merge the changed batches into a new state version, write it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from duffbeer import naming, utc
from duffbeer.contract import CLIENT_BUCKET_COLUMN, CURATED_PARTITION_COLUMNS, LINE_KEY
from duffbeer.errors import StateNotPublishedError
from duffbeer.state import (
    CLIENT_ORDERS_TABLE,
    CLIENT_REPORT_TABLE,
    CURRENT_LINES_TABLE,
    ORDERS_SUMMARY_TABLE,
    PRODUCT_DAILY_TABLE,
    SPANNING_ORDER_CELLS_TABLE,
    STATE_FORMAT,
    STATE_TABLES,
    STATUS_DAILY_TABLE,
    MergeFacts,
    MergePlan,
    PartitionLocation,
    StateManifest,
    TableLocation,
    dumps,
    loads_manifest,
    loads_plan,
    loads_pointer,
    table_prefix,
)
from glue_jobs.orders.logs import JobLogger
from glue_jobs.orders.storage import HadoopStorage
from glue_jobs.state import merge, reports
from glue_jobs.state.args import StateJobArgs
from glue_jobs.state.tables import (
    LINE_COLUMNS,
    PARTITION_NAMES,
    all_columns,
    conform,
    ddl,
    empty,
    read_lines,
    read_partitions,
    read_table,
)
from glue_jobs.state.write import write_client_buckets, write_current_lines, write_small

Clock = Callable[[], datetime]
Cell = tuple[str, str]  # (channel, YYYY-MM-DD): a partition of the current lines

# Touched orders up to this many are broadcast to the scans that look them up (about
# 16 bytes each on the wire); beyond it Spark joins by shuffling both sides.
BROADCAST_ORDERS = 2_000_000
# Rows per task of the shuffles over the touched orders' lines, and of the line rewrite.
ROWS_PER_SHUFFLE_PARTITION = 1_000_000
ROWS_PER_WRITE_TASK = 700_000
# Session settings of a merge (the previous values are put back after it). A merge runs
# some twenty short queries over small frames and sizes its shuffles itself; adaptive
# execution makes every shuffle stage a job of its own and re-plans around it (measured:
# a two-line merge ran 828 tasks in 77 jobs with it, 344 tasks in 27 jobs without).
MERGE_SETTINGS: dict[str, str] = {"spark.sql.adaptive.enabled": "false"}
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
# The small tables' sort order inside their one file.
SMALL_TABLE_ORDER: dict[str, tuple[str, ...]] = {
    PRODUCT_DAILY_TABLE: reports.PRODUCT_KEYS,
    STATUS_DAILY_TABLE: ("all_statuses", *reports.STATUS_GROUP),
    SPANNING_ORDER_CELLS_TABLE: ("order_id", *reports.CELL, "status"),
    ORDERS_SUMMARY_TABLE: ("client_id",),
}


def tasks_for(rows: int, cores: int, per_task: int) -> int:
    """A multiple of the cores, so that every core runs the same number of tasks."""
    return cores * max(1, math.ceil(rows / (cores * per_task)))


def _cell(channel: str, day: date | str) -> Cell:
    return channel, day if isinstance(day, str) else day.isoformat()


def _partition_cell(partition: PartitionLocation) -> Cell:
    values = partition["values"]
    return _cell(values["point_of_sale_channel"], values["order_date"])


def _bucket(partition: PartitionLocation) -> int:
    return int(partition["values"][CLIENT_BUCKET_COLUMN])


def _partitions(table: TableLocation | None) -> list[PartitionLocation]:
    return list(table.get("partitions", [])) if table is not None else []


def _untouched_until(plan: MergePlan) -> datetime | None:
    """The latest upload time a line of an untouched order may carry: that of the newest
    live batch the plan does not change (None: there is none), plus a millisecond, since
    the documents keep milliseconds and the lines may keep microseconds."""
    changed = {c["batch_id"] for c in plan["changes"]}
    times = [
        utc.parse(live["source_event_time"])
        for batch_id, live in plan["batches"].items()
        if batch_id not in changed
    ]
    return max(times) + timedelta(milliseconds=1) if times else None


@dataclass(frozen=True)
class Touched:
    """What a merge changes: the touched orders T (as joins look them up), their current
    lines in the base (before) and in the new version (after, with their origin), and
    both as signed lines (reports.signed_lines)."""

    orders: DataFrame
    before: DataFrame
    after: DataFrame
    changes: DataFrame


class StateMerge:
    """Carries out one merge plan; `run()` returns the version manifest it wrote, the one
    already there (a re-run), or None when the plan is stale (nothing written)."""

    def __init__(
        self,
        args: StateJobArgs,
        spark: SparkSession,
        log: JobLogger,
        *,
        storage: HadoopStorage | None = None,
        clock: Clock = utc.now,
    ) -> None:
        self.args = args
        self.spark = spark
        self.log = log
        self.storage = storage or HadoopStorage(spark)
        self.clock = clock
        self.timings: dict[str, float] = {}
        self._kept: list[DataFrame] = []

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - start

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

    def _read_text(self, key: str) -> str | None:
        return self.storage.read_text(self.args.path(key))

    # --- Deciding whether to merge ---------------------------------------------------------

    def run(self) -> StateManifest | None:
        text = self._read_text(self.args.plan_key)
        if text is None:
            raise StateNotPublishedError(f"no merge plan at {self.args.plan_key}")
        plan = loads_plan(text)
        version = plan["version"]
        if naming.state_plan_key(version) != self.args.plan_key:
            raise StateNotPublishedError(f"{self.args.plan_key} holds the plan of {version}")
        built = self._read_text(naming.state_manifest_key(version))
        if built is not None:
            self.log.info("version already built", fields={"version": version})
            return loads_manifest(built)
        stale = self._stale_because(plan)
        if stale is not None:
            # Nothing is written: PublishState finds no version manifest and a moved
            # pointer, and the workflow plans again on the newer state.
            self.log.warning(
                "plan is stale, nothing written", fields={"version": version, "reason": stale}
            )
            return None
        base = self._read_base(plan)
        try:
            with self._settings(MERGE_SETTINGS):
                manifest = self._merge(plan, base)
        finally:
            for frame in self._kept:
                frame.unpersist()
            self._kept.clear()
        # Written last: a version without it is incomplete, whatever else is there.
        self.storage.write_text(self.args.path(naming.state_manifest_key(version)), dumps(manifest))
        self.log.info(
            "version built",
            fields={"version": version, "counts": manifest["counts"], "merge": manifest["merge"]},
        )
        return manifest

    def _stale_because(self, plan: MergePlan) -> str | None:
        text = self._read_text(naming.STATE_POINTER_KEY)
        base = plan["base"]
        if text is None:
            return (
                None if base is None else f"no state is published; the plan is on {base['version']}"
            )
        current = loads_pointer(text)["version"]
        if base is None:
            return f"the plan starts a state, but {current} is published"
        if current != base["version"]:
            return f"the plan is based on {base['version']}, but {current} is published"
        return None

    def _read_base(self, plan: MergePlan) -> StateManifest | None:
        base = plan["base"]
        if base is None:
            return None
        text = self._read_text(base["state_manifest"])
        if text is None:
            raise StateNotPublishedError(f"the base version's {base['state_manifest']} is missing")
        manifest = loads_manifest(text)
        if manifest["version"] != base["version"] or manifest["settings"] != plan["settings"]:
            raise StateNotPublishedError(
                f"{base['state_manifest']} does not match the plan of {plan['version']} "
                "(version or settings differ)"
            )
        return manifest

    # --- The merge -------------------------------------------------------------------------

    def _merge(self, plan: MergePlan, base: StateManifest | None) -> StateManifest:
        spark, resolve = self.spark, self.args.path
        settings = plan["settings"]
        cores = spark.sparkContext.defaultParallelism
        tables: dict[str, TableLocation] = base["tables"] if base is not None else {}
        withdrawn = list(plan["withdrawn"])

        with self._phase("read"):
            new_lines = read_lines(spark, resolve, [c["lines_prefix"] for c in plan["changes"]])
            # A count of Parquet files reads their footers only.
            changed_lines = new_lines.count()
            spark.conf.set(
                SHUFFLE_PARTITIONS,
                str(tasks_for(changed_lines, cores, ROWS_PER_SHUFFLE_PARTITION)),
            )
            base_lines = read_table(
                spark, resolve, CURRENT_LINES_TABLE, tables.get(CURRENT_LINES_TABLE)
            )

        with self._phase("touched_orders"):
            orders = self._keep(merge.touched_orders(new_lines, base_lines, withdrawn))
            touched_orders = orders.count()
            lookup = F.broadcast(orders) if touched_orders <= BROADCAST_ORDERS else orders
            # One scan of the base's current lines (all columns: the touched orders' lines
            # are rewritten and reported from these rows).
            before = self._keep(base_lines.join(lookup, on="order_id", how="left_semi"))
            before_lines = before.count()

        self.log.info(
            "touched orders found",
            fields={
                "changed_lines": changed_lines,
                "touched_orders": touched_orders,
                "base_lines_of_touched_orders": before_lines,
                "withdrawn_batches": withdrawn,
            },
        )
        with self._phase("fallback"):
            fallback, fallback_lines = self._fallback(plan, before, new_lines, withdrawn)

        with self._phase("current_lines"):
            after = self._keep(
                merge.current_lines(merge.candidates(before, new_lines, fallback, withdrawn))
            )
            replaced = self._keep(merge.replaced_lines(before, after))
            changes = self._keep(reports.signed_lines(before, after))
            facts = merge.partition_changes(before, after, replaced).collect()
            cells = {_cell(r[0], r[1]) for r in facts if r["changed"]}
            row_changes = {_cell(r[0], r[1]): int(r["added"]) - int(r["removed"]) for r in facts}
            moved = (
                changes.select(reports.SIGN, "order_id").distinct().agg(F.sum(reports.SIGN)).first()
            )
            moved_orders = int(moved[0] or 0) if moved is not None else 0

        touched = Touched(orders=lookup, before=before, after=after, changes=changes)
        with self._phase("order_lines_current"):
            lines_table = self._write_lines(
                plan["version"],
                tables.get(CURRENT_LINES_TABLE),
                touched,
                cells=cells,
                row_changes=row_changes,
                buckets=settings["line_buckets"],
                cores=cores,
            )

        with self._phase("client_tables"):
            client_tables, clients, report = self._write_client_tables(
                plan["version"],
                tables,
                touched,
                buckets=settings["client_buckets"],
                untouched_until=_untouched_until(plan),
            )

        with self._phase("small_tables"):
            small_tables = self._write_small_tables(
                plan["version"],
                tables,
                touched,
                replaced=replaced,
                lines_table=lines_table,
                clients=clients,
                report=report,
            )

        previous = base["counts"] if base is not None else {}
        return StateManifest(
            state_format=STATE_FORMAT,
            version=plan["version"],
            seq=plan["seq"],
            base_version=base["version"] if base is not None else None,
            created_at=utc.iso(self.clock()),
            run_id=plan["run_id"],
            settings=settings,
            batches=plan["batches"],
            tables={CURRENT_LINES_TABLE: lines_table, **client_tables, **small_tables},
            counts={
                "lines": lines_table["rows"],
                "orders": previous.get("orders", 0) + moved_orders,
                # orders_summary has one row per client with a current line.
                "clients": small_tables[ORDERS_SUMMARY_TABLE]["rows"],
            },
            merge=MergeFacts(
                changed_batches=[c["batch_id"] for c in plan["changes"]],
                withdrawn_batches=withdrawn,
                touched_partitions=len(cells),
                touched_orders=touched_orders,
                fallback_lines=fallback_lines,
                timings={k: round(v, 3) for k, v in self.timings.items()},
            ),
        )

    def _fallback(
        self, plan: MergePlan, before: DataFrame, new_lines: DataFrame, withdrawn: list[str]
    ) -> tuple[DataFrame, int]:
        """The older versions of the line keys a withdrawal leaves without a current version
        (merge.orphan_keys), from the live batches the plan does not change: the one read
        of versions that are not current. Nothing is read without such keys."""
        nothing = empty(self.spark, LINE_COLUMNS), 0
        if not withdrawn:
            return nothing
        orphans = self._keep(merge.orphan_keys(before, new_lines, withdrawn))
        if not orphans.count():
            return nothing
        changed = {c["batch_id"] for c in plan["changes"]}
        older = [
            live["lines_prefix"]
            for batch_id, live in sorted(plan["batches"].items())
            if batch_id not in changed
        ]
        fallback = self._keep(
            read_lines(self.spark, self.args.path, older).join(
                F.broadcast(orphans), on=list(LINE_KEY), how="left_semi"
            )
        )
        return fallback, fallback.count()

    def _write_lines(
        self,
        version: str,
        base: TableLocation | None,
        touched: Touched,
        *,
        cells: set[Cell],
        row_changes: dict[Cell, int],
        buckets: int,
        cores: int,
    ) -> TableLocation:
        """Rewrite the changed partitions of the current lines; reuse the others. A
        rewritten partition's rows are its base rows less the touched orders' plus their
        current lines there, so they are known before the write."""
        prefix = table_prefix(version, CURRENT_LINES_TABLE)
        reused = [p for p in _partitions(base) if _partition_cell(p) not in cells]
        old = [p for p in _partitions(base) if _partition_cell(p) in cells]
        rows = {cell: row_changes.get(cell, 0) for cell in cells}
        for partition in old:
            rows[_partition_cell(partition)] += partition["rows"]
        if cells:
            base_rows = read_partitions(
                self.spark,
                self.args.path,
                LINE_COLUMNS,
                len(PARTITION_NAMES),
                [p["location"] for p in old],
            )
            changed = self.spark.createDataFrame(
                [(channel, date.fromisoformat(day)) for channel, day in sorted(cells)],
                ddl(CURATED_PARTITION_COLUMNS),
            )
            lines = merge.rewritten_lines(base_rows, touched.orders, touched.after, changed)
            write_current_lines(
                conform(lines, LINE_COLUMNS),
                self.args.path(prefix),
                buckets=buckets,
                tasks=tasks_for(sum(rows.values()), cores, ROWS_PER_WRITE_TASK),
            )
        escaped = {channel: self.storage.escape_partition_value(channel) for channel, _ in cells}
        written = [
            PartitionLocation(
                values={"point_of_sale_channel": channel, "order_date": day},
                location=f"{prefix}point_of_sale_channel={escaped[channel]}/order_date={day}/",
                rows=count,
            )
            for (channel, day), count in rows.items()
            if count > 0
        ]
        partitions = sorted([*reused, *written], key=_partition_cell)
        return TableLocation(rows=sum(p["rows"] for p in partitions), partitions=partitions)

    def _write_client_tables(
        self,
        version: str,
        tables: dict[str, TableLocation],
        touched: Touched,
        *,
        buckets: int,
        untouched_until: datetime | None,
    ) -> tuple[dict[str, TableLocation], DataFrame, DataFrame]:
        """Rewrite the client_bucket partitions of the touched clients in client_orders and
        client_report; returns both tables, the touched clients and the rewritten
        client_report rows."""
        spark, resolve = self.spark, self.args.path
        changes = touched.changes
        clients = self._keep(changes.select("client_id").distinct())
        # client_orders rows per bucket: the base's less the touched orders' (client, order)
        # pairs before, plus their pairs after.
        pairs = (
            reports.with_client_bucket(
                changes.select(reports.SIGN, "client_id", "order_id").distinct(), buckets
            )
            .groupBy(CLIENT_BUCKET_COLUMN)
            .agg(F.sum(reports.SIGN))
            .collect()
        )
        order_rows = {int(r[0]): int(r[1]) for r in pairs}
        rewritten = set(order_rows)
        for partition in _partitions(tables.get(CLIENT_ORDERS_TABLE)):
            if _bucket(partition) in rewritten:
                order_rows[_bucket(partition)] += partition["rows"]

        def in_rewritten(partition: PartitionLocation) -> bool:
            return _bucket(partition) in rewritten

        base_orders = read_table(
            spark, resolve, CLIENT_ORDERS_TABLE, tables.get(CLIENT_ORDERS_TABLE), in_rewritten
        )
        recomputed = self._keep(reports.client_orders(touched.after, buckets))
        client_orders = conform(
            base_orders.join(touched.orders, on="order_id", how="left_anti").unionByName(
                recomputed
            ),
            all_columns(STATE_TABLES[CLIENT_ORDERS_TABLE]),
        )
        write_client_buckets(
            client_orders,
            resolve(table_prefix(version, CLIENT_ORDERS_TABLE)),
            ("client_id", "order_id"),
        )
        names = self._client_names(client_orders, recomputed, clients, untouched_until)

        base_report = read_table(
            spark, resolve, CLIENT_REPORT_TABLE, tables.get(CLIENT_REPORT_TABLE), in_rewritten
        )
        report = self._keep(
            conform(
                reports.with_client_bucket(
                    reports.client_report(base_report, changes, clients=clients, names=names),
                    buckets,
                ),
                all_columns(STATE_TABLES[CLIENT_REPORT_TABLE]),
            )
        )
        report_rows = {
            int(r[0]): int(r[1]) for r in report.groupBy(CLIENT_BUCKET_COLUMN).count().collect()
        }
        write_client_buckets(
            report,
            resolve(table_prefix(version, CLIENT_REPORT_TABLE)),
            ("client_id", "all_statuses", "all_channels", "status", "point_of_sale_channel"),
        )
        return (
            {
                name: self._client_table(version, name, tables.get(name), rewritten, rows)
                for name, rows in (
                    (CLIENT_REPORT_TABLE, report_rows),
                    (CLIENT_ORDERS_TABLE, order_rows),
                )
            },
            clients,
            report,
        )

    def _client_names(
        self,
        client_orders: DataFrame,
        recomputed: DataFrame,
        clients: DataFrame,
        untouched_until: datetime | None,
    ) -> DataFrame:
        """The touched clients' names: from the most recent of their current lines.

        A client's untouched orders' lines come from the live batches the plan leaves as
        they are, uploaded at `untouched_until` at the latest; a touched line uploaded after
        that is the client's most recent. Only the clients without one (an older upload
        processed late, a client whose lines moved away) are looked up in all their
        client_orders rows of the new version.
        """
        newest = self._keep(reports.client_latest(recomputed))
        settled = (
            newest
            if untouched_until is None
            else newest.where(F.col("_n.latest_event_time") > F.lit(untouched_until))
        )
        open_clients = self._keep(clients.join(settled, on="client_id", how="left_anti"))
        names = reports.client_names(settled)
        if open_clients.count():
            rows = client_orders.join(F.broadcast(open_clients), on="client_id", how="left_semi")
            names = names.unionByName(reports.client_names(reports.client_latest(rows)))
        return names

    @staticmethod
    def _client_table(
        version: str,
        name: str,
        base: TableLocation | None,
        rewritten: set[int],
        rows: dict[int, int],
    ) -> TableLocation:
        """A per-client table: the rewritten buckets that hold rows, the others reused."""
        prefix = table_prefix(version, name)
        reused = [p for p in _partitions(base) if _bucket(p) not in rewritten]
        written = [
            PartitionLocation(
                values={CLIENT_BUCKET_COLUMN: str(bucket)},
                location=f"{prefix}{CLIENT_BUCKET_COLUMN}={bucket}/",
                rows=count,
            )
            for bucket, count in rows.items()
            if count > 0
        ]
        partitions = sorted([*reused, *written], key=_bucket)
        return TableLocation(rows=sum(p["rows"] for p in partitions), partitions=partitions)

    def _write_small_tables(
        self,
        version: str,
        tables: dict[str, TableLocation],
        touched: Touched,
        *,
        replaced: DataFrame,
        lines_table: TableLocation,
        clients: DataFrame,
        report: DataFrame,
    ) -> dict[str, TableLocation]:
        """Rewrite the unpartitioned tables whole: the base rows of untouched groups and the
        touched groups moved or recomputed."""
        spark, resolve = self.spark, self.args.path

        def base(name: str) -> DataFrame:
            return read_table(spark, resolve, name, tables.get(name))

        figures = self._keep(
            reports.product_daily_figures(base(PRODUCT_DAILY_TABLE), touched.changes, replaced)
        )
        unsettled = figures.where(~F.col("_settled"))
        if unsettled.select(*reports.CELL).distinct().count():
            figures = self._recompute_latest(figures, unsettled, lines_table)
        touched_clients = F.broadcast(clients)
        frames = {
            PRODUCT_DAILY_TABLE: reports.product_daily(figures),
            STATUS_DAILY_TABLE: reports.status_daily(base(STATUS_DAILY_TABLE), touched.changes),
            SPANNING_ORDER_CELLS_TABLE: base(SPANNING_ORDER_CELLS_TABLE)
            .join(touched.orders, on="order_id", how="left_anti")
            .unionByName(reports.spanning_cells(touched.after)),
            ORDERS_SUMMARY_TABLE: base(ORDERS_SUMMARY_TABLE)
            .join(touched_clients, on="client_id", how="left_anti")
            .unionByName(
                reports.orders_summary(
                    report.join(touched_clients, on="client_id", how="left_semi")
                )
            ),
        }
        written: dict[str, TableLocation] = {}
        for name, frame in frames.items():
            rows = self._keep(conform(frame, STATE_TABLES[name].columns))
            count = rows.count()
            prefix = table_prefix(version, name)
            write_small(rows, resolve(prefix), SMALL_TABLE_ORDER[name])
            written[name] = TableLocation(rows=count, location=prefix)
        return written

    def _recompute_latest(
        self, figures: DataFrame, unsettled: DataFrame, lines_table: TableLocation
    ) -> DataFrame:
        """The latest line of the cells where the base's went away and nothing newer came,
        from those cells' lines in the new version (rare: a withdrawn batch held it)."""
        cells = {_cell(r[0], r[1]) for r in unsettled.select(*reports.CELL).distinct().collect()}
        lines = read_partitions(
            self.spark,
            self.args.path,
            LINE_COLUMNS,
            len(PARTITION_NAMES),
            [p["location"] for p in _partitions(lines_table) if _partition_cell(p) in cells],
        )
        keys = list(reports.PRODUCT_KEYS)
        recomputed = reports.product_latest(lines.join(unsettled, on=keys, how="left_semi"))
        return (
            figures.join(
                recomputed.withColumnRenamed("_latest", "_recomputed"), on=keys, how="left"
            )
            .withColumn("_latest", F.coalesce("_recomputed", "_latest"))
            .drop("_recomputed")
        )

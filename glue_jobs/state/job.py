"""One merge: read the plan, merge the changed batches into a new state version, write it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from duffbeer import naming, utc
from duffbeer.contract import CLIENT_BUCKET_COLUMN, LINE_KEY
from duffbeer.errors import StateNotPublishedError
from duffbeer.state import (
    CLIENT_ORDERS_TABLE,
    CLIENT_REPORT_TABLE,
    CURRENT_LINES_TABLE,
    ORDERS_SUMMARY_TABLE,
    PRODUCT_DAILY_TABLE,
    SPANNING_ORDER_CELLS_TABLE,
    STATE_FORMAT,
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
    conform,
    empty,
    read_lines,
    read_partitions,
    read_table,
)
from glue_jobs.state.write import write_client_buckets, write_current_lines, write_small

Clock = Callable[[], datetime]
Cell = tuple[str, str]  # (channel, YYYY-MM-DD): a partition of the current lines


@dataclass(frozen=True)
class Touched:
    """What a merge changes: the touched orders T (as the frame joins look them up), their
    current lines in the base (before) and in the new version (after, with their origin)."""

    orders: DataFrame
    before: DataFrame
    after: DataFrame


# Touched orders up to this many are broadcast to the scans that look them up (about
# 16 bytes each on the wire); beyond it Spark joins by shuffling both sides.
BROADCAST_ORDERS = 2_000_000
# Rows per task of the small shuffles (the touched orders' lines) and of the line rewrite.
ROWS_PER_SHUFFLE_PARTITION = 1_000_000
ROWS_PER_WRITE_TASK = 700_000


def tasks_for(rows: int, cores: int, per_task: int) -> int:
    """A multiple of the cores, so that every core runs the same number of tasks."""
    return cores * max(1, math.ceil(rows / (cores * per_task)))


def _cell(channel: str, day: date | str) -> Cell:
    return channel, day if isinstance(day, str) else day.isoformat()


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
        """Rows several queries read, computed once. Persisted (memory, spilling to disk)
        rather than checkpointed locally: a lost executor's blocks are recomputed."""
        kept = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self._kept.append(kept)
        return kept

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
            raise StateNotPublishedError(
                f"{self.args.plan_key} holds the plan of version {version}"
            )
        built = self._read_text(naming.state_manifest_key(version))
        if built is not None:
            self.log.info("version already built", fields={"version": version})
            return loads_manifest(built)
        stale = self._stale_because(plan)
        if stale is not None:
            # Nothing is written: PublishState finds no version manifest and a moved
            # pointer, and the workflow plans again on the newer state.
            self.log.warning("plan is stale, nothing written", fields={"reason": stale})
            return None
        base = self._read_base(plan)
        try:
            manifest = self._merge(plan, base)
        finally:
            for frame in self._kept:
                frame.unpersist()
            self._kept.clear()
        # Written last: a version without it is incomplete, whatever else is there.
        self.storage.write_text(self.args.path(naming.state_manifest_key(version)), dumps(manifest))
        self.log.info(
            "version built",
            fields={
                "version": version,
                "counts": manifest["counts"],
                "merge": manifest["merge"],
            },
        )
        return manifest

    def _stale_because(self, plan: MergePlan) -> str | None:
        text = self._read_text(naming.STATE_POINTER_KEY)
        base = plan["base"]
        if text is None:
            return (
                None
                if base is None
                else f"no state pointer, the plan is based on {base['version']}"
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
            raise StateNotPublishedError(
                f"the base version manifest {base['state_manifest']} is missing"
            )
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
        version = plan["version"]
        settings = plan["settings"]
        cores = spark.sparkContext.defaultParallelism
        tables: dict[str, TableLocation] = base["tables"] if base is not None else {}
        withdrawn = list(plan["withdrawn"])

        with self._phase("read"):
            new_lines = read_lines(spark, resolve, [c["lines_prefix"] for c in plan["changes"]])
            # A count of Parquet files reads their footers only.
            changed_lines = new_lines.count()
            spark.conf.set(
                "spark.sql.shuffle.partitions",
                str(tasks_for(changed_lines, cores, ROWS_PER_SHUFFLE_PARTITION)),
            )
            base_lines = read_table(
                spark, resolve, CURRENT_LINES_TABLE, tables.get(CURRENT_LINES_TABLE)
            )

        with self._phase("touched_orders"):
            orders = self._keep(merge.touched_orders(new_lines, base_lines, withdrawn))
            touched_orders = orders.count()
            lookup = F.broadcast(orders) if touched_orders <= BROADCAST_ORDERS else orders
            before = self._keep(base_lines.join(lookup, on="order_id", how="left_semi"))
            before.count()

        with self._phase("fallback"):
            fallback = empty(spark, LINE_COLUMNS)
            fallback_lines = 0
            if withdrawn:
                orphans = self._keep(merge.orphan_keys(before, new_lines, withdrawn))
                if orphans.count():
                    changed = {c["batch_id"] for c in plan["changes"]}
                    older = [
                        live["lines_prefix"]
                        for batch_id, live in sorted(plan["batches"].items())
                        if batch_id not in changed
                    ]
                    fallback = self._keep(
                        read_lines(spark, resolve, older).join(
                            F.broadcast(orphans), on=list(LINE_KEY), how="left_semi"
                        )
                    )
                    fallback_lines = fallback.count()

        with self._phase("current_lines"):
            after = self._keep(
                merge.current_lines(merge.candidates(before, new_lines, fallback, withdrawn))
            )
            after.count()
            changed_cells = self._keep(merge.changed_partitions(before, after))
            cells = {_cell(r[0], r[1]) for r in changed_cells.collect()}
            row_changes = {
                _cell(r[0], r[1]): int(r["added"]) - int(r["removed"])
                for r in merge.partition_row_changes(before, after).collect()
            }

        touched = Touched(orders=lookup, before=before, after=after)
        with self._phase("order_lines_current"):
            lines_table = self._write_lines(
                version,
                tables.get(CURRENT_LINES_TABLE),
                touched,
                cells=cells,
                changed_cells=changed_cells,
                row_changes=row_changes,
                buckets=settings["line_buckets"],
                cores=cores,
            )

        with self._phase("client_tables"):
            client_tables, clients, report = self._write_client_tables(
                version, tables, touched, buckets=settings["client_buckets"]
            )

        with self._phase("small_tables"):
            small_tables, counts = self._write_small_tables(
                version, tables, touched, lines_table=lines_table, clients=clients, report=report
            )

        previous = base["counts"] if base is not None else {}
        distinct_orders = before.select("order_id").distinct().count()
        counts["lines"] = lines_table["rows"]
        counts["orders"] = (
            previous.get("orders", 0)
            - distinct_orders
            + after.select("order_id").distinct().count()
        )
        return StateManifest(
            state_format=STATE_FORMAT,
            version=version,
            seq=plan["seq"],
            base_version=base["version"] if base is not None else None,
            created_at=utc.iso(self.clock()),
            run_id=plan["run_id"],
            settings=settings,
            batches=plan["batches"],
            tables={
                CURRENT_LINES_TABLE: lines_table,
                **client_tables,
                **small_tables,
            },
            counts={k: counts[k] for k in ("lines", "orders", "clients")},
            merge=MergeFacts(
                changed_batches=[c["batch_id"] for c in plan["changes"]],
                withdrawn_batches=withdrawn,
                touched_partitions=len(cells),
                touched_orders=touched_orders,
                fallback_lines=fallback_lines,
                timings={k: round(v, 3) for k, v in self.timings.items()},
            ),
        )

    def _write_lines(
        self,
        version: str,
        base: TableLocation | None,
        touched: Touched,
        *,
        cells: set[Cell],
        changed_cells: DataFrame,
        row_changes: dict[Cell, int],
        buckets: int,
        cores: int,
    ) -> TableLocation:
        """Rewrite the changed partitions of the current lines; reuse the others. A
        rewritten partition's rows are its base rows less the touched orders' plus their
        current lines there, so they are known before the write."""
        prefix = table_prefix(version, CURRENT_LINES_TABLE)
        reused: list[PartitionLocation] = []
        old: list[PartitionLocation] = []
        for partition in base.get("partitions", []) if base is not None else []:
            values = partition["values"]
            cell = _cell(values["point_of_sale_channel"], values["order_date"])
            (old if cell in cells else reused).append(partition)
        rows = {cell: row_changes.get(cell, 0) for cell in cells}
        for partition in old:
            values = partition["values"]
            rows[_cell(values["point_of_sale_channel"], values["order_date"])] += partition["rows"]
        if cells:
            base_rows = read_partitions(
                self.spark,
                self.args.path,
                LINE_COLUMNS,
                len(PARTITION_NAMES),
                [p["location"] for p in old],
            )
            write_current_lines(
                conform(
                    merge.rewritten_lines(base_rows, touched.orders, touched.after, changed_cells),
                    LINE_COLUMNS,
                ),
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
        partitions = sorted(
            [*reused, *written],
            key=lambda p: (p["values"]["point_of_sale_channel"], p["values"]["order_date"]),
        )
        return TableLocation(rows=sum(p["rows"] for p in partitions), partitions=partitions)

    def _write_client_tables(
        self,
        version: str,
        tables: dict[str, TableLocation],
        touched: Touched,
        *,
        buckets: int,
    ) -> tuple[dict[str, TableLocation], DataFrame, DataFrame]:
        """Rewrite the client_bucket partitions of the touched clients in client_orders and
        client_report; returns both tables, the touched clients and the rewritten
        client_report rows."""
        spark, resolve = self.spark, self.args.path
        before, after = touched.before, touched.after
        clients = self._keep(
            before.select("client_id").unionByName(after.select("client_id")).distinct()
        )
        # client_orders rows per bucket: the base's less the touched orders' (client, order)
        # pairs before, plus their pairs after.
        pairs = (
            reports.with_client_bucket(before.select("client_id", "order_id").distinct(), buckets)
            .select(CLIENT_BUCKET_COLUMN, F.lit(-1).alias("change"))
            .unionByName(
                reports.with_client_bucket(
                    after.select("client_id", "order_id").distinct(), buckets
                ).select(CLIENT_BUCKET_COLUMN, F.lit(1).alias("change"))
            )
            .groupBy(CLIENT_BUCKET_COLUMN)
            .agg(F.sum("change").alias("change"))
        )
        changes = {int(r[0]): int(r[1]) for r in pairs.collect()}
        rewritten = set(changes)

        def in_touched(partition: PartitionLocation) -> bool:
            return int(partition["values"][CLIENT_BUCKET_COLUMN]) in rewritten

        base_orders = read_table(
            spark, resolve, CLIENT_ORDERS_TABLE, tables.get(CLIENT_ORDERS_TABLE), in_touched
        )
        recomputed = self._keep(reports.client_orders(after, buckets))
        kept_orders = base_orders.join(touched.orders, on="order_id", how="left_anti")
        rewritten_orders = kept_orders.unionByName(recomputed)
        write_client_buckets(
            rewritten_orders,
            resolve(table_prefix(version, CLIENT_ORDERS_TABLE)),
            ("client_id", "order_id"),
        )
        order_rows = self._client_partitions(tables.get(CLIENT_ORDERS_TABLE), rewritten, changes)
        names = reports.client_names(
            rewritten_orders.join(F.broadcast(clients), on="client_id", how="left_semi")
        )

        base_report = read_table(
            spark, resolve, CLIENT_REPORT_TABLE, tables.get(CLIENT_REPORT_TABLE), in_touched
        )
        report = self._keep(
            reports.client_report(
                base_report, before, after, clients=clients, names=names, buckets=buckets
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

    @staticmethod
    def _client_partitions(
        base: TableLocation | None, touched: set[int], changes: dict[int, int]
    ) -> dict[int, int]:
        """Rows of each touched bucket after the merge: base rows + change."""
        rows = {bucket: changes.get(bucket, 0) for bucket in touched}
        for partition in base.get("partitions", []) if base is not None else []:
            bucket = int(partition["values"][CLIENT_BUCKET_COLUMN])
            if bucket in touched:
                rows[bucket] += partition["rows"]
        return rows

    @staticmethod
    def _client_table(
        version: str,
        name: str,
        base: TableLocation | None,
        touched: set[int],
        rows: dict[int, int],
    ) -> TableLocation:
        prefix = table_prefix(version, name)
        reused = [
            p
            for p in (base.get("partitions", []) if base is not None else [])
            if int(p["values"][CLIENT_BUCKET_COLUMN]) not in touched
        ]
        written = [
            PartitionLocation(
                values={CLIENT_BUCKET_COLUMN: str(bucket)},
                location=f"{prefix}{CLIENT_BUCKET_COLUMN}={bucket}/",
                rows=count,
            )
            for bucket, count in rows.items()
            if count > 0
        ]
        partitions = sorted(
            [*reused, *written], key=lambda p: int(p["values"][CLIENT_BUCKET_COLUMN])
        )
        return TableLocation(rows=sum(p["rows"] for p in partitions), partitions=partitions)

    def _write_small_tables(
        self,
        version: str,
        tables: dict[str, TableLocation],
        touched: Touched,
        *,
        lines_table: TableLocation,
        clients: DataFrame,
        report: DataFrame,
    ) -> tuple[dict[str, TableLocation], dict[str, int]]:
        """Rewrite the unpartitioned tables whole: the base rows of untouched groups and the
        touched groups moved or recomputed."""
        spark, resolve = self.spark, self.args.path
        before, after, orders = touched.before, touched.after, touched.orders

        def base(name: str) -> DataFrame:
            return read_table(spark, resolve, name, tables.get(name))

        status = reports.status_daily(base(STATUS_DAILY_TABLE), before, after)

        base_products = base(PRODUCT_DAILY_TABLE)
        figures = self._keep(
            reports.apply_difference(
                base_products,
                reports.product_contributions(before),
                reports.product_contributions(after),
                reports.PRODUCT_DAILY_KEYS,
                reports.PRODUCT_DAILY_MEASURES,
            )
        )
        latest = self._keep(reports.product_latest_checked(base_products, orders, after))
        unsettled = self._keep(
            latest.where(~F.col("_settled")).join(
                figures, on=list(reports.PRODUCT_DAILY_KEYS), how="left_semi"
            )
        )
        if unsettled.count():
            latest = self._recomputed_latest(latest, unsettled, lines_table)
        products = reports.product_daily(figures, latest)

        spanning = (
            base(SPANNING_ORDER_CELLS_TABLE)
            .join(orders, on="order_id", how="left_anti")
            .unionByName(reports.spanning_cells(after))
        )
        summary = (
            base(ORDERS_SUMMARY_TABLE)
            .join(F.broadcast(clients), on="client_id", how="left_anti")
            .unionByName(
                reports.orders_summary(
                    report.join(F.broadcast(clients), on="client_id", how="left_semi")
                )
            )
        )
        written: dict[str, TableLocation] = {}
        counts: dict[str, int] = {}
        for name, frame, keys in (
            (PRODUCT_DAILY_TABLE, products, reports.PRODUCT_DAILY_KEYS),
            (STATUS_DAILY_TABLE, status, ("all_statuses", *reports.STATUS_DAILY_KEYS)),
            (
                SPANNING_ORDER_CELLS_TABLE,
                spanning,
                ("order_id", "point_of_sale_channel", "order_date", "status"),
            ),
            (ORDERS_SUMMARY_TABLE, summary, ("client_id",)),
        ):
            rows = self._keep(frame)
            count = rows.count()
            prefix = table_prefix(version, name)
            write_small(rows, resolve(prefix), keys)
            written[name] = TableLocation(rows=count, location=prefix)
            counts[name] = count
        return written, {"clients": counts[ORDERS_SUMMARY_TABLE]}

    def _recomputed_latest(
        self, latest: DataFrame, unsettled: DataFrame, lines_table: TableLocation
    ) -> DataFrame:
        """The latest line of the cells where the base's went away and nothing newer came:
        from those cells' lines in the new version (rare: a withdrawn batch held it)."""
        cells = {
            _cell(r["point_of_sale_channel"], r["order_date"])
            for r in unsettled.select(*PARTITION_NAMES).distinct().collect()
        }
        locations = [
            p["location"]
            for p in lines_table.get("partitions", [])
            if _cell(p["values"]["point_of_sale_channel"], p["values"]["order_date"]) in cells
        ]
        lines = read_partitions(
            self.spark, self.args.path, LINE_COLUMNS, len(PARTITION_NAMES), locations
        )
        keys = list(reports.PRODUCT_DAILY_KEYS)
        recomputed = reports.product_latest(lines.join(unsettled, on=keys, how="left_semi"))
        return (
            latest.join(unsettled, on=keys, how="left_anti")
            .select(*keys, "_latest")
            .unionByName(recomputed)
        )
